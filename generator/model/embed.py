"""Stage 3 — embed: DINO ViT-S/16 turns each 224×224 image into a 384-d CLS feature.

Model creation, preprocessing config and inference are separate functions (as in timm/open_clip).
This is the only module that imports torch and timm, and it does so inside functions so that
`dinoclust --help` and the analysis/render stages never pay for them.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.config import BACKENDS, PRETRAINED, RANDOM, ModelConfig
from generator.errors import ModelError
from generator.i18n import Message
from generator.model.vit import HUB_REPO, MODEL_NAME, PREPROCESS, create_model, weights_id
from generator.types import PHASE_LOGGER, Embedder, ModelInfo

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
phase = logging.getLogger(PHASE_LOGGER)

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")
CPUINFO = Path("/proc/cpuinfo")  # the CPU's flags (Linux); elsewhere no bf16 units are assumed


class VitEmbedder:
    """A loaded ViT on its device (info.device), ready to embed batches."""

    def __init__(self, model: Any, info: ModelInfo) -> None:
        self.model = model
        self.info = info

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return embed_pixels(self.model, pixels, self.info.device)


def plan_model(
    weights: str,
    device: str,
    precision: str,
    seed: int = 0,
    backend: str = "auto",
    cache_dir: Path | None = None,
) -> ModelInfo:
    """Settle model, weights, device, precision and backend before anything is loaded, so that
    the cache namespace comes from the identity the model will really run with. torch is asked
    only where an NVIDIA driver makes CUDA likely (a CPU-only warm rebuild never imports it).
    A missing checkpoint or backend is reported here, before any image is decoded. `cache_dir`
    keeps `--precision auto`'s int8 check (see choose_int8)."""
    chosen = probe_device(device)
    resolved = settle_precision(resolve_precision(precision, chosen), chosen, precision)
    identity = weights_id(weights, seed)  # a missing checkpoint is refused here
    if weights == RANDOM:
        said = Message.of("weights_random", seed=seed)
    elif weights == PRETRAINED:
        said = Message.of("weights_hub", repo=HUB_REPO)
    else:
        sha = identity.removeprefix("sha256:")[:12]
        said = Message.of("weights_checkpoint", name=Path(weights).expanduser().name, sha=sha)
    random = weights == RANDOM
    info = ModelInfo(MODEL_NAME, str(said), identity, random, chosen, resolved, said, "torch")
    if precision == "auto" and chosen == "cpu" and resolved == "fp32":
        resolved = choose_int8(weights, replace(info, backend="openvino"), seed, backend, cache_dir)
    elif precision == "auto":
        log.info("precision auto: %s (%s)", resolved, AUTO_REASONS.get(chosen, "this device"))
    return replace(info, precision=resolved, backend=resolve_backend(backend, chosen, resolved))


AUTO_REASONS = {
    "cuda": "a CUDA GPU; fp16 where it has no bf16 tensor cores",
    "mps": "Apple's GPU",
    "cpu": "this CPU has bf16 units (AMX or AVX512-BF16)",
}


def choose_int8(
    weights: str, info: ModelInfo, seed: int, backend: str, cache_dir: Path | None
) -> str:
    """`--precision auto` on a CPU without bf16 units: int8 where the CPU has int8 (VNNI) units,
    OpenVINO and NNCF are installed and int8 holds the floors (cosine, ARI) on the bundled check
    set, else fp32 (and where only the floors failed it says once that `--precision int8` is
    faster). The choice and why go to the log (-v)."""
    from generator.model import accel
    from generator.model.int8 import nncf_installed

    if not cpu_has_vnni():
        log.info("precision auto: fp32 (no bf16 or VNNI units: int8 runs no faster on this CPU)")
        return "fp32"
    if backend not in ("auto", "openvino") or not accel.openvino_installed():
        why = f"--backend {backend}" if backend not in ("auto", "openvino") else "no OpenVINO"
        log.info("precision auto: fp32 (no bf16 units on this CPU; int8 needs OpenVINO: %s)", why)
        return "fp32"
    if not nncf_installed():
        log.info("precision auto: fp32 (no bf16 units; int8 needs NNCF: %s)", accel.INT8_INSTALL)
        return "fp32"
    verdict = accel.int8_verdict(weights, info, seed, cache_dir)
    if verdict.holds:
        log.info("precision auto: int8, as this CPU has no bf16 units and %s", verdict.reason())
        return "int8"
    log.info("precision auto: fp32, as int8 misses the floors: %s", verdict.reason())
    if not _said_int8_faster:
        _said_int8_faster.append(True)
        log.warning(
            "--precision auto stays fp32: int8 misses the accuracy floors on the bundled check "
            "set with these weights. --precision int8 is about twice as fast, if you accept it."
        )
    return "fp32"


