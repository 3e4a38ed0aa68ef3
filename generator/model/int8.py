"""`--precision int8` on the CPU: OpenVINO with NNCF's post-training quantisation.

The model is calibrated on a fixed set shipped with the package (check_images/, 48 public-domain
clip-art pictures), so that it does not depend on the user's collection, and checked against
fp32 on those and on 80 generated images in 10 groups (check_set): every image's cosine to fp32,
and the agreement (ARI) of K-means labels for every k on the grouped images. `--precision auto`
uses int8 only where this check holds the floors (model.embed).
Chosen by benchmarks/bench_int8.py against ONNX Runtime's dynamic quantisation (README,
Performance).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.model.vit import PREPROCESS

log = logging.getLogger(__name__)

CHECK_IMAGES = Path(__file__).resolve().parent / "check_images"
MIN_COSINE = 0.99  # every image's int8 feature against its fp32 one
MIN_ARI = 0.95  # K-means labels of int8 against fp32, for every k
K_MAX = 10


def nncf_installed() -> bool:
    return importlib.util.find_spec("nncf") is not None


def check_pixels() -> np.ndarray:
    """The bundled set as the model sees it: uint8 (48, 224, 224, 3), decoded as a build does."""
    from generator.ingest.imaging import decode

    files = sorted(CHECK_IMAGES.glob("*.jpg"))
    return np.stack([decode(f, PREPROCESS.size, 64).pixels for f in files])


def grouped_pixels(groups: int = 10, each: int = 8, seed: int = 0) -> np.ndarray:
    """`groups` × `each` generated images, uint8 (N, 224, 224, 3): each group one colour and one
    stripe frequency and angle, its members shifted in phase and noisy. Features of random
    weights cluster by group, so K-means is stable on them; on clip art with random weights it
    is not (noise at cosine 0.99994 to fp32 moved ARI to 0.69 at k=8, bench_int8.py), and ARI
    there would measure K-means rather than int8. Made by code: nothing to ship."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:224, 0:224] / 224.0
    out = []
    for group in range(groups):
        colour = rng.integers(0, 256, 3)
        frequency, angle = 2 + 3 * group, float(group)
        for member in range(each):
            phase = x * np.cos(angle) + y * np.sin(angle)
            stripes = (np.sin(2 * np.pi * frequency * phase + member) + 1) / 2
            image = colour * (0.5 + 0.5 * stripes[..., None]) + rng.normal(0, 10, (224, 224, 3))
            out.append(image.clip(0, 255).astype(np.uint8))
    return np.stack(out)


def check_set() -> tuple[np.ndarray, int]:
    """The check's images and where its grouped part starts: the 48 bundled clip-art pictures
    (every image's cosine) and 80 generated ones in 10 groups (cosine, and ARI for every k)."""
    clipart = check_pixels()
    return np.concatenate([clipart, grouped_pixels()]), len(clipart)


def normalised(pixels: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) → float32 (B, 3, H, W), ImageNet mean and std, the model's input."""
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    mean = np.asarray(PREPROCESS.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(PREPROCESS.std, dtype=np.float32).reshape(1, 3, 1, 1)
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
            f"on the check set (48 bundled clip-art images, 80 generated in 10 groups) int8 "
            f"keeps cosine >= {self.min_cosine:.4f} to fp32 (floor {MIN_COSINE}) and ARI >= "
            f"{self.ari[worst]:.3f} at k={worst} (floor {MIN_ARI})"
        )

    def to_json(self) -> str:
        return json.dumps({"min_cosine": self.min_cosine, "ari": self.ari}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        data = json.loads(text)
        return cls(float(data["min_cosine"]), {int(k): float(v) for k, v in data["ari"].items()})


def compare(fp32: np.ndarray, int8: np.ndarray, grouped: int = 0, seed: int = 0) -> Verdict:
    """Every image's cosine, and ARI for k = 2 … 10 of the labels that PCA (<= 50 dims) and
    K-means (fixed seed), as the analysis runs them, give each set of features (of the rows
    from `grouped` on: see check_set)."""
    from sklearn.metrics import adjusted_rand_score

    cos = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    a, b = fp32[grouped:], int8[grouped:]
    ari = {
        k: float(adjusted_rand_score(_labels(a, k, seed), _labels(b, k, seed)))
        for k in range(2, min(K_MAX, len(a)) + 1)
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
