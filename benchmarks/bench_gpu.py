"""The GPU path: model-only img/s against the whole embed pipeline, on one lent device.

    python benchmarks/bench_gpu.py                       # 10,000 generated 12 MP JPEGs
    python benchmarks/bench_gpu.py --count 8 --device cpu --seconds 2   # smoke test, no GPU

Generates `--count` 12 MP JPEGs (4000×3000, quality 90, gradients plus noise; written once, in
parallel, kept in --out), then measures in one run: (a) the model alone on the device, batch 32,
random pixels already in memory; (b) `dinoclust embed` over the JPEGs in-process (decoding in
every CPU core's worker, thumbnails, the Parquet writer), no cache. Target: (b) ≥ 70 % of (a).
Prints a Markdown table naming the device and the CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_photo(path: Path, seed: int, width: int, height: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / 16 + 40 * seed, y / 12, (x + y) / 28], axis=-1) % 256
    noisy = base + rng.normal(0, 6, size=base.shape)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def photos(folder: Path, count: int, width: int = 4000, height: int = 3000) -> Path:
    """count distinct JPEGs (each seed gives other pixels, so no two share a hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [folder / f"photo_{i:05d}.jpg" for i in range(count)]
    missing = [(p, i) for i, p in enumerate(wanted) if not p.exists()]
    if missing:
        paths, seeds = zip(*missing, strict=True)
        sizes = [width] * len(missing), [height] * len(missing)
        with ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            list(pool.map(make_photo, paths, seeds, *sizes, chunksize=8))
    return folder


def model_only(device: str, precision: str, seconds: float) -> tuple[float, str]:
    from generator.model.embed import load_embedder, plan_model

    info = plan_model("random", device, precision)
    embedder = load_embedder("random", info)
    pixels = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    for _ in range(3):
        embedder(pixels)  # warm-up: cuDNN/cuBLAS pick their kernels
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder(pixels)
        n += len(pixels)
    return n / (time.perf_counter() - start), f"{info.backend} {info.precision} on {info.device}"


def pipeline(folder: Path, out: Path, device: str, precision: str) -> float:
    from generator.commands.embed import embed_collection
    from generator.config import EmbedConfig, ModelConfig

    shutil.rmtree(out, ignore_errors=True)
    config = EmbedConfig(
        inputs=(folder,), output=out, model=ModelConfig("random", device, precision), cache_dir=None
    )
    start = time.perf_counter()
    result = embed_collection(config)
    seconds = time.perf_counter() - start
    assert result.images == len(list(folder.glob("*.jpg"))), result
    return result.images / seconds


def device_name(device: str) -> str:
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seconds", type=float, default=20.0, help="of the model-only run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-gpu")
    args = parser.parse_args()
    start = time.perf_counter()
    folder = photos(args.out / "photos", args.count)
    made = time.perf_counter() - start
    model, chosen = model_only(args.device, args.precision, args.seconds)
    whole = pipeline(folder, args.out / "emb", args.device, args.precision)
    cores = len(os.sched_getaffinity(0))
    ratio = whole / model
    print(f"\n| measure ({device_name(args.device)}, {cores} CPU cores) | result |")
    print("|---|---|")
    print(f"| images | {args.count} generated 12 MP JPEGs (made in {made:.0f} s) |")
    print(f"| model only, {chosen}, batch 32 | {model:.1f} img/s |")
    print(f"| whole `dinoclust embed` ({cores} decode workers) | {whole:.1f} img/s |")
    verdict = "met" if ratio >= 0.70 else "**not met**"
    print(f"| target: whole ≥ 70 % of model-only | {100 * ratio:.0f} %: {verdict} |")


if __name__ == "__main__":
    main()
