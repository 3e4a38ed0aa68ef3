"""Stage 3 — embed: DINO ViT-S/16 turns each 224×224 image into a 384-d CLS feature.

Model creation, preprocessing config and inference are separate functions (as in timm/open_clip).
This is the only module that imports torch and timm, and it does so inside functions so that
`dinoclust --help` and the analysis/render stages never pay for them.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import platform
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np

from generator.config import PRETRAINED, RANDOM
from generator.errors import ModelError, first_line
from generator.i18n import Message

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODEL_NAME = "vit_small_patch16_224.dino"
HUB_REPO = "timm/vit_small_patch16_224.dino"  # timm's pretrained_cfg hf_hub_id for MODEL_NAME
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # what --weights PATH may name
FEATURE_DIM = 384
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what the hub repo may hold
HUB_TIMEOUT_S = 5.0
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class Preprocess:
    """The original notebook's preprocessing: squash to 224×224, ImageNet mean/std."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "bilinear, aspect ratio not kept"


PREPROCESS = Preprocess()


@dataclass(frozen=True)
class ModelInfo:
    """Which model, weights, device and precision; never holds an absolute path.

    `weights_id` identifies the weights exactly (hub id, checkpoint hash, random seed): with the
    preprocessing and precision it keys the embedding cache. `weights` says it in English;
    `weights_i18n`, where given, is the same as a UI string for the page.
    """

    name: str
    weights: str
    weights_id: str
    random_weights: bool
    device: str
    precision: str
    weights_i18n: Message | None = None
    backend: str = "torch"  # what runs the model: "torch" or "openvino" (--backend)


class Embedder(Protocol):
    """Anything that maps uint8 pixels (B, H, W, 3) to features (B, D); tests pass fakes."""

    info: ModelInfo

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


class VitEmbedder:
    """A loaded ViT, its device and preprocessing, ready to embed batches."""

    def __init__(self, model: Any, info: ModelInfo, preprocess: Preprocess = PREPROCESS) -> None:
        self.model = model
        self.info = info
        self.preprocess = preprocess

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return embed_pixels(self.model, pixels, self.preprocess, self.info.device)


def plan_model(
    weights: str, device: str, precision: str, seed: int = 0, backend: str = "auto"
) -> ModelInfo:
    """Settle model, weights, device, precision and backend before anything is loaded, so that
    the cache namespace comes from the identity the model will really run with. torch is asked
    only where an NVIDIA driver makes CUDA likely (a CPU-only warm rebuild never imports it).
    A missing checkpoint or backend is reported here, before any image is decoded."""
    chosen = probe_device(device)
    resolved = settle_precision(resolve_precision(precision, chosen), chosen, precision)
    runner = resolve_backend(backend, chosen, resolved)
    if weights == RANDOM:
        said, weights_id = Message.of("weights_random", seed=seed), f"random:{seed}"
    elif weights == PRETRAINED:
        said, weights_id = Message.of("weights_hub", repo=HUB_REPO), f"hub:{HUB_REPO}"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(weights_not_found(weights, path))
        digest = file_sha256(path)
        said = Message.of("weights_checkpoint", name=path.name, sha=digest[:12])
        weights_id = f"sha256:{digest}"
    random = weights == RANDOM
    return ModelInfo(MODEL_NAME, str(said), weights_id, random, chosen, resolved, said, runner)


def weights_not_found(weights: str, path: Path) -> str:
    """Why `--weights` names no file, and the likely fix: a file inside the folder given, or the
    keyword that was mistyped."""
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        inside = f" such as {path / found[0]}" if found else " (it holds no .safetensors or .pth)"
        return f"{path} is a folder: --weights takes a checkpoint file{inside}."
    close = difflib.get_close_matches(weights, [PRETRAINED, RANDOM], n=1, cutoff=0.6)
    if close and not path.suffix:
        return f"--weights {weights}: no such checkpoint file. Did you mean --weights {close[0]}?"
    return (
        f"{path}: checkpoint file not found. Check the path given to --weights "
        f"(or use '{PRETRAINED}' or '{RANDOM}')."
    )


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
    if requested != "auto":
        return requested
    if _driver_present():
        if _torch_sees_cuda():
            return "cuda"
        log.warning(
            "an NVIDIA driver is installed but torch sees no CUDA device (a CPU-only torch "
            "build, or CUDA_VISIBLE_DEVICES hides them): the model runs on the CPU"
        )
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


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
    fp16 on Apple's GPU, fp32 elsewhere."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16"
    if device == "mps":
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


