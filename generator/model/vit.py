"""DINO ViT-S/16: the model, its preprocessing and its weights (hub, checkpoint file or random)."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from generator.config import PRETRAINED, RANDOM
from generator.errors import ModelError, first_line

MODEL_NAME = "vit_small_patch16_224.dino"
HUB_REPO = "timm/vit_small_patch16_224.dino"  # timm's pretrained_cfg hf_hub_id for MODEL_NAME
FEATURE_DIM = 384
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what the hub repo may hold
HUB_TIMEOUT_S = 5.0
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # what --weights PATH may name


@dataclass(frozen=True)
class Preprocess:
    """The original notebook's preprocessing: squash to 224×224, ImageNet mean/std."""

    size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "bilinear, aspect ratio not kept"


PREPROCESS = Preprocess()


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


def weights_id(weights: str, seed: int = 0) -> str:
    """What identifies `--weights` exactly (with `--seed` for random ones), as ModelInfo's
    `weights_id` says it: `random:SEED`, `hub:REPO` or `sha256:DIGEST` of the checkpoint."""
    from generator.ingest.discover import file_sha256

    if weights == RANDOM:
        return f"random:{seed}"
    if weights == PRETRAINED:
        return f"hub:{HUB_REPO}"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(weights_not_found(weights, path))
    return f"sha256:{file_sha256(path)}"


def made_key(weights: str, packages: Sequence[str], **more: object) -> str:
    """The folder name of what is made from the model (an OpenVINO conversion, an ONNX export):
    a digest of everything that changes it, `weights` (a weights id) and the `packages`' versions
    among them."""
    from generator.version import package_version

    versions = {p: package_version(p) for p in packages}
    key = {"model": MODEL_NAME, "weights": weights, "packages": versions, **more}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def download_pretrained() -> Path:
    """The hub checkpoint: from the local cache, else downloaded once — or a fast, clear error."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for filename in HUB_FILES:
        try:
            return Path(hf_hub_download(HUB_REPO, filename, local_files_only=True))
        except LocalEntryNotFoundError:
            continue
    why = _hub_unreachable()  # fail in seconds, not after a minute of retries
    if why is not None:
        raise ModelError(_offline_message(HUB_REPO, why))
    try:
        return Path(hf_hub_download(HUB_REPO, "model.safetensors"))
    except Exception as exc:
        raise ModelError(_offline_message(HUB_REPO, f"the download failed: {exc}")) from exc


def pretrained_unavailable() -> str | None:
    """Why the pretrained weights cannot be had now (not cached, and the hub does not answer
    within HUB_TIMEOUT_S), or None when they can. `dinoclust demo` falls back on it."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        if isinstance(try_to_load_from_cache(HUB_REPO, filename), str):
            return None
    return _hub_unreachable()


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
        f"Cannot get the pretrained weights {repo}: {why}. "
        "Run once with a network connection (they are cached afterwards), or download a checkpoint "
        "(timm's model.safetensors, or Facebook's dino_deitsmall16_pretrain.pth) and pass "
        "--weights PATH. For an offline smoke test only, --weights random uses untrained weights."
    )


def load_weights(model: Any, path: Path) -> None:
    """Load timm's safetensors/pth or Facebook's original DINO checkpoint into `model`."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = _normalise_keys(_read_state_dict(path))
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
