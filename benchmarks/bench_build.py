"""Benchmark `dinoclust build` against a naive notebook-style loop, in one run, on real images.

    python benchmarks/bench_build.py                 # 500 clip-art PNGs + 24 generated 12 MP JPEGs
    python benchmarks/bench_build.py --clipart 100 --photos 8   # quicker

Measures (a) the naive baseline: one image at a time, full decode, fp32, as the original notebook;
(b) a cold `dinoclust build` (empty cache); (c) a warm rebuild; (d) a rebuild after adding 5 %
new images; (e) the machine's matmul peak in fp32 and bf16, the model-only throughput and the
embedding stage (decoding included) as fractions of it; and peak memory. Every build runs in its
own process (start-up included, as a user sees it) with random weights (same speed as DINO's).
Prints a Markdown table. Needs Debian's openclipart-png (apt-get install openclipart-png).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLIPART = Path("/usr/share/openclipart/png")
GFLOP_PER_IMAGE = 9.2  # ViT-S/16 at 224 px: 4.6 GMAC
ROOT = Path(__file__).resolve().parents[1]

RUN_BUILD = """
import json, resource, sys, time
start = time.perf_counter()
from generator.cli import main
sys.argv = ["dinoclust", "build", *sys.argv[1:]]
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


def run(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak(dtype_name: str, size: int = 2048, seconds: float = 3.0) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    a @ a
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def model_only(precision: str, batch: int = 32, seconds: float = 8.0) -> float:
    from generator.embed import load_embedder, plan_model

    embedder = load_embedder("random", plan_model("random", "cpu", precision))
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    embedder(pixels[:4])
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder(pixels)
        n += batch
    return n / (time.perf_counter() - start)


def embed_stage(folder: Path, precision: str, batch: int) -> float:
    """The decode+embed stage alone, in-process, no cache: images per second."""
    from generator.config import BuildConfig
    from generator.discover import discover
    from generator.embed import load_embedder, plan_model
    from generator.pipeline import embed_images, no_progress

    embedder = load_embedder("random", plan_model("random", "cpu", precision))
    images = discover([folder]).images
    site = folder.parent.parent / "stage-site"
    site.mkdir(exist_ok=True)
    config = BuildConfig(inputs=(folder,), batch_size=batch)
    start = time.perf_counter()
    result = embed_images(images, embedder, None, site, config, no_progress)
    assert len(result.records) == len(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clipart", type=int, default=500)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    args = parser.parse_args()
    from generator.embed import cpu_has_bf16, resolve_precision

    precision = resolve_precision("auto", "cpu")
    images, clip_files, spares = prepare(args.out, args.clipart, args.photos)
    photo_files = sorted((images / "photos").glob("*.jpg"))
    rows: list[tuple[str, str]] = []

    def build(name: str, inputs: Path) -> dict:
        return run(
            RUN_BUILD,
            str(inputs),
            "-o",
            str(args.out / name),
            "--weights",
            "random",
            "--cache-dir",
            str(args.out / f"cache-{inputs.name}"),
            "-q",
        )

    files = clip_files + photo_files
    n = len(files)
    naive = run(RUN_NAIVE, *map(str, files))
    cold = build("site-cold", images)
    warm = build("site-warm", images)
    for i, src in enumerate(spares):
        shutil.copyfile(src, images / "clipart" / f"new_{i:03d}_{src.name}")
    more = build("site-more", images)
    rows += [
        (
            "images",
            f"{len(clip_files)} clip-art PNGs + {len(photo_files)} generated 12 MP JPEGs = {n}",
        ),
        (
            "(a) naive baseline (1 image at a time, full decode, fp32)",
            f"{naive['seconds']:.1f} s ({n / naive['seconds']:.1f} img/s), peak RSS {naive['rss_mb']:.0f} MB",
        ),
        (
            "(b) cold `dinoclust build`",
            f"{cold['seconds']:.1f} s ({n / cold['seconds']:.1f} img/s), peak RSS {cold['rss_mb']:.0f} MB: **{naive['seconds'] / cold['seconds']:.1f}×** the baseline",
        ),
        (
            "(c) warm rebuild (nothing changed)",
            f"{warm['seconds']:.2f} s = **{100 * warm['seconds'] / cold['seconds']:.1f} %** of cold; torch imported: {warm['torch']}",
        ),
        (
            f"(d) rebuild after adding {len(spares)} images ({100 * len(spares) / n:.0f} %)",
            f"{more['seconds']:.2f} s = **{100 * more['seconds'] / cold['seconds']:.1f} %** of cold",
        ),
    ]
    fp32, bf16 = matmul_peak("float32"), matmul_peak("bfloat16")
    ceiling = {"fp32": fp32, "bf16": bf16}.get(precision, fp32) / GFLOP_PER_IMAGE
    model = model_only(precision)
    stage = embed_stage(images / "clipart", precision, batch=32)
    rows += [
        (
            "(e) matmul peak fp32 / bf16",
            f"{fp32:.0f} / {bf16:.0f} GFLOP/s (CPU bf16 units: {cpu_has_bf16()})",
        ),
        (
            f"model only, {precision}, batch 32",
            f"{model:.1f} img/s = {100 * model / ceiling:.0f} % of the {ceiling:.0f} img/s matmul ceiling",
        ),
        (
            f"embedding stage, clip art, {precision}",
            f"{stage:.1f} img/s = {100 * stage / model:.0f} % of model-only",
        ),
    ]
    print(f"\n| measure ({sys.platform}, {precision} chosen by --precision auto) | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
