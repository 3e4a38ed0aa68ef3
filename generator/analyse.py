"""Stage 4 — analyse: PCA, then K-means for every k. Pure numpy/scikit-learn, no I/O.

K-means runs on the PCA features (at most 50 dims); the 3D view shows PC1–PC3, and each cluster
centre there is the centre's first three PCA coordinates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from generator.config import K_MIN
from generator.errors import InputError

MAX_COMPONENTS = 50
N_INIT = 10
VIEW_DIMS = 3


@dataclass(frozen=True)
class Clustering:
    """One K-means result; cluster ids are ordered by size, largest first."""

    k: int
    labels: np.ndarray  # (N,) int
    centers: np.ndarray  # (k, n_components): the mean of each cluster's members
    sizes: tuple[int, ...]
    inertia: float


@dataclass(frozen=True)
class Analysis:
    coords: np.ndarray  # (N, n_components) PCA features
    explained_variance_ratio: np.ndarray  # (n_components,)
    clusterings: dict[int, Clustering]
    feature_dim: int
    distinct_points: int
    notes: tuple[str, ...]

    @property
    def n_components(self) -> int:
        return int(self.coords.shape[1])

    @property
    def view(self) -> np.ndarray:
        """PC1–PC3 for the 3D plot, zero-padded when fewer components exist."""
        return to_view(self.coords)


def analyse(features: np.ndarray, k_max: int, seed: int) -> Analysis:
    """PCA to min(50, N, D) dims, then K-means (fixed seed) for k = 2 … min(k_max, N)."""
    n, dim = features.shape
    if n < K_MIN:
        raise InputError(f"Clustering needs at least {K_MIN} images; only {n} could be used.")
    coords, ratio = pca(features, seed)
    distinct = len(np.unique(np.round(coords, 6), axis=0))
    notes = []
    if coords.shape[1] < min(MAX_COMPONENTS, dim):
        notes.append(f"PCA kept {coords.shape[1]} components: no more than the number of images.")
    if distinct < min(k_max, n):
        notes.append(
            f"Only {distinct} distinct feature vectors among {n} images: for k above {distinct} "
            "some clusters are empty or split identical images."
        )
    clusterings = {k: kmeans(coords, k, seed) for k in range(K_MIN, min(k_max, n) + 1)}
    return Analysis(coords, ratio, clusterings, dim, distinct, tuple(notes))


def pca(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    n, dim = features.shape
    components = min(MAX_COMPONENTS, n, dim)
    x = features.astype(np.float64)
    if float(np.var(x, axis=0).sum()) == 0.0:  # all identical: no direction carries variance
        return np.zeros((n, components)), np.zeros(components)
    model = PCA(n_components=components, svd_solver="full", random_state=seed)
    coords = model.fit_transform(x)
    return coords, np.nan_to_num(model.explained_variance_ratio_)


def kmeans(coords: np.ndarray, k: int, seed: int) -> Clustering:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than k
        model = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(coords)
    raw = model.labels_
    sizes = np.bincount(raw, minlength=k)
    first = [int(np.argmax(raw == c)) if sizes[c] else len(raw) for c in range(k)]
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    labels = rank[raw]
    centers = np.stack(
        [
            coords[labels == c].mean(axis=0)
            if sizes[order[c]]
            else model.cluster_centers_[order[c]]
            for c in range(k)
        ]
    )
    return Clustering(
        k=k,
        labels=labels,
        centers=centers,
        sizes=tuple(int(sizes[c]) for c in order),
        inertia=float(((coords - centers[labels]) ** 2).sum()),
    )


def to_view(coords: np.ndarray) -> np.ndarray:
    """The first three PCA coordinates, zero-padded when fewer components exist."""
    view = coords[:, :VIEW_DIMS]
    missing = VIEW_DIMS - view.shape[1]
    return np.hstack([view, np.zeros((view.shape[0], missing))]) if missing > 0 else view
