"""Which int8 for the CPU: OpenVINO + NNCF against ONNX Runtime's dynamic quantisation, in one run.

    PYTHONPATH=. python benchmarks/bench_int8.py     # 240 clip art, 16 generated photos, 80 grouped
    PYTHONPATH=. python benchmarks/bench_int8.py --clipart 96 --seconds 4   # quicker

Needs OpenVINO, NNCF, ONNX and ONNX Runtime (the last two only for this comparison). On the same
images, against torch fp32: model-only throughput (batch 32, each candidate in its own process),
every image's cosine to fp32, and ARI between the K-means labels of int8 and fp32 for every k
(PCA <= 50 dims, fixed seed, as the analysis): on 80 generated images in 10 groups (as
`--precision auto`'s check), and on the clip art and photos, where K-means on random weights'
features is unstable (int8.grouped_pixels). Random weights (the hub is unreachable here): the
quantised ops are the same with DINO's weights (the same graph; NNCF picks ops by type, not by
value), the scales and so the error are not. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIPART = Path("/usr/share/openclipart/png")

IN_PROCESS = """
import json, sys
from benchmarks import bench_int8
print(json.dumps(bench_int8.candidate(*json.loads(sys.argv[1]))))
"""

CANDIDATES = {
    "torch fp32 (reference)": ("torch", ""),
    "OpenVINO fp32": ("openvino", "ov-fp32.xml"),
    "OpenVINO int8, NNCF PTQ with SmoothQuant (NNCF's default)": ("openvino", "ov-int8-sq.xml"),
    "OpenVINO int8, NNCF PTQ without SmoothQuant (chosen)": ("openvino", "ov-int8.xml"),
    "ONNX Runtime fp32": ("onnxruntime", "model.onnx"),
    "ONNX Runtime int8, dynamic": ("onnxruntime", "model-int8.onnx"),
}


def images(out: Path, n_clipart: int, n_generated: int) -> np.ndarray:
    """Clip art spread over openclipart-png and generated 640×480 "photos" (shapes on gradients
    with noise), decoded to the model's 224×224 as a build does."""
    from PIL import Image, ImageDraw

    from generator.ingest.imaging import decode

    every = sorted(p for p in CLIPART.rglob("*.png") if p.stat().st_size > 2000)
    files = every[7 :: max(1, len(every) // n_clipart)][:n_clipart]
    folder = out / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n_generated):
        y, x = np.mgrid[0:480, 0:640].astype(np.float32)
        base = np.stack([x / 3 + 30 * i, y / 2, (x + y) / 5 + 60 * (i % 3)], axis=-1) % 256
        image = Image.fromarray((base + rng.normal(0, 8, base.shape)).clip(0, 255).astype("uint8"))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = rng.integers(0, 500), rng.integers(0, 360)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse((x0, y0, x0 + rng.integers(40, 200), y0 + rng.integers(40, 200)), colour)
        files.append(folder / f"g{i:02d}.jpg")
        image.save(files[-1], quality=90)
    from generator.model.int8 import grouped_pixels

    decoded = np.stack([decode(f, 224, 64).pixels for f in files])
    return np.concatenate([decoded, grouped_pixels()])  # 80 in 10 groups: ARI (int8.check_set)


def prepare(out: Path) -> dict[str, float]:
    """The four models, written to `out`; seconds each preparation took."""
    import openvino as ov
    import torch

    from generator.model.accel import _converted
    from generator.model.int8 import check_pixels, quantise
    from generator.model.vit import create_model

    took = {}
    start = time.perf_counter()
    fp32 = _converted("random", 0)
    ov.save_model(fp32, str(out / "ov-fp32.xml"), compress_to_fp16=False)
    took["OpenVINO conversion"] = time.perf_counter() - start
    start = time.perf_counter()
    int8 = quantise(ov.Core().read_model(str(out / "ov-fp32.xml")), check_pixels())
    ov.save_model(int8, str(out / "ov-int8.xml"))
    took["NNCF quantisation"] = time.perf_counter() - start
    smoothed = quantise(ov.Core().read_model(str(out / "ov-fp32.xml")), check_pixels(), True)
    ov.save_model(smoothed, str(out / "ov-int8-sq.xml"))
    start = time.perf_counter()
    model = create_model("random", 0).eval()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, 3, 224, 224),
            str(out / "model.onnx"),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
            opset_version=17,
            dynamo=False,
        )
    took["ONNX export"] = time.perf_counter() - start
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.perf_counter()
    quantize_dynamic(
        str(out / "model.onnx"), str(out / "model-int8.onnx"), weight_type=QuantType.QInt8
    )
    took["ORT dynamic quantisation"] = time.perf_counter() - start
    return took


