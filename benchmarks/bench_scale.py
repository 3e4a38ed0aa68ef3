"""Benchmark `dinoclust build --embeddings` from a large Parquet store, stage by stage.

    python benchmarks/bench_scale.py                      # 10,000 and 100,000 rows
    python benchmarks/bench_scale.py --sizes 10000 30000  # quicker
    python benchmarks/bench_scale.py --streamed 10000000  # the streamed report (no thumbnails)
    python benchmarks/bench_scale.py --streamed 10000000 --store /big/emb-10m  # made once, reused
    python benchmarks/bench_scale.py --ray-images 1000    # local engine against a local Ray
    python benchmarks/bench_scale.py --one-step 100000    # 100k end to end, then from Parquet

--one-step N generates N pictures (bench_page.py's 160×120 PNGs), times the decode workers alone
on them (every CPU, nothing else running), builds the site from them in one step with bench_page.py's fake embedder (no model), then `build --embeddings` from a store of
N rows; each build in a fresh process, timed per stage, with its peak RSS. Then the one-step site
is opened in headless Chromium (bench_page.py's load and k-switch measures; `--no-page` skips
it). `--keep DIR` keeps the pictures and the store in DIR for the next run.

--streamed N writes N synthetic 384-d rows (vectorised, in parts of 500,000 rows, no thumbnails;
10M rows take 15.4 GB) and builds the site in a fresh process: above 1M rows the streamed passes
(PCA, sample, K-means, assignment). Reports the time of each pass, the peak RSS and the site's
size. With --store DIR the rows are written there once and reused by later runs (not timed).
--ray-images N embeds the same N images (the first N clip-art PNGs of Debian's openclipart-png
under /usr/share/openclipart/png, else generated ones) with `dinoclust embed --engine local` and
`--engine ray` (a local cluster, --weights random, CPU) and says whether the stores are equal.

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
import os
import resource
import shutil
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

# The children time each stage by wrapping the pipeline's own functions with this.
TIMER = """
import json, sys, time
from pathlib import Path
times = {}
def timed(name, func):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start
    return wrapper
"""

DRIVER = (
    TIMER
    + """
import generator.commands.build as pipeline
import generator.commands.stages as stages
for name, attr in [("read store + thumbs", "from_store"), ("PCA + K-means", "cached_analysis"),
                   ("near-duplicates + neighbours", "find_similar"), ("report", "build_report"),
                   ("page", "render_site"), ("exports", "write_exports"), ("publish", "publish")]:
    for module in (pipeline, stages):  # wherever the stage is called from
        if hasattr(module, attr):
            setattr(module, attr, timed(name, getattr(module, attr)))
from generator.config import BuildConfig
start = time.perf_counter()
pipeline.build_site(BuildConfig(embeddings=Path(sys.argv[1]), output=Path(sys.argv[2])))
times["total"] = time.perf_counter() - start
print(json.dumps(times))
"""
)


def write_store(folder: Path, n: int) -> float:
    """A store of n rows as `dinoclust embed` writes it; returns the seconds it took."""
    from PIL import Image, ImageDraw

    from generator.ingest.imaging import encode_thumb
    from generator.storage.store import StoreWriter, model_metadata
    from generator.types import ModelInfo, Row

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    info = ModelInfo("bench-model", "none", "bench:1", False, "cpu", "fp32")
    writer = StoreWriter(folder, model_metadata(info, 48, None))
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


STREAMED_DRIVER = (
    TIMER
    + """
import generator.analysis.streamed as streamed
for name, attr in [("PCA + sample pass", "project"), ("read the sample", "sample_rows"),
                   ("K-means on the sample", "fit"), ("assignment pass", "assign"),
                   ("near-duplicates + report", "_report")]:
    setattr(streamed, attr, timed(name, getattr(streamed, attr)))
