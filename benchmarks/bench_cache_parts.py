"""What many small cache parts cost a warm build: index and serve N rows kept in P parts.

    python benchmarks/bench_cache_parts.py                 # 2,000 rows in 1, 32 and 200 parts
    python benchmarks/bench_cache_parts.py -n 20000 --parts 1 33

Each row has a 384-float vector and a 192×144 WebP thumbnail of noise.
The parts are written with the cache's own writer (cachestore.CacheSpace), then a fresh space
indexes them and serves every row in chunks of 512 (local.CHUNK), as a warm build does. Prints a
Markdown table; the build compacts a space once it holds more than COMPACT_AT small parts.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.engines.local import CHUNK  # noqa: E402
from generator.storage.cachestore import COMPACT_AT, CacheSpace  # noqa: E402
from generator.storage.store import model_metadata  # noqa: E402
from generator.types import Row  # noqa: E402
from tests.helpers import FakeEmbedder  # noqa: E402


def noise_webp(rng: np.random.Generator) -> bytes:
    """A 192×144 WebP of noise: about as large as a photo's thumbnail, and a real image (the
    served thumbnail's size is read from it)."""
    out = io.BytesIO()
    pixels = rng.integers(0, 256, size=(144, 192, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, "WEBP", quality=80)
    return out.getvalue()


def fill(folder: Path, n: int, parts: int) -> list[str]:
    rng = np.random.default_rng(0)
    meta = model_metadata(FakeEmbedder.info, 192, None)
    digests = [f"{i:064x}" for i in range(n)]
    for chunk in np.array_split(np.arange(n), parts):
        space = CacheSpace(folder, meta)
        thumb = noise_webp(rng)
        vectors = rng.normal(size=(len(chunk), 384)).astype(np.float32)
        space.add(
            Row(digests[i], digests[i], (640, 480), thumb, (192, 144), vector)
            for i, vector in zip(chunk, vectors, strict=True)
        )
        space.close()  # not finish(): no compaction here
    return digests


def serve(folder: Path, digests: list[str]) -> tuple[float, float]:
    meta = model_metadata(FakeEmbedder.info, 192, None)
    start = time.perf_counter()
    space = CacheSpace(folder, meta)
    assert len(space.has(digests)[1]) == len(digests)
    indexed = time.perf_counter() - start
    for at in range(0, len(digests), CHUNK):
        vectors, thumbs, _ = space.fetch(digests[at : at + CHUNK])
        assert len(vectors) == len(thumbs) == len(digests[at : at + CHUNK])
    return indexed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="rows")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, COMPACT_AT + 1, 200])
    args = parser.parse_args()
    print(f"{args.n:,} rows with 192×144 WebP thumbnails\n")
    print("| parts | index | index and serve every row |")
    print("|---:|---:|---:|")
    for parts in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            digests = fill(Path(tmp), args.n, parts)
            indexed, served = min(serve(Path(tmp), digests) for _ in range(3))
        print(f"| {parts} | {indexed:.2f} s | {served:.2f} s |")


if __name__ == "__main__":
    main()
