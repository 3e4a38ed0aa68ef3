"""Stage 4 — analyse: PCA, then K-means for every k, with quality metrics. Pure numpy/sklearn.

K-means runs on the PCA features (at most 50 dims); the 3D view shows PC1–PC3, and each cluster
centre there is the centre's first three PCA coordinates. Cluster ids are stable across k: at k = 2
they are ordered by size, and each cluster of k+1 takes the id of the cluster of k it overlaps most
(an assignment maximising the total overlap), so the page keeps colours as the slider moves.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generator.analysis.metrics import (
    SilhouetteSample,
    contingency,
    encode,
    label_metrics,
    quality_metrics,
    silhouette_sample,
)
from generator.config import K_MIN
from generator.errors import InputError
from generator.i18n import Message

MAX_COMPONENTS = 50
N_INIT = 10
COVARIANCE_ROWS = 10  # PCA from the covariance when N ≥ this × D (scikit-learn's own rule)
VIEW_DIMS = 3


@dataclass(frozen=True)
class Clustering:
    """One K-means result; ids follow the clusters of k-1 they overlap most (see match_ids)."""

    k: int
    labels: np.ndarray  # (N,) int
    centers: np.ndarray  # (k, n_components): the mean of each cluster's members
    sizes: tuple[int, ...]
    inertia: float
    distances: np.ndarray  # (N,) each image's distance to its cluster centre (PCA space)
    metrics: dict[str, float | None]  # quality_metrics(); None where undefined


@dataclass(frozen=True)
class Analysis:
    coords: np.ndarray  # (N, n_components) PCA features
    explained_variance_ratio: np.ndarray  # (n_components,)
    clusterings: dict[int, Clustering]
    feature_dim: int
    distinct_points: int
    notes: tuple[Message, ...]
    # the projection, so a new image can be placed (--query): coords = (x - mean) @ components.T
    pca_mean: np.ndarray | None = None  # (D,)
    pca_components: np.ndarray | None = None  # (n_components, D)

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
        raise InputError(
            f"Clustering needs at least {K_MIN} images; only {n} could be used. "
            "Add more images to the input."
        )
    coords, ratio, mean, components = pca(features, seed)
    distinct = distinct_points(coords)
    said = notes(coords, dim, distinct, k_max)
    return Analysis(
        coords, ratio, sweep(coords, k_max, seed), dim, distinct, said, mean, components
    )


def notes(coords: np.ndarray, dim: int, distinct: int, k_max: int) -> tuple[Message, ...]:
    """What the page says of the clustering: fewer components than usual, or fewer distinct
    points than clusters (the in-memory and the sampled analysis alike)."""
    said = []
    if coords.shape[1] < min(MAX_COMPONENTS, dim):
        said.append(Message.of("note_pca_few", n=coords.shape[1]))
    if distinct < min(k_max, len(coords)):
        said.append(Message.of("note_distinct", distinct=distinct, n=len(coords)))
    return tuple(said)


def sweep(coords: np.ndarray, k_max: int, seed: int) -> dict[int, Clustering]:
    """K-means for k = 2 … min(k_max, N), each k's ids matched to those of k-1."""
    sample = silhouette_sample(coords, seed)  # the same distances serve every k
    clusterings: dict[int, Clustering] = {}
    previous: np.ndarray | None = None
    for k in range(K_MIN, min(k_max, len(coords)) + 1):
        clusterings[k] = kmeans(coords, k, seed, previous, sample)
        previous = clusterings[k].labels
    return clusterings


def distinct_points(coords: np.ndarray) -> int:
    """Points that differ in the 6th decimal: fewer than k leave clusters empty or split ties."""
    return len(np.unique(np.round(coords, 6), axis=0))