def resolve_backend(requested: str, device: str, precision: str) -> str:
    """`auto`: OpenVINO for the CPU when the `accel` extra is installed (fp32 or bf16), else
    torch. `openvino` without the extra, or off the CPU, is an error naming the fix."""
    from generator.model.accel import BACKENDS, check_openvino, openvino_installed

    if requested not in BACKENDS:
        raise ModelError(f"Unknown backend {requested!r}: use one of {', '.join(BACKENDS)}.")
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


def create_model(weights: str, seed: int = 0) -> Any:
    """ViT-S/16 with its classifier removed (num_classes=0 → the 384-d CLS feature)."""
    # the hub first: unreachable, it fails without waiting seconds for torch and timm to import
    checkpoint = download_pretrained() if weights == PRETRAINED else None
    import timm
    import torch

    torch.manual_seed(seed)  # random weights are reproducible: same seed, same site
    model = timm.create_model(MODEL_NAME, pretrained=False, num_classes=0)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    elif weights != RANDOM:
        load_weights(model, Path(weights).expanduser())
    return model


def download_pretrained() -> Path:
    """The hub checkpoint: from the local cache, else downloaded once — or a fast, clear error."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = HUB_REPO
    for filename in HUB_FILES:
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=True))
        except LocalEntryNotFoundError:
            continue
    _check_hub_reachable(repo)
    try:
        return Path(hf_hub_download(repo, "model.safetensors"))
    except Exception as exc:
        raise ModelError(_offline_message(repo, f"the download failed: {exc}")) from exc


def pretrained_unavailable() -> str | None:
    """Why the pretrained weights cannot be had now (not cached, and the hub does not answer
    within HUB_TIMEOUT_S), or None when they can. `dinoclust demo` falls back on it."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        if isinstance(try_to_load_from_cache(HUB_REPO, filename), str):
            return None
    return _hub_unreachable()


def _check_hub_reachable(repo: str) -> None:
    """Fail in seconds, not after a minute of retries, when the hub cannot be reached."""
    why = _hub_unreachable()
    if why is not None:
        raise ModelError(_offline_message(repo, why))


def _hub_unreachable() -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set and it is not cached"
    if any(os.environ.get(var) for var in PROXY_VARS):
        return None  # a proxy decides; the direct probe below would wrongly fail
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot reach {host} ({exc})"
    return None


def _offline_message(repo: str, why: str) -> str:
    return (
        f"Cannot get the pretrained weights {repo}: {why}.\n"
        "Run once with a network connection (they are cached afterwards), or download a checkpoint "
        "(timm's model.safetensors, or Facebook's dino_deitsmall16_pretrain.pth) and pass "
        "--weights PATH. For an offline smoke test only, --weights random uses untrained weights."
    )


def load_weights(model: Any, path: Path) -> None:
    """Load timm's safetensors/pth or Facebook's original DINO checkpoint into `model`."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = _read_state_dict(path)
    state = _normalise_keys(state)
    try:
        state = checkpoint_filter_fn(state, model)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except Exception as exc:
        raise ModelError(f"{path}: weights do not fit ViT-S/16 ({first_line(exc)}).") from exc
    if missing or unexpected:
        raise ModelError(
            f"{path}: not a ViT-S/16 checkpoint ({len(missing)} missing keys, e.g. "
            f"{', '.join(missing[:3]) or '-'}; {len(unexpected)} unexpected, e.g. "
            f"{', '.join(unexpected[:3]) or '-'}). Use DINO ViT-S/16 weights."
        )


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    import torch

    if not path.is_file():
        raise ModelError(weights_not_found(str(path), path))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(  # the loaders' own words (a bare number, a key) say nothing useful
            f"{path}: not a readable safetensors or PyTorch checkpoint: it is damaged, incomplete "
            f"or another kind of file ({type(exc).__name__}). Download it again, or pass another "
            "checkpoint with --weights."
        ) from exc
    if not isinstance(state, Mapping):
        raise ModelError(f"{path}: holds a {type(state).__name__}, not a state dict of weights.")
    return state


def _normalise_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """Unwrap training checkpoints ({'teacher': …}) and strip DDP/DINO prefixes and heads."""
    for key in ("teacher", "state_dict", "model"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            key = key.removeprefix(prefix)
        if not key.startswith("head"):
            out[key] = value
    return out


def embed_pixels(model: Any, pixels: np.ndarray, preprocess: Preprocess, device: str) -> np.ndarray:
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
        x = (x - _channel(preprocess.mean, x)) / _channel(preprocess.std, x)
        return model(x.to(dtype)).float().cpu().numpy()


def _channel(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