_said_int8_faster: list[bool] = []  # the note above is said once a process


def load_embedder(
    weights: str, info: ModelInfo, seed: int = 0, cache_dir: Path | None = None
) -> Embedder:
    """Create the model with the requested weights exactly as planned: the loaded identity is
    the planned one, so vectors are read and written under one cache namespace. `cache_dir`
    keeps OpenVINO's one-off conversion (None: convert again)."""
    if info.backend == "openvino":
        from generator.model.accel import load_openvino

        return load_openvino(weights, info, seed, cache_dir)
    import torch

    device = pick_device(info.device)
    model = create_model(weights, seed)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[info.precision]
    model = model.to(device=device, dtype=dtype).eval()
    torch.set_grad_enabled(False)
    log.info("model %s, weights %s, %s on %s", info.name, info.weights, info.precision, device)
    return VitEmbedder(model, info)


def probe_device(requested: str) -> str:
    """`auto`: CUDA if torch sees a device, MPS on Apple silicon, else the CPU. torch is imported
    only when an NVIDIA driver is present; a driver without a usable device (a CPU-only torch,
    a broken install, CUDA_VISIBLE_DEVICES empty) means the CPU, with a warning saying why."""
    if requested == "cuda":
        if not _driver_present() or not _torch_sees_cuda():
            raise ModelError(
                "--device cuda was requested but is not available here (torch sees no CUDA "
                "device); use --device auto or --device cpu."
            )
        return requested
    if requested == "mps" and not _apple_silicon():
        raise ModelError(
            "--device mps was requested but is not available here (MPS is Apple silicon's); "
            "use --device auto or --device cpu."
        )
    if requested != "auto":
        return requested
    if _driver_present():
        if _torch_sees_cuda():
            return "cuda"
        log.warning(
            "an NVIDIA driver is installed but torch sees no CUDA device (a CPU-only torch "
            "build, or CUDA_VISIBLE_DEVICES hides them): the model runs on the CPU"
        )
    return "mps" if _apple_silicon() else "cpu"


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def _driver_present() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible in ("", "-1"):
        return False
    return NVIDIA_DRIVER.exists() or bool(os.name == "nt" and shutil.which("nvidia-smi"))


def _torch_sees_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def settle_precision(precision: str, device: str, requested: str) -> str:
    """bf16 on a GPU without bf16 tensor cores (T4, V100: pre-Ampere) becomes fp16, decided here
    rather than at load, so the cache namespace names the precision that really runs."""
    if device != "cuda" or precision != "bf16" or _cuda_bf16():
        return precision
    if requested != "auto":
        log.warning("--precision bf16: this GPU has no bf16 tensor cores; using fp16")
    return "fp16"