from generator.config import BuildConfig
from generator.commands.build import build_site
start = time.perf_counter()
build_site(BuildConfig(embeddings=Path(sys.argv[1]), output=Path(sys.argv[2])))
times["total"] = time.perf_counter() - start
print(json.dumps(times))
"""
)
STREAMED_PART = 500_000


def write_synthetic(folder: Path, n: int) -> float:
    """n rows of the store's schema (no thumbnails), written vectorised; returns the seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from generator.storage.store import META_GENERATION, META_PARTS, model_metadata, schema
    from generator.types import ModelInfo

    start = time.perf_counter()
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CENTRES, DIM)).astype(np.float32)
    info = ModelInfo("bench-model", "none", "bench:1", False, "cpu", "fp32")
    parts = -(-n // STREAMED_PART)
    for part in range(parts):
        rows = np.arange(part * STREAMED_PART, min(n, (part + 1) * STREAMED_PART))
        groups = rows % CENTRES
        noise = rng.standard_normal((len(rows), DIM), dtype=np.float32)
        vectors = centres[groups] + np.float32(0.6) * noise
        meta = {**model_metadata(info, 48, None), META_GENERATION: "1"}
        if part == parts - 1:
            meta[META_PARTS] = str(parts)
        columns = [
            pa.array([f"g{g:02d}/{i:08d}.png" for g, i in zip(groups, rows, strict=True)]),
            pa.array([None] * len(rows), pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
            pa.array(np.full(len(rows), 160, dtype=np.int32)),
            pa.array(np.full(len(rows), 120, dtype=np.int32)),
            pa.array([None] * len(rows), pa.binary()),
            pa.array([None] * len(rows), pa.string()),
            pa.array([None] * len(rows), pa.binary()),  # preview
        ]
        table = pa.Table.from_arrays(columns, schema=schema(DIM, meta))
        pq.write_table(table, folder / f"part-g0001-{part:05d}.parquet", compression="none")
    return time.perf_counter() - start


def run_streamed(n: int, work: Path, store: Path | None = None) -> None:
    site = work / f"site-{n}"
    if store is None or not (store / "part-g0001-00000.parquet").exists():
        store = store or work / f"emb-{n}"
        made = write_synthetic(store, n)
        print(f"wrote {n:,} rows in {made:.0f} s", file=sys.stderr)
    load = os.getloadavg()
    out = subprocess.run(
        [sys.executable, "-c", STREAMED_DRIVER, str(store), str(site)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    times = json.loads(out.strip().splitlines()[-1])
    total, html = site_bytes(site)
    assignments = (site / "assignments.parquet").stat().st_size
    print(f"| {n:,} rows | s |")
    print("|---|---:|")
    for stage, seconds in times.items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| peak RSS MB | {peak:,.0f} |")
    print(f"| site MB (without assignments.parquet) | {(total - assignments) / 1e6:.1f} |")
    print(f"| assignments.parquet MB | {assignments / 1e6:.1f} |")
    print(f"| index.html MB | {html / 1e6:.1f} |")


CLIPART = Path("/usr/share/openclipart/png")


def ray_photos(n: int, work: Path) -> Path:
    """The first n clip-art PNGs (Debian's openclipart-png, sorted by path), else n generated
    ones: the same images for both engines."""
    photos = work / "photos"
    found = sorted(CLIPART.rglob("*.png"))[:n] if CLIPART.is_dir() else []
    if len(found) == n:
        for i, source in enumerate(found):
            target = photos / source.relative_to(CLIPART).parent / f"{i:05d}-{source.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        return photos
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        pixels[:, :, i % 3] = 200
        path = photos / f"g{i % 10}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return photos


def run_ray(n: int, work: Path) -> None:
    """The same n images through both engines, in fresh processes (wall time, peak RSS of the
    driver; Ray's workers are other processes)."""
    import pyarrow.parquet as pq

    photos = ray_photos(n, work)
    seconds, peaks = {}, {}
    for engine in ("local", "ray"):
        command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "generator", "embed"]
        command += [str(photos), "-o", str(work / engine), "--engine", engine]
        command += ["--weights", "random", "--no-cache", "--device", "cpu"]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"embed --engine {engine} failed:\n{done.stderr}")
        seconds[engine] = time.perf_counter() - start
        peaks[engine] = int(done.stderr.strip().splitlines()[-1]) / 1024
        print(
            f"{engine}: load average {load:.1f} before, {os.getloadavg()[0]:.1f} after",
            file=sys.stderr,
        )
    same = pq.read_table(work / "local").equals(pq.read_table(work / "ray"))
    print(f"| {n:,} images, --weights random, CPU | s | images/s | driver peak RSS MB |")
    print("|---|---:|---:|---:|")
    for engine, value in seconds.items():
        print(f"| embed --engine {engine} | {value:.1f} | {n / value:.1f} | {peaks[engine]:,.0f} |")
    print(f"| stores equal | {same} | | |")


ONE_STEP_DRIVER = (
    TIMER
    + """
import generator.commands.build as pipeline
import generator.commands.stages as stages
from benchmarks.bench_page import ProjectionEmbedder
for name, attr in [("discover", "discover_images"), ("decode + embed + thumbnails", "embed_images"),
                   ("read store + thumbs", "from_store"), ("PCA + K-means", "cached_analysis"),
                   ("near-duplicates + neighbours", "find_similar"), ("report", "build_report"),
                   ("page", "render_site"), ("exports", "write_exports"), ("publish", "publish")]:
    for module in (pipeline, stages):  # wherever the stage is called from
        if hasattr(module, attr):
            setattr(module, attr, timed(name, getattr(module, attr)))
import resource
from generator.config import BuildConfig
source, site = Path(sys.argv[2]), Path(sys.argv[3])
if sys.argv[1] == "images":
    config, embedder = BuildConfig(inputs=(source,), output=site, cache_dir=None), ProjectionEmbedder()
else:
    config, embedder = BuildConfig(embeddings=source, output=site, cache_dir=None), None
start = time.perf_counter()
result = pipeline.build_site(config, embedder=embedder)
times["total"] = time.perf_counter() - start
times["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times["near-duplicate groups"] = len(result.report["duplicates"]["near"])
print(json.dumps(times))
"""
)
STORE_STAGES = (  # what a build from a store times; a one-step build adds discovery and decoding
    "read store + thumbs",
    "PCA + K-means",
    "near-duplicates + neighbours",
    "report",
    "page",
    "exports",
    "publish",
    "total",
)
ONE_STEP_STAGES = ("discover", "decode + embed + thumbnails", *STORE_STAGES)


def one_step_build(kind: str, source: Path, site: Path) -> dict[str, float]:
    """One build (`kind` "images" or "store") in a fresh process; its stage times and RSS."""
    done = subprocess.run(
        [sys.executable, "-c", ONE_STEP_DRIVER, kind, str(source), str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"the {kind} build failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def page_figures(site: Path) -> dict[str, float]:
    """bench_page.py's measures of a built site: load to ready, k switch median / worst."""
    import statistics

    from benchmarks.bench_page import SWITCH_JS
    from tests.browser import launch, open_page

    loads, switches = [], []
    with launch() as browser:
        for _ in range(2):  # a cold-ish and a warm load; report the worse
            start = time.perf_counter()
            with open_page(browser, site / "index.html") as opened:
                loads.append(time.perf_counter() - start)
                ks = opened.page.evaluate("() => window.dinoclust.data.k_values")
                for k in [*ks[1:], *reversed(ks[:-1])]:
                    switches.append(opened.page.evaluate(SWITCH_JS, k))
                if opened.errors:
                    sys.exit(f"console errors: {opened.errors}")
    return {
        "load to ready s": max(loads),
        "k switch median ms": statistics.median(switches),
        "k switch worst ms": max(switches),
    }


def folder_mb(folder: Path, first: str | None = None) -> float:
    """MB of the files under `folder` (only those under its `first` sub-folder, if given)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    if first:
        files = [p for p in files if p.relative_to(folder).parts[0] == first]
    return sum(p.stat().st_size for p in files) / 1e6


def decode_only(photos: Path) -> float:
    """Seconds for the decode workers alone (every CPU, model input + thumbnail, nothing kept)
    on every picture: the issue's "100k decode" figure, apart from the stage around it."""
    from benchmarks.bench_build import decode_in_processes

    files = sorted(photos.rglob("*.png"))
    start = time.perf_counter()
    decode_in_processes(files)
    return time.perf_counter() - start


def run_one_step(n: int, work: Path, page: bool) -> None:
    """N pictures end to end, then the same N rows from Parquet; prints a Markdown table."""
    from benchmarks.bench_page import make_images

    photos, store = work / f"photos-{n}", work / f"emb-{n}"
    if not photos.exists():
        start = time.perf_counter()
        make_images(photos, n)
        print(f"made {n:,} pictures in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if not store.exists():
        print(f"wrote the {n:,}-row store in {write_store(store, n):.0f} s", file=sys.stderr)
    columns: dict[str, dict[str, float]] = {}
    seconds = decode_only(photos)
    for kind, source in (("images", photos), ("store", store)):
        site = work / f"site-{kind}-{n}"
        shutil.rmtree(site, ignore_errors=True)
        figures = one_step_build(kind, source, site)
        figures["site MB"] = folder_mb(site)
        figures["thumbs MB"] = folder_mb(site, "thumbs")
        figures["index.html MB"] = (site / "index.html").stat().st_size / 1e6
        figures["data/ MB"] = folder_mb(site, "data") if (site / "data").exists() else 0.0
        if page and kind == "images":
            figures.update(page_figures(site))
        columns[kind] = figures
        print(f"{kind} build done", file=sys.stderr)
    columns["images"]["decode only, every CPU (nothing else)"] = seconds
    print(f"| {n:,} images (s) | one step, fake embedder | `build --embeddings` |")
    print("|---|---:|---:|")
    keys = [*ONE_STEP_STAGES, "decode only, every CPU (nothing else)", "peak RSS MB"]
    keys += ["near-duplicate groups", "site MB", "thumbs MB"]
    keys += ["index.html MB", "data/ MB", "load to ready s", "k switch median ms"]
    keys += ["k switch worst ms"]
    for key in keys:
        cells = [columns[kind].get(key) for kind in ("images", "store")]
        if all(cell is None for cell in cells):
            continue
        text = ["–" if cell is None else f"{cell:,.1f}" for cell in cells]
        print(f"| {key} | {text[0]} | {text[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--streamed", type=int, metavar="N", help="the streamed report of N rows")
    parser.add_argument(
        "--store", type=Path, metavar="DIR", help="--streamed: write the rows here once, reuse them"
    )
    parser.add_argument("--ray-images", type=int, metavar="N", help="local vs Ray on N images")
    parser.add_argument("--one-step", type=int, metavar="N", help="N images end to end")
    parser.add_argument("--no-page", action="store_true", help="--one-step without the browser")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="--one-step's pictures, store")
    args = parser.parse_args()
    if args.one_step:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            run_one_step(args.one_step, args.keep, not args.no_page)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
                run_one_step(args.one_step, Path(tmp), not args.no_page)
        return
    if args.streamed or args.ray_images:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            if args.streamed:
                run_streamed(args.streamed, Path(tmp), args.store)
            if args.ray_images:
                run_ray(args.ray_images, Path(tmp))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in sorted(args.sizes):  # ascending: the children's peak RSS only grows
            results.append(run(n, Path(tmp)))
            print(f"{n} rows done", file=sys.stderr)
    print("| stage (s) | " + " | ".join(f"{r['n']:,}" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for stage in STORE_STAGES:
        print(f"| {stage} | " + " | ".join(f"{r.get(stage, 0.0):.1f}" for r in results) + " |")
    for key in ("peak RSS MB", "store MB", "site MB", "index.html MB", "write store s"):
        print(f"| {key} | " + " | ".join(f"{r[key]:,.1f}" for r in results) + " |")


if __name__ == "__main__":
    main()
