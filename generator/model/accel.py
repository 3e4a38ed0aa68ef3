"""The OpenVINO backend (`--backend openvino`, the optional `accel` extra).

On a CPU with bf16 matrix units (AMX, AVX512-BF16) OpenVINO runs ViT-S/16 about 1.3–1.4× as
fast as eager torch bf16 (README, Performance: 104 against 81 img/s on an AMX Xeon). The timm
model is converted once per machine: the converted model is kept under the cache folder, keyed
by everything that changes it (weights, timm, torch, OpenVINO), and OpenVINO's own compiled-model
cache (one per precision) sits beside it. A build after the first one needs neither torch nor
timm. Features stay within cosine 0.999 of torch fp32 (tested).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.errors import ModelError
from generator.model.export import write_atomic
from generator.model.vit import PREPROCESS, create_model, made_key
from generator.types import ModelInfo

if TYPE_CHECKING:
    from generator.model.int8 import Verdict

log = logging.getLogger(__name__)

INSTALL = 'pip install "dinoclust[accel]"'
CONVERTED = "openvino"  # the folder under the cache folder
# Images per inference request: 16 ran fastest on 2 cores (bench_build.py). Not more: OpenVINO
# 2026.4 crashed now and then (SIGSEGV) on requests of 32 images in bf16 on an AMX Xeon.
CHUNK = 16
# int8: NNCF's quantised ops run int8, the rest f32 (what a CPU without bf16 units runs anyway)
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
INT8_INSTALL = 'pip install "dinoclust[accel]" (OpenVINO and NNCF)'


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def check_openvino(device: str, precision: str) -> None:
    """`--backend openvino` needs the extra, the CPU, and fp32 or bf16 (int8: check_int8)."""
    if not openvino_installed():
        raise ModelError(f"--backend openvino needs OpenVINO, which is not installed: {INSTALL}")
    if device != "cpu":
        raise ModelError(
            f"--backend openvino runs on the CPU (got --device {device}); use --device cpu, "
            "or --backend torch for the GPU."
        )
    if precision not in HINTS:
        raise ModelError(
            f"--backend openvino runs fp32, bf16 or int8 (got --precision {precision}); use "
            "--precision auto, or --backend torch."
        )


def check_int8(device: str, backend: str) -> None:
    """`--precision int8` runs on OpenVINO with NNCF (the accel extra), on the CPU."""
    from generator.model.int8 import nncf_installed

    if device != "cpu":
        raise ModelError(
            f"--precision int8 runs on the CPU (got --device {device}); use --device cpu, or "
            "--precision auto for the GPU."
        )
    if backend == "torch":
        raise ModelError(
            "--precision int8 runs on OpenVINO, not --backend torch; use --backend auto."
        )
    if not (openvino_installed() and nncf_installed()):
        raise ModelError(
            f"--precision int8 needs OpenVINO and NNCF, which are not installed: {INT8_INSTALL}"
        )


class OpenVinoEmbedder:
    """A compiled model and an asynchronous request queue: a batch is split into CHUNK-image
    requests that run concurrently, each on its own cores (OpenVINO's THROUGHPUT hint)."""

    def __init__(self, compiled: Any, info: ModelInfo):
        import openvino as ov

        self.info = info
        requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")  # OpenVINO >= 2022.1
        self.queue = ov.AsyncInferQueue(compiled, requests)
        self.queue.set_callback(self._done)
        self._out: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        std = np.asarray(PREPROCESS.std, dtype=np.float32).reshape(1, 3, 1, 1)
        self._mean = np.asarray(PREPROCESS.mean, dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
        self._scale = 1.0 / (std * 255.0)

    def _done(self, request: Any, slot: int) -> None:
        with self._lock:
            self._out[slot] = request.get_output_tensor(0).data.copy()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        x = (x - self._mean) * self._scale
        starts = range(0, len(x), CHUNK)
        for slot, start in enumerate(starts):
            self.queue.start_async({0: x[start : start + CHUNK]}, slot)
        self.queue.wait_all()
        out = np.concatenate([self._out.pop(slot) for slot in range(len(starts))])
        return out.astype(np.float32, copy=False)


def load_openvino(
    weights: str, info: ModelInfo, seed: int = 0, cache_dir: Path | None = None
) -> OpenVinoEmbedder:
    """The converted model from the cache folder (converted now if it is not there), compiled
    for this CPU with the planned precision."""
    if info.precision == "int8":
        model = int8_model(weights, info, seed, cache_dir)
    else:
        model = fp32_model(weights, info, seed, cache_dir)
    compiled = _compile(model, info.precision, cache_dir)
    log.info(
        "model %s, weights %s, OpenVINO %s on the CPU", info.name, info.weights, info.precision
    )
    return OpenVinoEmbedder(compiled, info)


def fp32_model(weights: str, info: ModelInfo, seed: int, cache_dir: Path | None) -> Any:
    """The converted fp32 model: from the cache folder (converted now if it is not there)."""
    import openvino as ov

    if cache_dir is None:
        return _converted(weights, seed)
    folder = converted_folder(cache_dir, info)
    if not (folder / "model.xml").is_file():
        log.info("converting the model for OpenVINO (once on this machine)…")
        _keep(folder, _converted(weights, seed), compress_to_fp16=False)
    return ov.Core().read_model(str(folder / "model.xml"))


def int8_folder(cache_dir: Path, info: ModelInfo) -> Path:
    """The int8 model and its check beside the conversion, one per NNCF version."""
    from generator.version import package_version

    return converted_folder(cache_dir, info) / f"int8-nncf-{package_version('nncf')}"


def int8_model(weights: str, info: ModelInfo, seed: int, cache_dir: Path | None) -> Any:
    """The model quantised by NNCF on the bundled set: kept in the cache folder (quantised now,
    about 40 s on 2 cores, if it is not there)."""
    import openvino as ov

    from generator.model.int8 import check_pixels, quantise

    folder = int8_folder(cache_dir, info) if cache_dir is not None else None
    if folder is not None and (folder / "model.xml").is_file():
        return ov.Core().read_model(str(folder / "model.xml"))
    log.info("quantising the model to int8 on the bundled images (once on this machine)…")
    quantised = quantise(fp32_model(weights, info, seed, cache_dir), check_pixels())
    if folder is not None:
        _keep(folder, quantised)
    return quantised


def int8_verdict(weights: str, info: ModelInfo, seed: int, cache_dir: Path | None) -> Verdict:
    """int8 against fp32 on the bundled check set (model.int8.compare), kept beside the int8
    model: `--precision auto` reads it rather than checking again."""
    from generator.model.int8 import Verdict, check_set, compare

    saved = int8_folder(cache_dir, info) / "check.json" if cache_dir is not None else None
    if saved is not None and saved.is_file():
        try:
            return Verdict.from_json(saved.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError):
            pass  # damaged: check again
    log.info("checking int8 against fp32 on the bundled images (once on this machine)…")
    pixels, grouped = check_set()
    models = {
        "fp32": fp32_model(weights, info, seed, cache_dir),
        "int8": int8_model(weights, info, seed, cache_dir),
    }
    runs = {p: OpenVinoEmbedder(_compile(model, p), info)(pixels) for p, model in models.items()}
    verdict = compare(runs["fp32"], runs["int8"], grouped)
    if saved is not None:  # two builds checking at once each write their own temporary file
        write_atomic(saved, lambda tmp: tmp.write_text(verdict.to_json(), encoding="utf-8"))
    return verdict


def _compile(model: Any, precision: str, cache_dir: Path | None = None) -> Any:
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "THROUGHPUT"}
    if cache_dir is not None:
        # one compiled-model cache per precision: OpenVINO 2026.4.1's cache key ignores
        # INFERENCE_PRECISION_HINT, so a bf16 compile found the fp32 blob of an earlier
        # --precision fp32 build and ran it at 16 instead of 114 img/s (AMX Xeon)
        config["CACHE_DIR"] = str(cache_dir / CONVERTED / "compiled" / precision)
    return ov.Core().compile_model(model, "CPU", config)


def converted_folder(cache_dir: Path, info: ModelInfo) -> Path:
    """Where this model's conversion is kept: one folder per weights and library versions."""
    return cache_dir / CONVERTED / made_key(info.weights_id, ("openvino", "timm", "torch"))


def _converted(weights: str, seed: int) -> Any:
    """timm's model, traced into OpenVINO (about 10 s on 2 cores), fp32 weights kept."""
    import openvino as ov
    import torch

    model = create_model(weights, seed).eval()
    size = PREPROCESS.size
    example = torch.zeros(1, 3, size, size)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer notes
        return ov.convert_model(model, example_input=example, input=[(-1, 3, size, size)])


def _keep(folder: Path, model: Any, compress_to_fp16: bool = True) -> None:
    """`model` saved into a folder beside `folder`, then renamed: a build that stops half-way
    never leaves half a model."""
    import openvino as ov

    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".convert-", dir=folder.parent))
    try:
        ov.save_model(model, str(temporary / "model.xml"), compress_to_fp16=compress_to_fp16)
        try:
            os.replace(temporary, folder)
        except OSError:  # another build converted it first
            if not (folder / "model.xml").is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
