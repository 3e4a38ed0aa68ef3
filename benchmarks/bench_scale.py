"""Benchmark `dinoclust build --embeddings` from a large Parquet store, stage by stage.

    python benchmarks/bench_scale.py                      # 10,000 and 100,000 rows
    python benchmarks/bench_scale.py --sizes 10000 30000  # quicker

For each size, writes a store the way `dinoclust embed` does (store.StoreWriter, the real schema
and metadata): 384-d float32 vectors drawn around 24 centres, and a distinct small WebP thumbnail
per row (generated pictures, as bench_page.py makes). Then builds the site from it in a fresh
process, with no cache, and reports the wall time of each stage (reading the store and writing the
thumbnails, PCA + K-means, the near-duplicate pass, the report, the page, the exports), the
peak RSS and the site's size. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CENTRES = 24
DIM = 384

# Runs in the child: times each stage by wrapping the pipeline's own functions.
DRIVER = """
import json, sys, time
from pathlib import Path
import generator.pipeline as pipeline
times = {}
def timed(name, func):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start
    return wrapper
for name, attr in [("read store + thumbs", "from_store"), ("PCA + K-means", "_cached_analysis"),
                   ("near-duplicates", "find_duplicates"), ("report", "build_report"),
                   ("page", "render_site"), ("exports", "write_exports"), ("publish", "publish")]:
    setattr(pipeline, attr, timed(name, getattr(pipeline, attr)))
from generator.config import BuildConfig
start = time.perf_counter()
pipeline.build_site(BuildConfig(embeddings=Path(sys.argv[1]), output=Path(sys.argv[2])))
times["total"] = time.perf_counter() - start
print(json.dumps(times))
"""


def write_store(folder: Path, n: int) -> float:
    """A store of n rows as `dinoclust embed` writes it; returns the seconds it took."""
    from PIL import Image, ImageDraw

    from generator.embed import ModelInfo
    from generator.imaging import encode_thumb
    from generator.mapper import Row
    from generator.store import StoreWriter, model_metadata

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    info = ModelInfo("bench-model", "none", "bench:1", False, "cpu", "fp32")
    writer = StoreWriter(folder, model_metadata(info, 48, False))
    for i in range(n):
        group = i % CENTRES
        vector = centres[group] + 0.6 * rng.normal(size=DIM).astype(np.float32)
        picture = Image.new("RGB", (48, 36), tuple(int(v) for v in rng.integers(0, 256, 3)))
        x, y = (int(v) for v in rng.integers(0, 40, 2))
        ImageDraw.Draw(picture).rectangle((x, y % 30, x + 8, y % 30 + 6), fill=(255, 255, 255))
        digest = f"{i:064x}"
        thumb = encode_thumb(picture)
        writer.add(Row(f"g{group:02d}/{i:06d}.png", digest, (160, 120), thumb, (48, 36), vector))
    writer.commit()
    return time.perf_counter() - start


def site_bytes(site: Path) -> tuple[int, int]:
    files = [p for p in site.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), (site / "index.html").stat().st_size


def run(n: int, work: Path) -> dict[str, float]:
    store, site = work / f"emb-{n}", work / f"site-{n}"
    made = write_store(store, n)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(store), str(site)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    times = json.loads(out.strip().splitlines()[-1])
    total, html = site_bytes(site)
    store_size = sum(p.stat().st_size for p in store.glob("part-*.parquet"))
    peak_note = peak if peak > before else float("nan")  # ru_maxrss is the largest child so far
    return {
        **times,
        "n": n,
        "store MB": store_size / 1e6,
        "write store s": made,
        "peak RSS MB": peak_note / 1024,
        "site MB": total / 1e6,
        "index.html MB": html / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    stages = [
        "read store + thumbs",
        "PCA + K-means",
        "near-duplicates",
        "report",
        "page",
        "exports",
        "publish",
        "total",
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in sorted(args.sizes):  # ascending: the children's peak RSS only grows
            results.append(run(n, Path(tmp)))
            print(f"{n} rows done", file=sys.stderr)
    print("| stage (s) | " + " | ".join(f"{r['n']:,}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for stage in stages:
        print(f"| {stage} | " + " | ".join(f"{r.get(stage, 0.0):.1f}" for r in results) + " |")
    for key in ("peak RSS MB", "store MB", "site MB", "index.html MB", "write store s"):
        print(f"| {key} | " + " | ".join(f"{r[key]:,.1f}" for r in results) + " |")


if __name__ == "__main__":
    main()
