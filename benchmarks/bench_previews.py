"""What the previews (--preview-size) cost per photo: bytes in the site and decode time.

    python benchmarks/bench_previews.py            # 8 generated 12 MP JPEGs + 2 real photos
    python benchmarks/bench_previews.py --photos 2

Decodes each file as the build does (imaging.decode: model input, thumbnail and preview from one
decode), with previews of 800 px (the default) and without, and prints a Markdown table of the
mean preview and thumbnail bytes and decode time per file. The generated photos are the ones
bench_build.py makes (smooth gradients plus sensor-like noise, which WebP compresses worse than
most real photos); the real ones are scikit-learn's two sample photos (640×427 JPEGs, so their
previews are 640 px: no larger than the source).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.ingest.imaging import decode  # noqa: E402

MODEL, THUMB, PREVIEW = 224, 192, 800


def generated(folder: Path, n: int) -> list[Path]:
    """12 MP 'photos' as bench_build.py makes them."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
        base = np.stack([x / 16 + 40 * i, y / 12, (x + y) / 28], axis=-1) % 256
        noisy = base + rng.normal(0, 6, size=base.shape)
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        files.append(path)
    return files


def real() -> list[Path]:
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    return sorted(folder.glob("*.jpg"))


def measure(files: list[Path]) -> dict[str, float]:
    with_p, without = [], []
    for path in files:
        start = time.perf_counter()
        decoded = decode(path, MODEL, THUMB, PREVIEW)
        with_p.append((time.perf_counter() - start, len(decoded.preview or b""), decoded))
        start = time.perf_counter()
        plain = decode(path, MODEL, THUMB)
        without.append((time.perf_counter() - start, len(plain.thumb)))
    return {
        "preview_kb": statistics.mean(b for _, b, _ in with_p) / 1000,
        "thumb_kb": statistics.mean(b for _, b in without) / 1000,
        "ms_with": 1000 * statistics.mean(t for t, _, _ in with_p),
        "ms_without": 1000 * statistics.mean(t for t, _ in without),
        "side": statistics.mean(max(d.preview_size or (0, 0)) for _, _, d in with_p),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            f"{args.photos} generated 12 MP JPEGs": measure(generated(Path(tmp), args.photos)),
            "scikit-learn's 2 sample photos (640×427)": measure(real()),
        }
    print("| files | preview side | preview KB | thumbnail KB | decode ms (with / without) |")
    print("|---|---:|---:|---:|---:|")
    for name, m in rows.items():
        print(
            f"| {name} | {m['side']:.0f} px | {m['preview_kb']:.1f} | {m['thumb_kb']:.1f} | "
            f"{m['ms_with']:.0f} / {m['ms_without']:.0f} |"
        )


if __name__ == "__main__":
    main()
