"""Benchmark the similar-images pass and the page data it adds, at large N.

    python benchmarks/bench_neighbours.py                    # 10,000 and 100,000 images
    python benchmarks/bench_neighbours.py --sizes 10000      # quicker
    python benchmarks/bench_neighbours.py --sizes 100000 --size-only   # the page data only

Features are a fake collection (384-d, 200 Gaussian groups, float32, like DINO's), so no model
and no images are needed: the pass (duplicates.find_similar: blocked products, exact top 12 and
the near-duplicate components) sees the same shapes as in a build. Prints a Markdown table: the
pass's time and peak memory (tracemalloc: NumPy's allocations), and the bytes of
data/neighbours.js, the file a folder site loads on the first preview (in a single file the same
JSON is inline). `--size-only` skips the pass and packs random neighbours: the file's size
depends only on N.

The pass is checked against exact arithmetic on CHECK_ROWS rows drawn at random: their cosines
with every image in float64 (rounded to float32, as the pass decides), whose top 12 (ties to the
smaller index) must be the pass's bit for bit, and whose pairs at or above the threshold must lie
in one near-duplicate group. The table says how many rows were checked and whether all agreed.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.analysis.duplicates import (  # noqa: E402
    NEAR_DUPLICATE_COSINE,
    Duplicates,
    Neighbours,
    find_similar,
    unit_rows,
)
from generator.site.payload import page_neighbours  # noqa: E402
from generator.site.render import environment  # noqa: E402


def features(n: int, dim: int = 384, groups: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(groups, dim)).astype(np.float32)
    return centres[rng.integers(0, groups, n)] + rng.normal(size=(n, dim)).astype(np.float32)


CHECK_ROWS = 200


def check_exact(x: np.ndarray, duplicates: Duplicates, found: Neighbours) -> bool:
    """CHECK_ROWS random rows against float64 cosines with every image (see the docstring)."""
    unit = unit_rows(x).astype(np.float64)
    rows = np.random.default_rng(1).choice(len(x), size=min(CHECK_ROWS, len(x)), replace=False)
    group = np.full(len(x), -1)
    for g, members in enumerate(duplicates.near):
        group[list(members)] = g
    for row in rows:
        sims = (unit @ unit[row]).astype(np.float32)
        sims[row] = -np.inf
        m = found.indices.shape[1]
        order = np.lexsort((np.arange(len(sims)), -sims))[:m]
        if (
            not (found.indices[row] == order).all()
            or not (found.similarity[row] == sims[order]).all()
        ):
            return False
        near = np.flatnonzero(sims >= np.float32(NEAR_DUPLICATE_COSINE))
        if len(near) and (group[row] < 0 or (group[near] != group[row]).any()):
            return False
    return True


def measure(n: int, size_only: bool) -> str:
    if size_only:
        rng = np.random.default_rng(n)
        indices = rng.integers(0, n, size=(n, 12))
        similarity = -np.sort(-rng.uniform(0.3, 1.0, size=(n, 12)), axis=1)
        seconds = peak = float("nan")
    else:
        digests = [f"{i:x}" for i in range(n)]
        x = features(n)
        tracemalloc.start()
        start = time.perf_counter()
        duplicates, found = find_similar(digests, x)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        exact = check_exact(x, duplicates, found)
        indices, similarity = found.indices, found.similarity.astype(np.float64)
    report = SimpleNamespace(  # what page_neighbours reads of a Report
        images=[None] * n, neighbours=indices, neighbour_similarity=np.round(similarity, 6)
    )
    packed = page_neighbours(report)  # type: ignore[arg-type]
    script = environment("en").get_template("neighbours.js").render(neighbours=packed)
    size = len(script.encode("utf-8"))
    timing = "– | – | –"
    if not size_only:
        verdict = "all equal" if exact else "**DIFFERENT**"
        timing = f"{seconds:.1f} s | {peak / 1e6:.0f} MB | {CHECK_ROWS} rows: {verdict}"
    return (
        f"| {n:,} | {timing} | {size:,} bytes "
        f"| {size / n:.1f} | {packed['bytes']} bytes ({packed['sim_bits']}-bit similarity) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--size-only", action="store_true", help="skip the pass (see above)")
    args = parser.parse_args()
    print(
        "| images | pass | peak (NumPy) | exact check | data/neighbours.js | bytes per image "
        "| per neighbour |"
    )
    print("|---:|---:|---:|---|---:|---:|---|")
    for n in args.sizes:
        print(measure(n, args.size_only), flush=True)


if __name__ == "__main__":
    main()
