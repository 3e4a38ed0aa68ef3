"""Cluster quality and agreement with known labels. Pure numpy/scikit-learn, no I/O.

Quality metrics are computed on the PCA features K-means ran on. Silhouette is quadratic in N, so
above SILHOUETTE_SAMPLE images it is computed on a sample of that size drawn with the build seed
(scikit-learn's `sample_size`/`random_state`), which keeps it reproducible.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SILHOUETTE_SAMPLE = 5000
WORKING_MB = 64  # scikit-learn's working memory for the silhouette's pairwise distances
QUALITY_KEYS = ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "balance")
LABEL_KEYS = ("purity", "ari", "nmi")
SUGGESTED_K_RULE = (
    "the k with the highest mean silhouette (on the PCA features K-means ran on); "
    "ties go to the smaller k"
)


@dataclass(frozen=True)
class SilhouetteSample:
    """The images the silhouette is computed on and their pairwise distances. scikit-learn
    draws the sample from the seed and N alone, so it is the same for every k: computing its
    distances once saves eight of nine passes over 5,000² pairs."""

    indices: np.ndarray | None  # None: every image
    distances: np.ndarray  # (S, S), exactly the chunks silhouette_score would compute


def silhouette_sample(coords: np.ndarray, seed: int) -> SilhouetteSample:
    """The sample `silhouette_score(coords, …, sample_size, random_state=seed)` draws, and its
    distances, computed chunk by chunk as silhouette_score computes them (the same values)."""
    from sklearn import config_context
    from sklearn.metrics import pairwise_distances_chunked

    indices = None
    x = coords
    if len(coords) > SILHOUETTE_SAMPLE:
        indices = np.random.RandomState(seed).permutation(len(coords))[:SILHOUETTE_SAMPLE]
        x = np.asarray(coords, dtype=np.float64)[indices]
    with config_context(working_memory=WORKING_MB):
        distances = np.vstack(list(pairwise_distances_chunked(x)))
    return SilhouetteSample(indices, distances)


def quality_metrics(
    coords: np.ndarray,
    labels: np.ndarray,
    sizes: np.ndarray,
    distances: np.ndarray,
    sample: SilhouetteSample,
) -> dict[str, float | None]:
    """Inertia, silhouette, Calinski–Harabasz, Davies–Bouldin and size balance for one k. The
    three scikit-learn scores need 2 ≤ clusters in use ≤ N-1; elsewhere they are None.
    `sample`: silhouette_sample(coords, seed), which every k shares."""
    from sklearn import config_context
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    n = len(labels)
    out: dict[str, float | None] = {
        "inertia": float((distances**2).sum()),
        "balance": size_balance(sizes),
        "silhouette": None,
        "calinski_harabasz": None,
        "davies_bouldin": None,
    }
    if not 2 <= int((sizes > 0).sum()) <= n - 1:
        return out
    chosen = labels if sample.indices is None else labels[sample.indices]
    # silhouette's distances in chunks of WORKING_MB, not scikit-learn's default of 1 GB
    with warnings.catch_warnings(), config_context(working_memory=WORKING_MB):
        warnings.simplefilter("ignore", RuntimeWarning)  # coincident centres: division by zero
        score = silhouette_score(sample.distances, chosen, metric="precomputed")
        out["silhouette"] = _finite(score)
        out["calinski_harabasz"] = _finite(calinski_harabasz_score(coords, labels))
        out["davies_bouldin"] = _finite(davies_bouldin_score(coords, labels))
    return out


def size_balance(counts: np.ndarray) -> float:
    """Entropy of the cluster sizes over log(k): 1 when all clusters are equal, → 0 when one
    cluster holds nearly everything."""
    k = len(counts)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(k)) if k > 1 else 1.0


def label_metrics(truth: np.ndarray, labels: np.ndarray, table: np.ndarray) -> dict[str, float]:
    """Purity (from their contingency `table`), adjusted Rand index and normalised MI."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "purity": float(table.max(axis=0).sum() / len(labels)),
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
    }


def contingency(truth: np.ndarray, labels: np.ndarray, n_truth: int, k: int) -> np.ndarray:
    """`table[label, cluster]`: how many images with that label are in that cluster."""
    table = np.zeros((n_truth, k), dtype=np.int64)
    np.add.at(table, (truth, labels), 1)
    return table


def suggest_k(metrics: Mapping[int, Mapping[str, float | None]]) -> int | None:
    """SUGGESTED_K_RULE; None when no k has a silhouette (e.g. every image identical)."""
    scored = [
        (round(m["silhouette"], 6), k) for k, m in metrics.items() if m["silhouette"] is not None
    ]
    if not scored:
        return None
    best = max(score for score, _ in scored)
    return min(k for score, k in scored if score == best)


def encode(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sorted distinct label names and each image's index into them."""
    distinct = sorted(set(names))
    index = {name: i for i, name in enumerate(distinct)}
    return distinct, np.array([index[name] for name in names], dtype=np.int64)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
