"""Benchmark the generated page with large collections, in headless Chromium (software WebGL).

    python benchmarks/bench_page.py                  # 1,000 and 10,000 images
    python benchmarks/bench_page.py --sizes 1000     # quicker
    python benchmarks/bench_page.py --synthetic --sizes 1000 10000 100000   # the README table
    python benchmarks/bench_page.py --synthetic --sizes 100000 --display-points 5000 20000 all

`--synthetic` skips the images and the pipeline: blob features go through the real analysis,
report and page (tests/largesite.py), so that 100,000 images take minutes, not a 10-minute
build. `--display-points` compares the 3D view's sample sizes (how the default was chosen).

Builds each site with the real pipeline but without the model: the images are generated (a base
colour per group plus random shapes, so that thumbnails compress like simple pictures) and a fake
embedder projects their pixels at random. Then, in the browser the tests use (tests/browser.py):
(a) load: from navigation to `body[data-ready]` (first render of the grid and the 3D plot done);
(b) k switch: from the slider's input event until the page's render promise resolved and two
animation frames were painted, for every k in the range, median and worst; (c) size: the site's
bytes beyond the fixed assets (static/, the same for every site), per image, with the
thumbnails' share; (d) loaded at open: index.html, the page's own JS and CSS and the data files
it loads before it is ready (the first k's distances), not the thumbnails nor Plotly's file.
Prints a Markdown table.

    python benchmarks/bench_page.py --synthetic --sizes 100000 --find

`--find` measures the find box instead (issue 25): (e) the first query, which folds every name
once; (f) a query: filter.js's match() alone, and the whole input event (match, the per-cluster
counts and the strips redrawn), median of several queries; (g) ringing the matches in the plot
(one Plotly.restyle of the drawn points that match).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.commands.build import build_site  # noqa: E402
from generator.config import DISPLAY_POINTS, BuildConfig  # noqa: E402
from generator.types import ModelInfo  # noqa: E402
from tests.browser import launch, open_page  # noqa: E402
from tests.largesite import large_site  # noqa: E402

GROUPS = 12
SWITCH_JS = """async k => {
  const slider = document.getElementById('k-slider');
  const start = performance.now();
  slider.value = String(k);
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  await window.dinoclust.state.pending;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - start;
}"""


class ProjectionEmbedder:
    """Features from a fixed random projection of a 14×14 grid of pixels (each block's centre):
    similar pictures, similar vectors, without near-duplicates everywhere (as a fake of mean
    colours would give). It stands in for the model at almost no cost (about 0.05 ms an image of
    CPU), so that a build's time is its work other than the model: block means cost 1–1.8 ms an
    image in the main process (NumPy's strided reduce), 100–180 s of CPU at 100,000 images. The
    product runs in one BLAS thread: OpenBLAS's second thread spun on after every small product,
    about 2 ms of CPU an image taken from the decode workers (measured on 8,334 pictures: the
    main process's CPU in the embed stage fell from 20 s to 4 s)."""

    info = ModelInfo("bench-projection", "none", "bench:2", False, "cpu", "fp32")

    def __init__(self, dim: int = 384) -> None:
        from threadpoolctl import ThreadpoolController

        self.matrix = np.random.default_rng(0).normal(size=(14 * 14 * 3, dim)).astype(np.float32)
        self.blas = ThreadpoolController()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        b, h, w, c = pixels.shape
        step = h // 14
        grid = pixels[:, step // 2 :: step, step // 2 :: step, :][:, :14, :14]
        blocks = grid.reshape(b, -1).astype(np.float32) / 255.0 - 0.5
        with self.blas.limit(limits=1, user_api="blas"):
            return blocks @ self.matrix


def make_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    base = rng.integers(30, 226, size=(GROUPS, 3))
    for i in range(n):
        group = i % GROUPS
        image = Image.new("RGB", (160, 120), tuple(int(v) for v in base[group]))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = rng.integers(0, 140), rng.integers(0, 100)
            box = (int(x), int(y), int(x + rng.integers(10, 60)), int(y + rng.integers(10, 60)))
            fill = tuple(int(v) for v in np.clip(base[group] + rng.integers(-90, 90, 3), 0, 255))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        path = folder / f"g{group:02d}" / f"img_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)


def site_bytes(site: Path) -> tuple[int, int, int]:
    """(all bytes, bytes beyond static/, thumbnail bytes)."""
    files = [p for p in site.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    fixed = sum(p.stat().st_size for p in files if p.relative_to(site).parts[0] == "static")
    thumbs = sum(p.stat().st_size for p in files if p.relative_to(site).parts[0] == "thumbs")
    return total, total - fixed, thumbs


def opening_bytes(site: Path, k: int) -> int:
    """What the page loads before it is ready, beyond thumbnails and Plotly's file."""
    static = [p for p in (site / "static").rglob("*") if p.is_file() and "plotly" not in p.name]
    files = [site / "index.html", site / "data" / f"distances-k{k}.js", *static]
    return sum(p.stat().st_size for p in files if p.is_file())


def build(n: int, work: Path, synthetic: bool, points: int | None) -> Path:
    site = work / f"site-{n}-{points}"
    if synthetic:
        large_site(site, n, display_points=points)
        return site
    photos = work / f"photos-{n}"
    if not photos.exists():
        make_images(photos, n)
    config = BuildConfig(
        inputs=(photos,), output=site, cache_dir=None, k_max=10, display_points=points
    )
    build_site(config, embedder=ProjectionEmbedder())
    return site


def measure(
    n: int, work: Path, browser: object, synthetic: bool, points: int | None
) -> dict[str, float]:
    start = time.perf_counter()
    site = build(n, work, synthetic, points)
    build_s = time.perf_counter() - start
    total, beyond, thumbs = site_bytes(site)
    loads, switches = [], []
    for _ in range(2):  # a cold-ish and a warm load; report the worse
        t0 = time.perf_counter()
        with open_page(browser, site / "index.html") as opened:  # type: ignore[arg-type]
            loads.append(time.perf_counter() - t0)
            ks = opened.page.evaluate("() => window.dinoclust.data.k_values")
            for k in [*ks[1:], *reversed(ks[:-1])]:
                switches.append(opened.page.evaluate(SWITCH_JS, k))
            assert opened.errors == [], opened.errors
    return {
        "n": n,
        "drawn": min(n, points or n),
        "open_mb": opening_bytes(site, 2) / 1e6,
        "build_s": build_s,
        "load_s": max(loads),
        "switch_median_ms": statistics.median(switches),
        "switch_max_ms": max(switches),
        "kb_per_image": beyond / n / 1024,
        "thumb_kb_per_image": thumbs / n / 1024,
        "total_mb": total / 1e6,
    }


FIND_QUERIES = ["img_0001", "g03", "g1 img_00", "zzz-none", ".jpg", "img_05"]
FIND_JS = """async queries => {
  const ns = window.dinoclust, input = document.getElementById('find');
  const time = f => { const t0 = performance.now(); const r = f(); return [performance.now() - t0, r]; };
  const first = time(() => ns.find.match('img_'))[0];
  const match = [], event = [], ring = [], found = [];
  for (const q of queries) {
    for (let rep = 0; rep < 3; rep++) {
      const [ms, hits] = time(() => ns.find.match(q));
      match.push(ms);
      if (rep === 0) { found.push(hits.length); }
    }
    input.value = q;
    event.push(time(() => input.dispatchEvent(new Event('input', {bubbles: true})))[0]);
    const mask = ns.find.mask(ns.find.match(q));
    const t0 = performance.now();
    await ns.plot.found(mask);
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    ring.push(performance.now() - t0);
  }
  const median = a => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return {first: first, match: median(match), match_max: Math.max(...match), event: median(event),
          event_max: Math.max(...event), ring: median(ring), ring_max: Math.max(...ring), found: found};
}"""


def measure_find(n: int, work: Path, browser: object, synthetic: bool) -> dict[str, object]:
    site = build(n, work, synthetic, DISPLAY_POINTS)
    with open_page(browser, site / "index.html") as opened:  # type: ignore[arg-type]
        result = opened.page.evaluate(FIND_JS, FIND_QUERIES)
        assert opened.errors == [], opened.errors
    return {"n": n, **result}


def main_find(sizes: list[int], synthetic: bool) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, launch() as browser:
        for n in sizes:
            rows.append(measure_find(n, Path(tmp), browser, synthetic))
            print(rows[-1], file=sys.stderr, flush=True)
    print(
        "| images | first query (folds names) | match (median / worst) | input event incl. strips "
        "(median / worst) | ring in plot (median / worst) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['first']:.0f} ms | {r['match']:.1f} / {r['match_max']:.1f} ms | "
            f"{r['event']:.1f} / {r['event_max']:.1f} ms | {r['ring']:.0f} / {r['ring_max']:.0f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--synthetic", action="store_true", help="no images, no pipeline")
    parser.add_argument(
        "--display-points", nargs="+", default=[str(DISPLAY_POINTS)], metavar="N|all"
    )
    parser.add_argument("--find", action="store_true", help="measure the find box (issue 25)")
    args = parser.parse_args()
    if args.find:
        main_find(args.sizes, args.synthetic)
        return
    choices = [None if p == "all" else int(p) for p in args.display_points]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, launch() as browser:
        for n in args.sizes:
            for points in choices:
                rows.append(measure(n, Path(tmp), browser, args.synthetic, points))
                print(rows[-1], file=sys.stderr, flush=True)
    print(
        "| images | drawn | load to ready | k switch (median / worst) | loaded at open | "
        "KB per image beyond fixed assets (thumbnails) | site | (build) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['drawn']:,} | {r['load_s']:.2f} s | {r['switch_median_ms']:.0f} / "
            f"{r['switch_max_ms']:.0f} ms | {r['open_mb']:.2f} MB | {r['kb_per_image']:.2f} "
            f"({r['thumb_kb_per_image']:.2f}) | {r['total_mb']:.1f} MB | {r['build_s']:.0f} s |"
        )


if __name__ == "__main__":
    main()