def pca(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, explained variance ratios, mean and components. Many more images than
    dimensions: the eigenvectors of the D×D covariance, the same components as the full SVD
    (and its signs) at a fraction of the time (2 s instead of 25 s at 100,000 × 384); otherwise
    the full SVD."""
    from sklearn.decomposition import PCA

    n, dim = features.shape
    components = min(MAX_COMPONENTS, n, dim)
    x = features.astype(np.float64)
    if float(np.var(x, axis=0).sum()) == 0.0:  # all identical: no direction carries variance
        return np.zeros((n, components)), np.zeros(components), x[0], np.zeros((components, dim))
    solver = "covariance_eigh" if n >= COVARIANCE_ROWS * dim and dim <= 1000 else "full"
    model = PCA(n_components=components, svd_solver=solver, random_state=seed)
    coords = model.fit_transform(x)
    ratio = np.nan_to_num(model.explained_variance_ratio_)
    return coords, ratio, model.mean_, model.components_


def kmeans(
    coords: np.ndarray,
    k: int,
    seed: int,
    previous: np.ndarray | None,
    sample: SilhouetteSample,
) -> Clustering:
    """K-means for one k; ids by size when `previous` is None, else matched to `previous`.
    `sample`: the silhouette's distances, computed once for every k (metrics.silhouette_sample)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than k
        model = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(coords)
    raw = model.labels_
    sizes = np.bincount(raw, minlength=k)
    first = [int(np.argmax(raw == c)) if sizes[c] else len(raw) for c in range(k)]
    by_size = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    rank = np.empty(k, dtype=np.int64)
    rank[by_size] = np.arange(k)
    labels = rank[raw]  # ids by size: the canonical order that matching starts from
    raw_centers = model.cluster_centers_[by_size]
    if previous is not None:
        mapping = match_ids(previous, labels, k)
        labels = mapping[labels]
        raw_centers = raw_centers[np.argsort(mapping)]
    counts = np.bincount(labels, minlength=k)
    centers = np.stack(
        [coords[labels == c].mean(axis=0) if counts[c] else raw_centers[c] for c in range(k)]
    )
    distances = np.linalg.norm(coords - centers[labels], axis=1)
    metrics = quality_metrics(coords, labels, counts, distances, sample)
    return Clustering(
        k=k,
        labels=labels,
        centers=centers,
        sizes=tuple(int(s) for s in counts),
        inertia=float(metrics["inertia"] or 0.0),
        distances=distances,
        metrics=metrics,
    )


def match_ids(previous: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """`mapping[c]`: the stable id of cluster c (0 … k-1) of `labels`: one-to-one to the ids in
    `previous` with the largest summed overlap (Hungarian algorithm); clusters left over take
    the next free ids, in their order in `labels` (by size)."""
    from scipy.optimize import linear_sum_assignment

    k_prev = int(previous.max()) + 1
    overlap = contingency(previous, labels, k_prev, k)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    mapping = np.full(k, -1, dtype=np.int64)
    mapping[cols] = rows
    free = iter(range(k_prev, k_prev + k))
    for c in range(k):
        if mapping[c] < 0:
            mapping[c] = next(free)
    return mapping


def flows(before: np.ndarray, after: np.ndarray, k_after: int) -> list[tuple[int, int, int]]:
    """(cluster at k, cluster at k+1, images) for every non-empty pair: the Sankey's links."""
    counts = contingency(before, after, int(before.max()) + 1, k_after)
    return [(int(i), int(j), int(counts[i, j])) for i, j in zip(*np.nonzero(counts), strict=True)]


def to_view(coords: np.ndarray) -> np.ndarray:
    """The first three PCA coordinates, zero-padded when fewer components exist."""
    view = coords[:, :VIEW_DIMS]
    missing = VIEW_DIMS - view.shape[1]
    return np.hstack([view, np.zeros((view.shape[0], missing))]) if missing > 0 else view


@dataclass(frozen=True)
class LabelComparison:
    """Known labels against every clustering: per-k scores and label × cluster tables."""

    names: tuple[str, ...]  # one per image, in images order
    distinct: tuple[str, ...]  # sorted; the rows of the tables
    metrics: dict[int, dict[str, float]]  # k → purity, ari, nmi
    tables: dict[int, np.ndarray]  # k → (len(distinct), k) counts


def compare_labels(analysis: Analysis, names: Sequence[str]) -> LabelComparison:
    """Score each clustering against the known labels (see metrics.label_metrics)."""
    distinct, truth = encode(names)
    metrics, tables = {}, {}
    for k, c in analysis.clusterings.items():
        tables[k] = contingency(truth, c.labels, len(distinct), k)
        metrics[k] = label_metrics(truth, c.labels, tables[k])
    return LabelComparison(tuple(names), tuple(distinct), metrics, tables)


def prefetch_analysis() -> None:
    """What analyse() imports on its first call (scikit-learn: about 1.1 s on 2 cores)."""
    import sklearn.cluster
    import sklearn.decomposition
    import sklearn.metrics  # noqa: F401
