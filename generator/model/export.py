"""The model as ONNX, for the page's "Find where a photo belongs" (`build --query`).

timm's ViT-S/16 is exported with torch's TorchScript exporter (opset 17): input "pixels" float32
[N, 3, 224, 224], already normalised with ImageNet mean/std; output "embedding" float32 [N, 384],
the CLS feature the build used, before any L2 norm. The page runs it with onnxruntime-web.
It is then made smaller where it stays faithful (QUERY_PRECISION, chosen by measurement:
docs/query.md, benchmarks/bench_query.py). The export is kept under --cache-dir, keyed by the
weights and the library versions, so a rebuild does not export again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from generator.errors import ModelError
from generator.model.vit import PREPROCESS, create_model, made_key, weights_id

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "pixels", "embedding"
QUERY_PRECISIONS = ("fp32", "fp16")  # int8 (onnxruntime's quantiser): measured, not written
# docs/query.md (benchmarks/bench_query.py): fp16 weights halve fp32's size and keep its answers;
# int8 is 4x smaller, but its top-12 differs from fp32's for more than 10 % of queries
QUERY_PRECISION = "fp16"
EXPORTS = "onnx"  # the cache folder's subfolder
EXPORT_PACKAGES = ("torch", "timm", "onnx")


def onnx_model(
    weights: str, seed: int = 0, cache_dir: Path | None = None, precision: str = QUERY_PRECISION
) -> bytes:
    """The ONNX model's bytes for `weights` at `precision`: from the cache folder when it was
    exported before, else exported now (and kept there). Same weights, same bytes."""
    if precision not in QUERY_PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}")
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="dinoclust-onnx-") as folder:
            return _made(weights, seed, Path(folder) / f"{precision}.onnx", precision)
    path = export_path(cache_dir, weights_id(weights, seed), precision)
    if path.is_file():
        return path.read_bytes()
    return _made(weights, seed, path, precision)


def export_path(cache_dir: Path, weights: str, precision: str) -> Path:
    """Where the export of `weights` (a weights id) is kept: one file per weights, precision
    and library versions."""
    digest = made_key(weights, EXPORT_PACKAGES, opset=OPSET)
    return cache_dir / EXPORTS / digest / f"{precision}.onnx"


def _made(weights: str, seed: int, path: Path, precision: str) -> bytes:
    """Export (fp32) next to `path`, then halve it (fp16); each file written beside its name
    and renamed, so a build that stops half-way never leaves half a model."""
    fp32 = path.with_name("fp32.onnx")
    if not fp32.is_file():
        log.info("exporting the model to ONNX for --query (once on this machine)…")
        write_atomic(fp32, lambda tmp: export_onnx(create_model(weights, seed).eval(), tmp))
    if precision == "fp16":
        write_atomic(path, lambda tmp: fp16_weights(fp32, tmp))
    return path.read_bytes()


def export_onnx(model: object, target: Path) -> None:
    """torch → ONNX, opset 17, a dynamic batch; the TorchScript exporter (dynamo=False)."""
    import torch

    size = PREPROCESS.size
    example = torch.zeros(1, 3, size, size)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (example,),
            str(target),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "n"}, OUTPUT: {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )


def fp16_weights(source: Path, target: Path) -> None:
    """The weights stored as float16 and cast back to float32 where the graph reads them: half
    the size, the arithmetic still in float32 (which onnxruntime-web's WASM backend runs)."""
    import numpy as np

    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ModelError(
            "--query needs the onnx package to write the page's model: "
            "pip install 'dinoclust[query]'."
        ) from exc
    model = onnx.load(str(source))
    graph = model.graph
    casts, kept = [], []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        if tensor.data_type != TensorProto.FLOAT or array.size < 1024:
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), f"{tensor.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(target))


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a temporary name of its own beside `path`, then swap it in: a reader sees
    the old file or the new, and two processes writing at once do not collide."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
