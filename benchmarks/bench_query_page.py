"""Benchmark the page's "Find where a photo belongs" in headless Chromium, from file://.

    python benchmarks/bench_query_page.py              # 24 clip-art images, 3 rounds (~4 minutes)
    python benchmarks/bench_query_page.py --rounds 1

Two sites are built from the same clip art with --weights random (the hub is unreachable here):
one with --query, one without. For each round, in a fresh page:
- how long each page takes until it is ready (data-ready): the control must not slow the page;
  the single files (--single-file, without and with --query) too, and their sizes;
- the model's first load (the five query/ scripts, decoding the base64, compiling the runtime
  and creating the session: the page's own timings.load);
- the time of one query after that: the model's run alone (timings.embed) and the whole pick
  (reading, decoding and preparing the photo, the run, the cosine over the index, the drawing),
  for a 1800 × 1200 PNG and a 24 MP JPEG.
Prints a Markdown table with the CPU (lscpu) and the load; compare rows within one run only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.commands.build import build_site  # noqa: E402
from generator.config import BuildConfig  # noqa: E402
from generator.report import read_report  # noqa: E402
from generator.site.singlefile import render_single  # noqa: E402
from tests.browser import launch, open_page  # noqa: E402
from tests.test_browser_query import CLIPART, DONE_JS, make_queries  # noqa: E402

READY_MS_JS = "() => performance.now()"


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "?").strip()
    return f"{name}, {fields.get('CPU(s)', '?').strip()} CPUs"


def build(root: Path, images: int) -> Path:
    files = sorted(CLIPART.rglob("*.png"))
    art = files[:: max(1, len(files) // 40)][:40]
    photos = root / "photos"
    photos.mkdir()
    for i, path in enumerate(art[:images]):
        shutil.copyfile(path, photos / f"{i:02d}_{path.name}")
    for name, query in (("plain", False), ("query", True)):
        config = BuildConfig(
            inputs=(photos,), output=root / name, weights="random", query=query, k_max=6
        )
        build_site(config)
        site = root / name
        page = render_single(read_report(site / "report.json"), site)  # as --single-file writes
        (root / f"{name}.html").write_text(page, encoding="utf-8")
    make_queries(root / "queries", art[30:])
    return root


def pick(page, files: list[Path]) -> float:
    started = time.perf_counter()
    page.locator("#query-files").set_input_files([str(f) for f in files])
    page.wait_for_function(DONE_JS, timeout=600_000)
    return time.perf_counter() - started


def round_of(browser, root: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("plain", "query"):
        with open_page(browser, root / name / "index.html") as opened:
            out[f"ready_{name}"] = opened.page.evaluate(READY_MS_JS) / 1000
        with open_page(browser, root / f"{name}.html") as opened:
            out[f"ready_single_{name}"] = opened.page.evaluate(READY_MS_JS) / 1000
            if name == "query":
                pick(opened.page, [root / "queries" / "alpha.png"])
                timings = opened.page.evaluate("() => window.dinoclust.query.timings")
                out["load_single"] = timings["load"] / 1000
                assert opened.external == [] and opened.errors == []
    with open_page(browser, root / "query" / "index.html") as opened:
        page = opened.page
        first = pick(page, [root / "queries" / "alpha.png"])
        timings = page.evaluate("() => window.dinoclust.query.timings")
        out["load"] = timings["load"] / 1000
        out["first_pick"] = first
        out["first_run"] = timings["embed"][0] / 1000
        for photo in ("alpha.png", "large.jpg"):
            page.evaluate("() => { window.dinoclust.query.timings.embed.length = 0; }")
            wall = pick(page, [root / "queries" / photo])
            run = page.evaluate("() => window.dinoclust.query.timings.embed[0]") / 1000
            out[f"pick_{photo}"] = wall
            out[f"run_{photo}"] = run
        assert opened.external == [] and opened.errors == [], (opened.external, opened.errors)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = build(Path(tmp), args.images)
        model_mb = (root / "query" / "query" / "model.js").stat().st_size / 1e6
        sizes = {name: (root / f"{name}.html").stat().st_size / 1e6 for name in ("plain", "query")}
        rounds = []
        with launch() as browser:
            for _ in range(args.rounds):
                rounds.append(round_of(browser, root))
    load = os.getloadavg()
    print(
        f"CPU: {cpu()}; load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"{args.images} images, model.js {model_mb:.1f} MB, {args.rounds} rounds (median)")
    print(f"single file: {sizes['plain']:.2f} MB without --query, {sizes['query']:.2f} MB with\n")
    print("| measure | seconds |")
    print("|---|---|")
    labels = {
        "ready_plain": "page ready, without --query",
        "ready_query": "page ready, with --query (nothing of query/ loaded)",
        "ready_single_plain": "single file ready, without --query",
        "ready_single_query": "single file ready, with --query (its data blocks unread)",
        "load": "model first load (scripts, base64, runtime, session)",
        "load_single": "model first load, single file (data blocks, base64, runtime, session)",
        "first_pick": "first pick, 1800×1200 PNG, load included",
        "first_run": "first model run",
        "run_alpha.png": "model run, loaded (1800×1200 PNG)",
        "pick_alpha.png": "whole pick, loaded: 1800×1200 PNG",
        "run_large.jpg": "model run, loaded (24 MP JPEG)",
        "pick_large.jpg": "whole pick, loaded: 24 MP JPEG (decode + reduce + resize + run)",
    }
    for key, label in labels.items():
        print(f"| {label} | {statistics.median(r[key] for r in rounds):.2f} |")


if __name__ == "__main__":
    main()
