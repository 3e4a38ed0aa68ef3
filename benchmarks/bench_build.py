"""Benchmark `dinoclust build` against a naive notebook-style loop, in one run, on real images.

    python benchmarks/bench_build.py                  # 1,000 clip-art PNGs (about 8 minutes)
    python benchmarks/bench_build.py --clipart 200 --seconds 3   # quicker
    python benchmarks/bench_build.py --precision int8   # the builds in int8 (a CPU without bf16)

Measures, in one run on this CPU: the bf16 and fp32 ceilings (a matmul of ViT-S/16's shapes);
each backend and request size (torch fp32/bf16, OpenVINO fp32/bf16 when the accel extra is
installed), model only; decode-only throughput at 1 and 2 workers, threads against processes,
on generated 12 MP JPEGs and on clip art; the embedding stage (decode + model) against the model
alone; then the naive baseline (one image at a time, full decode, fp32, as the original notebook)
against a cold `dinoclust build`, a warm rebuild, and a rebuild after adding 5 % new images.
Every build runs in its own process (start-up included, as a user sees it) with random weights
(same speed as DINO's). Prints one Markdown table, targets met or not. Needs Debian's
openclipart-png (apt-get install openclipart-png).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLIPART = Path("/usr/share/openclipart/png")
GFLOP_PER_IMAGE = 9.2  # ViT-S/16 at 224 px: 4.6 GMAC
MLP_SHAPES = (6304, 384, 1536)  # batch 32 × 197 tokens, @ the MLP's 384 × 1536 weight
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.bench_previews

RUN_CLI = """  # `python -c RUN_CLI build …`: a dinoclust command in its own process, timed
import json, resource, sys, time
start = time.perf_counter()
from generator.cli import main
sys.argv = ["dinoclust", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps({"seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch": "torch" in sys.modules}))
"""

RUN_NAIVE = """
import json, resource, sys, time
start = time.perf_counter()
import timm, torch
from PIL import Image
from torchvision import transforms
model = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0).eval()
tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
features = []
for path in sys.argv[1:]:
    image = Image.open(path).convert("RGB")
    with torch.no_grad():
        features.append(model(tf(image).unsqueeze(0)))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def prepare(out: Path, n_clipart: int, n_photos: int) -> tuple[Path, list[Path], list[Path]]:
    """out/images/{clipart,photos}; returns the folder, the clip-art files and spare files."""
    if not CLIPART.is_dir():
        sys.exit("needs Debian's clip art: apt-get install -y openclipart-png")
    every = sorted(p for p in CLIPART.rglob("*.png") if p.stat().st_size > 2000)
    step = max(1, len(every) // (n_clipart + n_clipart // 10 + 1))
    chosen = every[::step]
    images = out / "images"
    shutil.rmtree(out, ignore_errors=True)
    (images / "clipart").mkdir(parents=True)
    files = []
    for i, src in enumerate(chosen[:n_clipart]):
        files.append(shutil.copyfile(src, images / "clipart" / f"{i:04d}_{src.name}"))
    spares = chosen[n_clipart : n_clipart + max(1, n_clipart // 20)]
    rng = np.random.default_rng(0)
    (images / "photos").mkdir()
    for i in range(n_photos):  # 12 MP "photos": smooth gradients plus sensor-like noise
        y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
        base = np.stack([x / 16 + 40 * i, y / 12, (x + y) / 28], axis=-1) % 256
        noisy = base + rng.normal(0, 6, size=base.shape)
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(
            images / "photos" / f"photo_{i:03d}.jpg", quality=90
        )
    return images, files, spares


def run(code: str, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def photos_for_decoding(out: Path, count: int = 8) -> list[Path]:
    """12 MP "photos": smooth gradients plus sensor-like noise, JPEG quality 90 (bench_previews)."""
    from benchmarks.bench_previews import generated

    folder = out / "decode-photos"
    folder.mkdir(parents=True, exist_ok=True)
    return generated(folder, count)


def matmul_peak(dtype_name: str, seconds: float) -> float:
    """GFLOP/s of the MLP's matmul, the bulk of ViT-S/16's work, in this dtype."""
    import torch

    dtype = getattr(torch, dtype_name)
    m, k, n = MLP_SHAPES
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


def throughput(embedder, seconds: float, batch: int = 32) -> float:
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    embedder(pixels)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder(pixels)
        n += batch
    return n / (time.perf_counter() - start)


# Each model setting, and the embedding stage, is measured in a process of its own: with
# OpenVINO 2026.4.1, a bf16 model compiled in a process where an fp32 one was compiled before ran
# at about a seventh of its speed (16 against 114 img/s on an AMX Xeon). A build compiles one.
IN_PROCESS = """
import json, sys
from benchmarks import bench_build
print(json.dumps(getattr(bench_build, sys.argv[1])(*json.loads(sys.argv[2]))))
"""


def one_setting(backend: str, precision: str, chunk: int, seconds: float, cache: str) -> float:
    """Model-only img/s of one backend, precision and request size (run in its own process)."""
    from generator.model import accel
    from generator.model.embed import load_embedder, plan_model

    info = plan_model("random", "cpu", precision, backend=backend)
    if backend == "torch":
        return throughput(load_embedder("random", info), seconds)
    accel.CHUNK = chunk
    return throughput(load_embedder("random", info, cache_dir=Path(cache)), seconds)


def model_settings(cache: Path, seconds: float) -> list[tuple[str, float]]:
    """Model-only img/s for every backend and request size offered on this machine."""
    from generator.model import accel
    from generator.model.int8 import nncf_installed

    settings = [("torch", precision, 0) for precision in ("fp32", "bf16")]
    if accel.openvino_installed():
        settings.append(("openvino", "fp32", accel.CHUNK))
        settings += [("openvino", "bf16", chunk) for chunk in (8, 16)]  # 32: see accel.CHUNK
        if nncf_installed():
            settings.append(("openvino", "int8", accel.CHUNK))
    found = []
    for backend, precision, chunk in settings:
        rate = run(
            IN_PROCESS, "one_setting", json.dumps([backend, precision, chunk, seconds, str(cache)])
        )
        if backend == "torch":
            found.append((f"torch {precision}, batch 32", rate))
        else:
            found.append((f"OpenVINO {precision}, batch 32 in requests of {chunk}", rate))
    return found


# A model loaded once in its own process, measured for a slice each time the driver writes
# a number of seconds on its stdin (in_turns).
IN_TURNS = """
import json, sys
from benchmarks import bench_build
bench_build.serve(*json.loads(sys.argv[1]))
"""


def serve(backend: str, precision: str, chunk: int, cache: str) -> None:
    from generator.model import accel
    from generator.model.embed import load_embedder, plan_model

    info = plan_model("random", "cpu", precision, backend=backend)
    accel.CHUNK = chunk
    embedder = load_embedder("random", info, cache_dir=Path(cache))
    print(json.dumps(f"{info.backend} {info.precision}"), flush=True)
    for line in sys.stdin:
        print(json.dumps(throughput(embedder, float(line))), flush=True)


def in_turns(
    settings: list[tuple[str, str, int]], cache: Path, seconds: float, rounds: int = 8
) -> list[float]:
    """Model-only img/s of `settings`, measured in turns: each loaded once in its own process,
    then one slice each per round, so that the load of a shared machine falls on all of them
    alike; the median slice of each. Measured one after the other instead, int8 against fp32
    came out anywhere from 0.98x to 4x on 2 cores at load 6 (docs/performance.md)."""
    workers = []
    try:
        for setting in settings:  # one at a time: a conversion or quantisation is not shared
            worker = subprocess.Popen(
                [sys.executable, "-c", IN_TURNS, json.dumps([*setting, str(cache)])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            workers.append(worker)
            assert worker.stdout is not None and worker.stdout.readline()  # loaded
        slices: list[list[float]] = [[] for _ in settings]
        for _ in range(rounds):
            for worker, rates in zip(workers, slices, strict=True):
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write(f"{seconds / rounds}\n")
                worker.stdin.flush()
                rates.append(json.loads(worker.stdout.readline()))
        return [float(np.median(rates)) for rates in slices]
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait()


def decode_in_processes(files: list[Path], workers: int | None = None, preview: int = 0) -> None:
    """Every file through the build's decode workers (None: one per CPU), results dropped."""
    from generator.engines.local import EmbedOptions, _Decoder

    with _Decoder(EmbedOptions(preview_size=preview, workers=workers), len(files)) as decoder:
        for _ in decoder.results(files, range(len(files))):
            pass


def decode_scaling(files: list[Path], workers: int, preview: int) -> tuple[float, float]:
    """Decode-only img/s (model input, thumbnail and preview, as a build makes them): threads,
    processes."""
    from concurrent.futures import ThreadPoolExecutor

    from generator.engines.local import _try_decode

    def threads() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda p: _try_decode(p, 192, preview), files))

    def processes() -> None:
        decode_in_processes(files, workers, preview)

    rates = []
    for how in (threads, processes):
        how()  # warm: the file cache, the forkserver
        start = time.perf_counter()
        how()
        rates.append(len(files) / (time.perf_counter() - start))
    return rates[0], rates[1]


def embed_stage(folder: str, cache: str) -> tuple[str, float, float]:
    """The decode+embed stage alone, no embedding cache, as `--backend auto` and the default
    workers run it, then the same model alone: images per second (run in its own process)."""
    from generator.commands.stages import embed_images
    from generator.config import BuildConfig
    from generator.ingest.discover import discover
    from generator.model.embed import load_embedder, plan_model
    from generator.types import no_progress

    info = plan_model("random", "auto", "auto")
    embedder = load_embedder("random", info, cache_dir=Path(cache))
    images = discover([Path(folder)]).images
    site = Path(folder).parent.parent / "stage-site"
    site.mkdir(exist_ok=True)
    config = BuildConfig(inputs=(Path(folder),))
    start = time.perf_counter()
    result = embed_images(images, embedder, None, site, config, no_progress)
    assert len(result.records) == len(images)
    rate = len(images) / (time.perf_counter() - start)
    return f"{info.backend} {info.precision}", rate, throughput(embedder, 8.0)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clipart", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0, help="per model setting")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument(
        "--precision", default="auto", help="of the builds: auto, or int8 on a CPU without bf16"
    )
    args = parser.parse_args()
    from generator.config import BuildConfig
    from generator.model import accel
    from generator.model.embed import cpu_has_bf16

    images, clip_files, spares = prepare(args.out, args.clipart, 0)
    precision = args.precision
    cache = args.out / "cache-models"  # the OpenVINO conversion, once for the whole run
    rows: list[tuple[str, str]] = []
    load = os.getloadavg()
    bf16, fp32 = matmul_peak("bfloat16", args.seconds), matmul_peak("float32", args.seconds)
    # without bf16 units torch emulates bf16 (1 GFLOP/s on an AVX2-only EPYC): fp32 is the ceiling
    best_dtype = "bf16" if bf16 >= fp32 else "fp32"
    ceiling = max(bf16, fp32) / GFLOP_PER_IMAGE
    rows.append(
        (
            "ceiling: matmul 6,304×384 @ 384×1,536, bf16 / fp32",
            f"{bf16:.0f} / {fp32:.0f} GFLOP/s → {best_dtype} ceiling **{ceiling:.1f} img/s** "
            f"(CPU bf16 units: {cpu_has_bf16()})",
        )
    )
    settings = model_settings(cache, args.seconds)
    for name, rate in settings:
        rows.append(
            (
                f"model only: {name}",
                f"{rate:.1f} img/s = {100 * rate / ceiling:.0f} % of the ceiling",
            )
        )
    photos = photos_for_decoding(args.out)
    clips = clip_files[: min(len(clip_files), 300)]
    preview = BuildConfig.preview_size  # a build makes previews unless --preview-size 0
    for name, files in (("12 MP JPEGs", photos * 2), ("clip art", clips)):
        one, two = decode_scaling(files, 1, preview), decode_scaling(files, 2, preview)
        rows.append(
            (
                f"decode only, {name}, with {preview} px previews: 1 → 2 workers",
                f"threads {one[0]:.1f} → {two[0]:.1f} img/s ({two[0] / one[0]:.2f}×); "
                f"processes {one[1]:.1f} → {two[1]:.1f} img/s ({two[1] / one[1]:.2f}×)",
            )
        )
    stage_args = json.dumps([str(images / "clipart"), str(cache)])
    chosen, stage, model = run(IN_PROCESS, "embed_stage", stage_args)
    rows.append(
        (
            f"embedding stage, clip art, {chosen} (auto), {len(os.sched_getaffinity(0))} workers",
            f"{stage:.1f} img/s = {100 * stage / model:.0f} % of model-only ({model:.1f} img/s)",
        )
    )

    def build(name: str, cache: str = "cache-build") -> dict:
        return run(
            RUN_CLI,
            "build",
            str(images),
            "-o",
            str(args.out / name),
            "--weights",
            "random",
            "--cache-dir",
            str(args.out / cache),
            "--precision",
            args.precision,
            "-q",
        )

    n = len(clip_files)
    naive = run(RUN_NAIVE, *map(str, clip_files))
    cold = build("site-cold")
    # the same images in a cache that holds only the model's one-off OpenVINO conversion: a
    # new collection on a machine that has built before
    converted = args.out / "cache-converted"
    if (args.out / "cache-build" / "openvino").is_dir():  # with int8's quantised model
        shutil.copytree(args.out / "cache-build" / "openvino", converted / "openvino")
    later = build("site-later", converted.name)
    warm = build("site-warm")
    for i, src in enumerate(spares):
        shutil.copyfile(src, images / "clipart" / f"new_{i:03d}_{src.name}")
    more = build("site-more")
    speedup = naive["seconds"] / cold["seconds"]
    later_speedup = naive["seconds"] / later["seconds"]
    rows += [
        ("images", f"{n} clip-art PNGs (openclipart-png); builds with --precision {precision}"),
        (
            "naive baseline (1 image at a time, full decode, fp32)",
            f"{naive['seconds']:.1f} s ({n / naive['seconds']:.1f} img/s), peak RSS {naive['rss_mb']:.0f} MB",
        ),
        (
            "cold `dinoclust build`, the first on this machine (its own process; start-up and the one-off OpenVINO conversion, and int8's quantisation, included)",
            f"{cold['seconds']:.1f} s ({n / cold['seconds']:.1f} img/s), peak RSS {cold['rss_mb']:.0f} MB: **{speedup:.2f}×** the baseline",
        ),
        (
            "cold `dinoclust build` of a new collection (the conversion, and int8's quantisation, kept from before)",
            f"{later['seconds']:.1f} s ({n / later['seconds']:.1f} img/s): **{later_speedup:.2f}×** the baseline",
        ),
        (
            "warm rebuild (nothing changed)",
            f"{warm['seconds']:.2f} s = **{100 * warm['seconds'] / cold['seconds']:.1f} %** of cold; torch imported: {warm['torch']}",
        ),
        (
            f"rebuild after adding {len(spares)} images ({100 * len(spares) / n:.0f} %)",
            f"{more['seconds']:.2f} s = **{100 * more['seconds'] / cold['seconds']:.1f} %** of cold",
        ),
    ]
    best = max(rate for _, rate in settings)
    if any(name.startswith("OpenVINO int8") for name, _ in settings):
        # in turns, not one after the other: the ratio must not depend on when the load changed
        pair = [("openvino", "fp32", accel.CHUNK), ("openvino", "int8", accel.CHUNK)]
        fp32_ov, int8 = in_turns(pair, cache, 2 * args.seconds)
        rows.append(
            (
                "target (CPU without bf16): model stage int8 ≥ 1.8× fp32 (OpenVINO, model only, "
                "measured in turns: median of 8 slices each)",
                f"{int8:.1f} / {fp32_ov:.1f} img/s = {int8 / fp32_ov:.2f}×: {met(int8 >= 1.8 * fp32_ov)}",
            )
        )
    if precision == "int8":
        rows.append(
            (
                "target (CPU without bf16): cold build in int8 ≥ 2× the baseline",
                f"first build {speedup:.2f}×: {met(speedup >= 2)}; "
                f"a new collection {later_speedup:.2f}×: {met(later_speedup >= 2)}",
            )
        )
    rows += [
        (
            f"target: model stage ≥ 85 % of the {best_dtype} ceiling",
            f"{100 * model / ceiling:.0f} % (best setting {100 * best / ceiling:.0f} %): {met(model >= 0.85 * ceiling)}",
        ),
        (
            "target: embedding stage ≥ 85 % of model-only",
            f"{100 * stage / model:.0f} %: {met(stage >= 0.85 * model)}",
        ),
        (
            "target: cold build ≥ 2.5× the baseline",
            f"first build {speedup:.2f}×: {met(speedup >= 2.5)}; "
            f"a new collection {later_speedup:.2f}×: {met(later_speedup >= 2.5)}",
        ),
        (
            "target: warm rebuild ≤ 5 % of cold",
            f"{100 * warm['seconds'] / cold['seconds']:.1f} %: {met(warm['seconds'] <= 0.05 * cold['seconds'])}",
        ),
    ]
    after = os.getloadavg()
    print(
        f"\n| measure ({cpu_name()}, {len(os.sched_getaffinity(0))} CPUs; load average "
        f"{load[0]:.1f} before, {after[0]:.1f} after) | result |"
    )
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
