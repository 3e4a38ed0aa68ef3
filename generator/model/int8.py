"""`--precision int8` on the CPU: OpenVINO with NNCF's post-training quantisation.

The model is calibrated on a fixed set shipped with the package (check_images/, 48 public-domain
clip-art pictures), so that it does not depend on the user's collection, and checked on the same
set against fp32: every image's cosine to fp32 and the agreement (ARI) of K-means labels for
every k. `--precision auto` uses int8 only where this check holds the floors (model.embed).
Chosen by benchmarks/bench_int8.py against ONNX Runtime's dynamic quantisation (README,
Performance).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.model.vit import PREPROCESS, Preprocess

log = logging.getLogger(__name__)

CHECK_IMAGES = Path(__file__).resolve().parent / "check_images"
MIN_COSINE = 0.99  # every image's int8 feature against its fp32 one
MIN_ARI = 0.95  # K-means labels of int8 against fp32, for every k
K_MAX = 10
INSTALL = 'pip install "dinoclust[accel]"'


def nncf_installed() -> bool:
    return importlib.util.find_spec("nncf") is not None


def check_pixels() -> np.ndarray:
    """The bundled set as the model sees it: uint8 (48, 224, 224, 3), decoded as a build does."""
    from generator.ingest.imaging import decode

    files = sorted(CHECK_IMAGES.glob("*.jpg"))
    return np.stack([decode(f, PREPROCESS.size, 64).pixels for f in files])


def normalised(pixels: np.ndarray, preprocess: Preprocess = PREPROCESS) -> np.ndarray:
    """uint8 (B, H, W, 3) → float32 (B, 3, H, W), ImageNet mean and std, the model's input."""
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    mean = np.asarray(preprocess.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


def quantise(model: Any, pixels: np.ndarray, smooth_quant: bool = False) -> Any:
    """The fp32 OpenVINO model, quantised to int8 by NNCF: calibrated on `pixels` (the bundled
    set), as a transformer (softmax and layer norms stay in floating point). Without SmoothQuant:
    with it the worst image's cosine to fp32 fell from 0.998 to 0.991 (bench_int8.py)."""
    import nncf

    samples = [normalised(pixels[i : i + 1]) for i in range(len(pixels))]
    alphas = nncf.AdvancedSmoothQuantParameters(matmul=-1)  # -1: off
    advanced = (
        None if smooth_quant else nncf.AdvancedQuantizationParameters(smooth_quant_alphas=alphas)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("nncf").setLevel(logging.WARNING)
        return nncf.quantize(
            model,
            nncf.Dataset(samples),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(samples),
            advanced_parameters=advanced,
        )


@dataclass(frozen=True)
class Verdict:
    """How int8 compares with fp32 on the bundled set, and whether that holds the floors."""

    min_cosine: float
    ari: dict[int, float]  # k → adjusted Rand index of int8's labels against fp32's

    @property
    def holds(self) -> bool:
        return self.min_cosine >= MIN_COSINE and min(self.ari.values()) >= MIN_ARI

    def reason(self) -> str:
        worst = min(self.ari, key=self.ari.get)
        return (
            f"on the {len(list(CHECK_IMAGES.glob('*.jpg')))} bundled check images int8 keeps "
            f"cosine >= {self.min_cosine:.4f} to fp32 (floor {MIN_COSINE}) and ARI >= "
            f"{self.ari[worst]:.3f} at k={worst} (floor {MIN_ARI})"
        )

    def to_json(self) -> str:
        return json.dumps({"min_cosine": self.min_cosine, "ari": self.ari}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        data = json.loads(text)
        return cls(float(data["min_cosine"]), {int(k): float(v) for k, v in data["ari"].items()})


def compare(fp32: np.ndarray, int8: np.ndarray, seed: int = 0) -> Verdict:
    """Every image's cosine, and ARI for k = 2 … 10 of the labels that PCA (<= 50 dims) and
    K-means (fixed seed), as the analysis runs them, give each set of features."""
    cos = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    ari = {
        k: float(_ari(_labels(fp32, k, seed), _labels(int8, k, seed)))
        for k in range(2, min(K_MAX, len(fp32)) + 1)
    }
    return Verdict(float(cos.min()), ari)


def _labels(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    n, dim = features.shape
    coords = PCA(min(50, n, dim), svd_solver="full", random_state=seed).fit_transform(
        features.astype(np.float64)
    )
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(coords).labels_


def _ari(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return asdict(verdict)
