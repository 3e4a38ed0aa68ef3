"""Benchmark `build --query`'s model and index: which ONNX precision the page gets, and search time.

    python benchmarks/bench_query.py                  # 240 clip-art PNGs (about 5 minutes)
    python benchmarks/bench_query.py --images 60 --skip-build   # quicker

On real clip art (Debian's openclipart-png), with random weights (the model hub is unreachable
here; seed 0), each image decoded by the build's own decoder (ingest/imaging.decode):
- torch fp32 (the build's features) against the ONNX export in fp32, fp16 weights and int8
  dynamic quantisation (onnxruntime's quantiser): the model's size, onnxruntime's CPU time for
  one image on one thread (a proxy: the page runs onnxruntime-web's WASM, on one thread),
  the cosine to torch fp32 on every image (floor: 0.99), and how often a query's 12 most similar
  images (leave-one-out, through the int8 index the page searches) are those of torch fp32 with
  exact cosine (floor: 90 % of queries);
- the page's size with and without --query (a build of the same images, the zip's bytes);
- search time over the int8 index (numpy, one query) at 10k and 100k synthetic rows, and the
  index's size in the site (the page's own search, in Chromium: bench_query_page.py --search;
  each candidate model in the page: bench_query_page.py --models).
Prints Markdown tables; docs/query.md quotes them with the command and the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generator.config import PREVIEW_SIZE, THUMB_SIZE  # noqa: E402
from generator.ingest.imaging import DecodeError, decode  # noqa: E402
from generator.model.export import QUERY_PRECISION, QUERY_PRECISIONS, onnx_model  # noqa: E402
from generator.model.vit import PREPROCESS  # noqa: E402
from generator.site.query import NEIGHBOURS, quantise_rows  # noqa: E402

CLIPART = Path("/usr/share/openclipart/png")
COSINE_FLOOR = 0.99
SAME_TOP_FLOOR = 0.90


def clipart(n: int) -> list[Path]:
    """`n` PNGs spread evenly over the sorted collection (every category, not the first)."""
    every = sorted(CLIPART.rglob("*.png"))
    step = max(1, len(every) // n)
    return every[::step][:n]


def decoded(paths: list[Path], n: int) -> tuple[list[Path], np.ndarray]:
    """The first `n` of `paths` the build's decoder takes (as the build, it skips the rest)."""
    kept, pixels = [], []
    for path in paths:
        try:
            pixels.append(
                decode(path, PREPROCESS.size, THUMB_SIZE.default, PREVIEW_SIZE.default).pixels
            )
        except DecodeError:
            continue
        kept.append(path)
        if len(kept) == n:
            break
    return kept, pixels_of(np.stack(pixels))


def pixels_of(raw: np.ndarray) -> np.ndarray:
    """The model's input, normalised as the build's embed_pixels does: float32 [N, 3, 224, 224]."""
    raw = raw.astype(np.float32)
    x = raw.transpose(0, 3, 1, 2) / 255.0
    mean = np.array(PREPROCESS.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array(PREPROCESS.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def torch_fp32(pixels: np.ndarray, seed: int) -> np.ndarray:
    import torch

    from generator.model.vit import create_model

    model = create_model("random", seed).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), 16):
            out.append(model(torch.from_numpy(pixels[start : start + 16])).numpy())
    return np.concatenate(out)


def session(model: bytes) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the page: one WASM thread (no SharedArrayBuffer)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run(sess: object, pixels: np.ndarray) -> np.ndarray:
    out = [sess.run(None, {"pixels": pixels[i : i + 8]})[0] for i in range(0, len(pixels), 8)]  # type: ignore[attr-defined]
    return np.concatenate(out)


def per_image_ms(sess: object, pixels: np.ndarray, repeats: int) -> tuple[float, float]:
    """(median, best) ms for one image; on a shared machine the best is the steadier figure."""
    sess.run(None, {"pixels": pixels[:1]})  # type: ignore[attr-defined]  # first run: set-up
    times = []
    for i in range(repeats):
        one = pixels[i % len(pixels) : i % len(pixels) + 1]
        start = time.perf_counter()
        sess.run(None, {"pixels": one})  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), 1000 * float(np.min(times))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def top(scores: np.ndarray, i: int) -> set[int]:
    scores = scores.copy()
    scores[i] = -np.inf  # leave the query itself out
    return set(np.argsort(-scores, kind="stable")[:NEIGHBOURS].tolist())