def resolve_precision(requested: str, device: str) -> str:
    """`auto`: bf16 where matrix units do it natively (CUDA; CPUs with AMX or AVX512-BF16),
    fp16 on Apple's GPU, fp32 elsewhere (plan_model may then choose int8, see choose_int8)."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16"
    if device == "mps":
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def cpu_has_bf16() -> bool:
    return not _cpu_flags().isdisjoint(("amx_bf16", "avx512_bf16"))


def cpu_has_vnni() -> bool:
    """int8 dot-product units (AVX512-VNNI, AVX-VNNI, AMX): without them OpenVINO's int8 ran no
    faster than its fp32 (0.91x on an AVX2-only EPYC, docs/performance.md)."""
    return not _cpu_flags().isdisjoint(("avx512_vnni", "avx_vnni", "amx_int8"))


def _cpu_flags() -> set[str]:
    try:
        return set(CPUINFO.read_text(errors="replace").split())
    except OSError:
        return set()


def resolve_backend(requested: str, device: str, precision: str) -> str:
    """`auto`: OpenVINO for the CPU when the `accel` extra is installed (fp32 or bf16), else
    torch; int8 runs only on OpenVINO. `openvino` without the extra, or off the CPU, is an error
    naming the fix."""
    from generator.model.accel import check_int8, check_openvino, openvino_installed

    if requested not in BACKENDS:
        raise ModelError(f"Unknown backend {requested!r}: use one of {', '.join(BACKENDS)}.")
    if precision == "int8":
        check_int8(device, requested)
        return "openvino"
    if requested == "auto":
        fits = device == "cpu" and precision in ("fp32", "bf16")
        return "openvino" if fits and openvino_installed() else "torch"
    if requested == "openvino":
        check_openvino(device, precision)
    return requested


def pick_device(requested: str) -> str:
    """Check the planned device against what torch sees; an unavailable request is an error."""
    import torch

    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise ModelError(
            f"--device {requested} was requested but is not available here; "
            "use --device auto or --device cpu."
        )
    return requested


def embed_pixels(model: Any, pixels: np.ndarray, device: str) -> np.ndarray:
    """uint8 (B, H, W, 3) → float32 (B, 384), normalised as in training, in the model's dtype."""
    import torch

    dtype = next(model.parameters()).dtype
    batch = torch.from_numpy(np.ascontiguousarray(pixels))
    if device == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)  # overlap copy and compute
    else:
        batch = batch.to(device)
    with torch.inference_mode():
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - _channel(PREPROCESS.mean, x)) / _channel(PREPROCESS.std, x)
        return model(x.to(dtype)).float().cpu().numpy()


def _channel(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


class LazyEmbedder:
    """Loads the model on first use, so a build served from the cache never imports torch.

    `prefetch()` starts loading in a background thread, so that importing torch and timm (about
    three seconds) overlaps with decoding the first batch; then, in the same thread, `then`
    (a build: importing scikit-learn, about a second, which new vectors will need).
    """

    def __init__(
        self,
        info: ModelInfo,
        load: Callable[[], Embedder],
        then: Callable[[], object] | None = None,
    ) -> None:
        self.info = info
        self._load = load
        self._then = then
        self._model: Embedder | None = None
        self._loading: Future[Embedder] | None = None
        self._loader: ThreadPoolExecutor | None = None

    def prefetch(self) -> None:
        if self._model is None and self._loading is None:
            phase.info("loading model…")
            self._loader = ThreadPoolExecutor(1, thread_name_prefix="load-model")
            self._loading = self._loader.submit(self._load)
            if self._then is not None:
                self._loader.submit(self._then)

    def loading(self) -> bool:
        """True while a prefetch is still loading the model."""
        return self._loading is not None and not self._loading.done()

    def close(self) -> None:
        """Shut the loader down (a load not yet started is cancelled; one under way finishes
        in its thread, which is then released)."""
        if self._loader is not None:
            self._loader.shutdown(wait=False, cancel_futures=True)
            self._loader = None

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._model = self._loading.result() if self._loading else self._load()
            self.info = self._model.info
        return self._model(pixels)


def plan_embedder(
    model: ModelConfig, cache_dir: Path | None, then: Callable[[], object] | None = None
) -> LazyEmbedder:
    """The model the options name, loaded only if an image is not in the cache (every command
    gets its model here; `then` runs in the loader's thread once the model is loaded)."""
    info = plan_model(
        model.weights, model.device, model.precision, model.seed, model.backend, cache_dir
    )
    return LazyEmbedder(
        info, lambda: load_embedder(model.weights, info, model.seed, cache_dir), then
    )
