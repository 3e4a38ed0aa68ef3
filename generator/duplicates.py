"""Byte-identical files (same content hash) and near-duplicates (embedding cosine similarity at
or above NEAR_DUPLICATE_COSINE). The N×N similarities are computed in row blocks of about
BLOCK_ENTRIES, so memory stays bounded whatever N is; each block's pairs join the components found
so far in one SciPy connected-components pass over the component labels (no Python loop over
pairs: with untrained weights nearly every pair of 10,000 images is "near")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97
BLOCK_ENTRIES = 1 << 21  # similarities per block: 8 MB of float32


@dataclass(frozen=True)
class Duplicates:
    """Groups of image indices (sorted, each group ≥ 2 images, groups sorted by first index)."""

    exact: tuple[tuple[int, ...], ...]
    near: tuple[tuple[int, ...], ...]
    threshold: float = NEAR_DUPLICATE_COSINE


def find_duplicates(
    digests: Sequence[str], features: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE
) -> Duplicates:
    """Exact groups share a digest; near groups are connected components of the "cosine ≥
    threshold" graph over distinct contents, kept when they hold at least two distinct files."""
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        by_digest.setdefault(digest or f"#{index}", []).append(index)
    groups = sorted(by_digest.values())
    exact = tuple(tuple(g) for g in groups if len(g) > 1)
    reps = np.array([g[0] for g in groups], dtype=np.int64)
    x = features[reps].astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    component = _near_components(x, threshold)
    components: dict[int, list[int]] = {}
    for g in range(len(groups)):
        components.setdefault(int(component[g]), []).append(g)
    near = sorted(
        tuple(sorted(i for g in comp for i in groups[g]))
        for comp in components.values()
        if len(comp) > 1
    )
    return Duplicates(exact, tuple(near), threshold)


def _near_components(x: np.ndarray, threshold: float) -> np.ndarray:
    """Component label per row of the unit vectors `x`, for the graph "cosine ≥ threshold"."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    n = len(x)
    component = np.arange(n)
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, step):
        rows, cols = np.nonzero(x[start : start + step] @ x.T >= threshold)
        a, b = component[rows + start], component[cols]
        joins = a != b  # pairs that join two components found so far
        if not joins.any():
            continue
        ones = np.ones(int(joins.sum()), dtype=np.int8)
        graph = coo_array((ones, (a[joins], b[joins])), shape=(n, n))  # over component labels
        component = connected_components(graph, directed=False)[1][component]
    return component