def candidate(kind: str, file: str, out: str, seconds: float) -> float:
    """One candidate in its own process: features of every image (saved), then img/s."""
    from generator.model.int8 import normalised

    folder = Path(out)
    pixels = np.load(folder / "pixels.npy")
    if kind == "torch":
        from generator.model.embed import load_embedder, plan_model

        run = load_embedder("random", plan_model("random", "cpu", "fp32", backend="torch"))
    elif kind == "openvino":
        import openvino as ov

        from generator.model.accel import OpenVinoEmbedder
        from generator.model.embed import plan_model

        # f32: what a CPU without bf16 runs (int8's quantised ops run int8, the rest f32)
        compiled = ov.Core().compile_model(
            str(folder / file),
            "CPU",
            {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"},
        )
        run = OpenVinoEmbedder(compiled, plan_model("random", "cpu", "fp32", backend="torch"))
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        session = ort.InferenceSession(
            str(folder / file), options, providers=["CPUExecutionProvider"]
        )

        def run(p: np.ndarray) -> np.ndarray:
            return session.run(None, {"x": normalised(p)})[0]

    features = np.concatenate([run(pixels[i : i + 32]) for i in range(0, len(pixels), 32)])
    np.save(folder / f"features-{kind}-{file or 'torch'}.npy", features)
    batch = pixels[:32]
    run(batch)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(batch)
        n += len(batch)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clipart", type=int, default=240)
    parser.add_argument("--generated", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "int8")
    args = parser.parse_args()
    from generator.model.embed import cpu_has_bf16
    from generator.model.int8 import compare

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    load = os.getloadavg()
    pixels = images(args.out, args.clipart, args.generated)
    np.save(args.out / "pixels.npy", pixels)
    took = prepare(args.out)
    rates = {}
    for name, (kind, file) in CANDIDATES.items():
        call = [
            sys.executable,
            "-c",
            IN_PROCESS,
            json.dumps([kind, file, str(args.out), args.seconds]),
        ]
        done = subprocess.run(call, check=True, capture_output=True, text=True, cwd=ROOT)
        rates[name] = json.loads(done.stdout.strip().splitlines()[-1])
    feats = {
        name: np.load(args.out / f"features-{kind}-{file or 'torch'}.npy")
        for name, (kind, file) in CANDIDATES.items()
    }
    reference = feats["torch fp32 (reference)"]
    base = rates["OpenVINO fp32"]
    after = os.getloadavg()
    cpu = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    flags = set(Path("/proc/cpuinfo").read_text().split())
    units = [
        f
        for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
        if f in flags
    ]
    print(
        f"\n{len(pixels)} images ({args.clipart} clip art, {args.generated} generated), random "
        f"weights; {cpu}, {len(os.sched_getaffinity(0))} CPUs, flags {' '.join(units)} "
        f"(bf16 units: {cpu_has_bf16()}); load average {load[0]:.1f} before, {after[0]:.1f} after"
    )
    print("; ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    print(
        "\n| candidate | img/s (batch 32) | vs OpenVINO fp32 | min cosine to fp32 | "
        "min ARI (k), grouped | min ARI (k), clip art and generated photos |"
    )
    print("|---|---|---|---|---|---|")
    real = len(pixels) - 80
    for name, rate in rates.items():
        grouped = compare(reference, feats[name], grouped=real)
        photos = compare(reference[:real], feats[name][:real])
        worst, other = (min(v.ari, key=v.ari.get) for v in (grouped, photos))
        print(
            f"| {name} | {rate:.1f} | {rate / base:.2f}× | {grouped.min_cosine:.4f} | "
            f"{grouped.ari[worst]:.3f} (k={worst}) | {photos.ari[other]:.3f} (k={other}) |"
        )


if __name__ == "__main__":
    main()