def page_index(reference: np.ndarray) -> np.ndarray:
    vectors, scales = quantise_rows(reference)
    return vectors.astype(np.float32) * scales[:, None]


def same_top(index: np.ndarray, wanted: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(share of queries whose 12 nearest in `index` are the same set, mean overlap of the 12),
    query i being `got[i]` against `wanted[i]` (leave-one-out: image i is not its own match)."""
    same, overlap = 0, 0
    for i in range(len(got)):
        a = top(index @ unit(wanted[i : i + 1].astype(np.float32))[0], i)
        b = top(index @ unit(got[i : i + 1].astype(np.float32))[0], i)
        same += a == b
        overlap += len(a & b)
    return same / len(got), overlap / (NEIGHBOURS * len(got))


def precisions(pixels: np.ndarray, reference: np.ndarray, seed: int, repeats: int) -> list[str]:
    """Each ONNX precision against torch fp32: the query's cosine, and its top-12 through the
    page's int8 index against torch fp32's query through the same index."""
    rows = [
        "| model | size | CPU ms/image, median / best (1 thread) | cosine min | cosine mean "
        "| same top-12 (share / overlap) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ref = unit(reference.astype(np.float64))
    index = page_index(reference)
    with tempfile.TemporaryDirectory() as cache:
        models = {p: onnx_model("random", seed, Path(cache), p) for p in QUERY_PRECISIONS}
        models["int8"] = int8(Path(cache))
        models["int8 per channel"] = int8(Path(cache), per_channel=True)
        for part in ("mlp", "attn"):  # int8 in one part (per channel), fp16 weights elsewhere
            models[f"int8 {part} only, fp16 rest"] = int8(Path(cache), True, part)
        for precision, model in models.items():
            sess = session(model)
            out = run(sess, pixels)
            cos = (unit(out.astype(np.float64)) * ref).sum(axis=1)
            median, best = per_image_ms(sess, pixels, repeats)
            share, overlap = same_top(index, reference, out)
            ok = cos.min() >= COSINE_FLOOR and share >= SAME_TOP_FLOOR
            rows.append(
                f"| ONNX {precision}{' (chosen)' if precision == QUERY_PRECISION else ''} | "
                f"{len(model) / 1e6:.1f} MB | {median:.0f} / {best:.0f} | {cos.min():.6f} | "
                f"{cos.mean():.6f} | {100 * share:.1f} % / {100 * overlap:.1f} %"
                f"{'' if ok else ' (below a floor)'} |"
            )
    return rows


def int8(cache: Path, per_channel: bool = False, part: str = "") -> bytes:
    """onnxruntime's dynamic quantisation (int8 weights, activations quantised as it runs),
    optionally with a scale per output channel, or only in one `part` of each block (the
    MatMuls whose names hold it) with the other weights as fp16: measured, not the site's."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from generator.model.export import fp16_weights

    fp32 = next(cache.rglob("fp32.onnx"))
    target = fp32.with_name(f"int8-{int(per_channel)}-{part or 'all'}.onnx")
    logging.getLogger().setLevel(logging.ERROR)  # its hint to pre-process the model first
    nodes = None
    if part:
        graph = onnx.load(str(fp32)).graph
        nodes = [n.name for n in graph.node if n.op_type == "MatMul" and f"/{part}/" in n.name]
    quantize_dynamic(
        str(fp32), str(target), per_channel=per_channel, weight_type=QuantType.QInt8,
        nodes_to_quantize=nodes,
    )  # fmt: skip
    if part:
        fp16_weights(target, target.with_suffix(".fp16.onnx"))
        target = target.with_suffix(".fp16.onnx")
    return target.read_bytes()


def index_fidelity(reference: np.ndarray) -> str:
    """The int8 index against exact float cosine, for torch fp32's own vectors."""
    exact = unit(reference.astype(np.float64))
    share, overlap = same_top_exact(exact, page_index(reference))
    gram = exact @ exact.T
    off = gram[~np.eye(len(gram), dtype=bool)]
    return (
        f"int8 index vs exact cosine (torch fp32 vectors): same top-12 for {100 * share:.1f} % "
        f"of queries, overlap {100 * overlap:.1f} %; pairwise cosine p5/p50/p95 "
        f"{np.percentile(off, 5):.4f}/{np.percentile(off, 50):.4f}/{np.percentile(off, 95):.4f}"
    )


def same_top_exact(exact: np.ndarray, index: np.ndarray) -> tuple[float, float]:
    same, overlap = 0, 0
    for i in range(len(exact)):
        a, b = top(exact @ exact[i], i), top(index @ exact[i].astype(np.float32), i)
        same += a == b
        overlap += len(a & b)
    return same / len(exact), overlap / (NEIGHBOURS * len(exact))


def search(rows: int, repeats: int = 20) -> tuple[float, float, float]:
    """(ms a query as int8 → float on the fly, ms with the float matrix kept, index MB)."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 384)).astype(np.float32)
    vectors, scales = quantise_rows(features)
    q = unit(rng.normal(size=(1, 384)).astype(np.float32))[0]
    kept = vectors.astype(np.float32)

    def timed(scores_of: object) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scores = scores_of()  # type: ignore[operator]
            best = np.argpartition(-scores, NEIGHBOURS)[:NEIGHBOURS]
            best[np.argsort(-scores[best])]
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    on_the_fly = timed(lambda: (vectors.astype(np.float32) @ q) * scales)
    with_kept = timed(lambda: (kept @ q) * scales)
    size = (4 * (vectors.nbytes + 2) // 3 + 4 * (scales.nbytes + 2) // 3) / 1e6  # base64
    return on_the_fly, with_kept, size


def page_sizes(paths: list[Path], seed: int) -> list[str]:
    """The zip of a build of `paths` without and with --query (the same cache: one embedding)."""
    import shutil

    import generator

    rows = ["| site | zip | query/ files |", "|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for path in paths:
            shutil.copyfile(path, images / f"{path.parent.name}-{path.name}")
        cache = Path(tmp) / "cache"
        for query in (False, True):
            site, zipped = Path(tmp) / f"site-{query}", Path(tmp) / f"site-{query}.zip"
            generator.build(
                images, site, weights="random", seed=seed, cache_dir=cache, query=query,
                zip_file=zipped, quiet=True,
            )  # fmt: skip
            folder = site / "query"
            extra = sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0
            name = "with --query" if query else "without --query"
            rows.append(f"| {name} | {zipped.stat().st_size / 1e6:.1f} MB | {extra / 1e6:.1f} MB |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs for the CPU time")
    parser.add_argument("--skip-build", action="store_true", help="no page-size builds")
    parser.add_argument("--vendor", type=Path, help="onnxruntime-web's files, if not vendored")
    args = parser.parse_args()
    if args.vendor is not None:
        import generator.site.query

        generator.site.query.VENDOR = args.vendor
    cpu = platform.processor() or platform.machine()
    print(f"CPU: {_cpu_name() or cpu}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/bench_query.py {' '.join(sys.argv[1:])}")
    paths, pixels = decoded(clipart(args.images + 20), args.images)
    reference = torch_fp32(pixels, args.seed)
    print(f"\n{len(paths)} clip-art images, random weights (seed {args.seed})\n")
    print("\n".join(precisions(pixels, reference, args.seed, args.repeats)))
    print(f"\n{index_fidelity(reference)}")
    print("\n| rows | search ms (int8 → float each query) | search ms (float kept) | index |")
    print("|---:|---:|---:|---:|")
    for rows in (10_000, 100_000):
        fly, kept, size = search(rows)
        print(f"| {rows:,} | {fly:.1f} | {kept:.1f} | {size:.1f} MB |")
    if not args.skip_build:
        print()
        print("\n".join(page_sizes(paths, args.seed)))
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


if __name__ == "__main__":
    main()
