"""Peak memory of a cold `dinoclust build` as the collection grows, with the real model.

    python benchmarks/bench_memory.py                  # 1,000 and 10,000 images (about 10 min)
    python benchmarks/bench_memory.py --sizes 500 2000
    python benchmarks/bench_memory.py --hybrid 100000 --photos DIR   # about 6 min

Each build runs in its own process (`--weights random --no-cache`, start-up included) on generated
160×120 PNGs (the page benchmark's pictures); peak memory is the process's maximum resident set
size. Only the N×384 features and small per-image records should grow with N: thumbnails go to
disk as they are made. Prints a Markdown table.

`--hybrid N` answers "peak memory with the real model at N images" without an hour of CPU: one
build of N pictures in which the real model (random weights, the default backend) is loaded and
embeds the batches of the first HYBRID_REAL images, and bench_page.py's fake embedder the
rest, the model staying loaded to the end. Everything that grows with N (rows, features, the
analysis, the N² pass, the page) is there at full size, next to the loaded model and its
working memory. `--photos DIR` reuses (or keeps) the N pictures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_build import RUN_CLI  # noqa: E402
from benchmarks.bench_page import make_images  # noqa: E402

HYBRID_REAL = 2_000  # images the real model embeds in a --hybrid build
HYBRID_DRIVER = """
import json, resource, sys, time
from pathlib import Path
import generator.commands.build as pipeline
from benchmarks.bench_page import ProjectionEmbedder
from generator.config import BuildConfig
from generator.model.embed import plan_embedder

photos, site, real_images = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
config = BuildConfig(inputs=(photos,), output=site, weights="random", cache_dir=None)
real, fake = plan_embedder(config.model, config.cache_dir), ProjectionEmbedder()


class RealThenFake:
    info = real.info
    seen = 0

    def prefetch(self):
        real.prefetch()

    def __call__(self, pixels):
        self.seen += len(pixels)
        if self.seen <= real_images:
            return real(pixels)
        return fake(pixels)


start = time.perf_counter()
try:
    result = pipeline.build_site(config, embedder=RealThenFake())
finally:
    real.close()
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "images": result.images,
    "backend": real.info.backend,
    "precision": real.info.precision,
}))
"""


def measure(n: int, work: Path) -> dict:
    photos = work / f"photos-{n}"
    make_images(photos, n)
    args = [str(photos), "-o", str(work / f"site-{n}"), "--weights", "random", "--no-cache", "-q"]
    out = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "build", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return {"n": n, **json.loads(out.stdout.strip().splitlines()[-1])}


def hybrid(n: int, work: Path, photos: Path | None) -> None:
    """One build of N pictures: the real model loaded throughout, used for the first images."""
    photos = photos or work / f"photos-{n}"
    if not photos.exists():
        make_images(photos, n)
    command = [sys.executable, "-c", HYBRID_DRIVER, str(photos), str(work / "site-hybrid")]
    out = subprocess.run([*command, str(HYBRID_REAL)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"the hybrid build failed:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"| images (real model for the first {HYBRID_REAL:,}) | build | peak RSS | backend |")
    print("|---:|---:|---:|---|")
    backend = f"{r['backend']} {r['precision']}"
    print(f"| {r['images']:,} | {r['seconds']:.0f} s | {r['rss_mb']:,.0f} MB | {backend} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--hybrid", type=int, metavar="N", help="N images, real model loaded")
    parser.add_argument("--photos", type=Path, metavar="DIR", help="--hybrid's pictures")
    args = parser.parse_args()
    if args.hybrid:
        with tempfile.TemporaryDirectory() as tmp:
            hybrid(args.hybrid, Path(tmp), args.photos)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in args.sizes]
    print("| images | cold build | peak RSS |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['seconds']:.0f} s | {r['rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
