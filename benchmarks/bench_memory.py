"""Peak memory of a cold `dinoclust build` as the collection grows, with the real model.

    python benchmarks/bench_memory.py                  # 1,000 and 10,000 images (about 10 min)
    python benchmarks/bench_memory.py --sizes 500 2000

Each build runs in its own process (`--weights random --no-cache`, start-up included) on generated
160×120 PNGs (the page benchmark's pictures); peak memory is the process's maximum resident set
size. Only the N×384 features and small per-image records should grow with N: thumbnails go to
disk as they are made. Prints a Markdown table.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in args.sizes]
    print("| images | cold build | peak RSS |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['seconds']:.0f} s | {r['rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
