"""Benchmark the page's "Find where a photo belongs" in headless Chromium, from file://.

    python benchmarks/bench_query_page.py              # 24 clip-art images, 3 rounds (~4 minutes)
    python benchmarks/bench_query_page.py --rounds 1
    python benchmarks/bench_query_page.py --search 10000 100000   # the search alone (~1 minute)
    python benchmarks/bench_query_page.py --models --rounds 1     # each ONNX candidate (~5 minutes)

Two sites are built from the same clip art with --weights random (the hub is unreachable here):
one with --query, one without. For each round, in a fresh page:
- how long each page takes until it is ready (data-ready): the control must not slow the page;
  the single files (--single-file, without and with --query) too, and their sizes;
- the model's first load (the five query/ scripts, decoding the base64, compiling the runtime
  and creating the session: the page's own timings.load);
- the time of one query after that: the model's run alone (timings.embed) and the whole pick
  (reading, decoding and preparing the photo, the run, the cosine over the index, the drawing),
  for a 1800 × 1200 PNG and a 24 MP JPEG.
With --search N…: the page's own search code (static/js/query.js's index decoding and `place`)
over a synthetic but real-format query/index.js of N random L2-normalised vectors (written by
site/query.py's own writer), in a bare page from file:// (no plot, no model): the index's size,
the time to load its script (read + parse) and to decode it, the first query and the median of
the later ones; each query's 12 are checked against numpy's over the same int8 rows.
With --models: the same query site, its model.js swapped for each candidate bench_query.py
measures in Python (ONNX fp32, fp16 weights — the site's —, int8 dynamic by onnxruntime's
quantiser), each in a fresh page: model.js's size, the first load, the first run and the median
of the later runs (the 1800 × 1200 PNG), and the page's answer against fp32's (same 12, same
cluster at every k, the top cosine's difference).
Prints a Markdown table with the CPU (lscpu) and the load; compare rows within one run only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.analysis.analyse import Analysis, Clustering  # noqa: E402
from generator.commands.build import build_site  # noqa: E402
from generator.config import BuildConfig  # noqa: E402
from generator.report import read_report  # noqa: E402
from generator.site.query import INDEX_JS, index_script, query_index  # noqa: E402
from generator.site.singlefile import render_single  # noqa: E402
from generator.types import ModelInfo  # noqa: E402
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


def clip_art(root: Path, images: int) -> tuple[Path, list[Path]]:
    """root/photos: `images` of 40 clip-art files spread over the collection; and the 40."""
    files = sorted(CLIPART.rglob("*.png"))
    art = files[:: max(1, len(files) // 40)][:40]
    photos = root / "photos"
    photos.mkdir()
    for i, path in enumerate(art[:images]):
        shutil.copyfile(path, photos / f"{i:02d}_{path.name}")
    return photos, art


def build(root: Path, images: int) -> Path:
    photos, art = clip_art(root, images)
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


# ---- --search: the page's search over N images -------------------------------------------------
SEARCH_QUERIES = 11  # the first, then the median of the other ten
DIM = 384
LOAD_INDEX_JS = """() => new Promise((resolve, reject) => {
  const started = performance.now(), node = document.createElement('script');
  node.src = 'query/index.js';
  node.onload = () => resolve(performance.now() - started);
  node.onerror = reject;
  document.body.appendChild(node); })"""
DECODE_JS = """() => { const started = performance.now();
  window.__index = window.dinoclust.queryIndex.decode(window.DINOCLUST_QUERY_INDEX);
  window.DINOCLUST_QUERY_INDEX = null;
  return performance.now() - started; }"""
PLACE_JS = """(feature) => { const q = new Float32Array(feature), started = performance.now();
  const answer = window.dinoclust.queryIndex.place(window.__index, q);
  return { ms: performance.now() - started, top: answer.top }; }"""


def search_page(root: Path, rows: int) -> Path:
    """A bare page with query.js and an index.js of `rows` random vectors (5 PCA dims, k = 2…10)."""
    rng = np.random.default_rng(rows)
    features = rng.normal(size=(rows, DIM)).astype(np.float32)
    d = 5
    components = np.linalg.qr(rng.normal(size=(DIM, d)))[0].T.astype(np.float32)
    mean = features.mean(axis=0)
    coords = (features - mean) @ components.T
    clusterings = {}
    for k in range(2, 11):
        labels = rng.integers(0, k, rows)
        centres = np.stack([coords[labels == c].mean(axis=0) for c in range(k)])
        distances = np.linalg.norm(coords - centres[labels], axis=1)
        clusterings[k] = Clustering(k, labels, centres, (), 0.0, distances, {})
    analysis = Analysis(coords, np.ones(d), clusterings, DIM, rows, (), mean, components)
    index = query_index(
        features,
        analysis,
        ModelInfo("synthetic", "random", "random:0", True, "cpu", "fp32"),
        (192, 800),
    )
    folder = root / f"search-{rows}"
    (folder / "query").mkdir(parents=True)
    (folder / INDEX_JS).write_text(index_script(index), encoding="utf-8")
    shutil.copyfile(ROOT / "templates" / "static" / "js" / "query.js", folder / "query.js")
    (folder / "stub.js").write_text(
        f"window.dinoclust = {{ data: {{ images: {{ length: {rows} }} }}, util: {{}}, "
        "state: {} };\n",
        encoding="utf-8",
    )
    (folder / "index.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<script src='stub.js'></script><script src='query.js'></script></body></html>\n",
        encoding="utf-8",
    )
    return folder


def numpy_top(folder: Path, feature: np.ndarray) -> list[int]:
    """The 12 a query should get from the same int8 rows (as `dinoclust query` searches)."""
    index = json.loads((folder / INDEX_JS).read_text(encoding="utf-8").split(" = ", 1)[1][:-2])
    vectors = np.frombuffer(base64.b64decode(index["vectors"]), np.int8).reshape(-1, DIM)
    scales = np.frombuffer(base64.b64decode(index["scales"]), "<f4")
    q = feature.astype(np.float64) / np.linalg.norm(feature)
    scores = (vectors.astype(np.float64) @ q) * scales
    return np.argsort(-scores, kind="stable")[:12].tolist()


def search_round(browser, folder: Path, rows: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(SEARCH_QUERIES, DIM)).astype(np.float32)
    page = browser.new_page()
    try:
        page.goto(folder.joinpath("index.html").as_uri())
        load = page.evaluate(LOAD_INDEX_JS)
        decode = page.evaluate(DECODE_JS)
        times = []
        for i, q in enumerate(queries):
            answer = page.evaluate(PLACE_JS, q.tolist())
            times.append(answer["ms"])
            got = [t["index"] for t in answer["top"]]
            if i in (0, SEARCH_QUERIES - 1):  # the page finds numpy's 12
                assert got == numpy_top(folder, q), (rows, i, got)
    finally:
        page.close()
    size = (folder / INDEX_JS).stat().st_size / 1e6
    later = statistics.median(times[1:])
    return {"size": size, "load": load, "decode": decode, "first": times[0], "later": later}


def search_main(sizes: list[int], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, launch() as browser:
        rows_out = []
        for rows in sizes:
            folder = search_page(Path(tmp), rows)
            runs = [search_round(browser, folder, rows) for _ in range(rounds)]
            rows_out.append((rows, {k: statistics.median(r[k] for r in runs) for k in runs[0]}))
    load = os.getloadavg()
    print(
        f"CPU: {cpu()}; load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"command: python benchmarks/bench_query_page.py {' '.join(sys.argv[1:])}")
    print(
        f"{rounds} fresh page(s) per size (median); search: first query, then the median of "
        f"{SEARCH_QUERIES - 1}\n"
    )
    print(
        "| images | index.js | load (script read + parse) | decode | first search | later searches |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for rows, r in rows_out:
        print(
            f"| {rows:,} | {r['size']:.1f} MB | {r['load']:.0f} ms | {r['decode']:.0f} ms "
            f"| {r['first']:.1f} ms | {r['later']:.1f} ms |"
        )


# ---- --models: each ONNX candidate in the page ------------------------------------------------
LATER_RUNS = 5


def candidates(cache: Path) -> dict[str, bytes]:
    """fp32, fp16 weights (the site's) and int8 dynamic, as bench_query.py makes them."""
    from bench_query import int8  # benchmarks/ is the script's folder, so on sys.path

    from generator.model.export import onnx_model

    out = {p: onnx_model("random", 0, cache, p) for p in ("fp32", "fp16")}
    out["int8 dynamic"] = int8(cache)
    return out


def model_round(browser, site: Path, photo: Path) -> dict[str, object]:
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        pick(page, [photo])
        for _ in range(LATER_RUNS):
            pick(page, [photo])
        timings = page.evaluate("() => window.dinoclust.query.timings")
        answer = page.evaluate(
            "() => { const a = window.dinoclust.query.answers()[0].answer;"
            " return { top: a.top, clusters: a.clusters }; }"
        )
        assert opened.external == [] and opened.errors == [], (opened.external, opened.errors)
    runs = timings["embed"]
    return {
        "load": timings["load"] / 1000,
        "first": runs[0] / 1000,
        "later": statistics.median(runs[1:]) / 1000,
        "answer": answer,
    }


def models_main(images: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, launch() as browser:
        root = Path(tmp)
        photos, art = clip_art(root, images)
        site = root / "site"
        cache = root / "cache"
        config = BuildConfig(
            inputs=(photos,), output=site, weights="random", query=True, k_max=6, cache_dir=cache
        )
        build_site(config)
        make_queries(root / "queries", art[30:])
        photo = root / "queries" / "alpha.png"
        results = {}
        for name, model in candidates(cache).items():
            text = base64.b64encode(model).decode("ascii")
            (site / "query" / "model.js").write_text(
                f'window.DINOCLUST_QUERY_MODEL = "{text}";\n', encoding="utf-8"
            )
            runs = [model_round(browser, site, photo) for _ in range(rounds)]
            results[name] = {
                "onnx": len(model) / 1e6,
                "js": (site / "query" / "model.js").stat().st_size / 1e6,
                **{k: statistics.median(r[k] for r in runs) for k in ("load", "first", "later")},
                "answer": runs[0]["answer"],
            }
    load = os.getloadavg()
    print(
        f"CPU: {cpu()}; load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"command: python benchmarks/bench_query_page.py {' '.join(sys.argv[1:])}")
    print(
        f"{images} images, the 1800×1200 PNG; {rounds} fresh page(s) per model (median); "
        f"later runs: median of {LATER_RUNS}\n"
    )
    print("| model | ONNX | model.js | first load | first run | later runs | answer vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    ref = results["fp32"]["answer"]
    for name, r in results.items():
        a = r["answer"]
        same_top = [t["index"] for t in a["top"]] == [t["index"] for t in ref["top"]]
        same_k = all(
            a["clusters"][k]["cluster"] == c["cluster"] for k, c in ref["clusters"].items()
        )
        delta = abs(a["top"][0]["cosine"] - ref["top"][0]["cosine"])
        chosen = " (the site's)" if name == "fp16" else ""
        print(
            f"| {name}{chosen} | {r['onnx']:.1f} MB | {r['js']:.1f} MB | {r['load']:.2f} s "
            f"| {r['first']:.2f} s | {r['later']:.2f} s | top-12 {'same' if same_top else 'differs'}"
            f", clusters {'same' if same_k else 'differ'}, top cosine ±{delta:.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--search", type=int, nargs="+", metavar="N", help="the search alone")
    parser.add_argument("--models", action="store_true", help="each ONNX candidate in the page")
    args = parser.parse_args()
    if args.models:
        models_main(args.images, args.rounds)
        return
    if args.search:
        search_main(args.search, args.rounds)
        return
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
