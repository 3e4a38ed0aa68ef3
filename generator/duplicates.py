"""Byte-identical files (same content hash) and near-duplicates (embedding cosine similarity at
or above NEAR_DUPLICATE_COSINE). Pure numpy; the N×N similarities are computed in row blocks so
memory stays bounded whatever N is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97
BLOCK = 512


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
    parent = list(range(len(reps)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    x = features[reps].astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    for start in range(0, len(reps), BLOCK):
        sims = x[start : start + BLOCK] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        later = cols > rows + start  # each pair once, and not an image with itself
        for i, j in zip(rows[later], cols[later], strict=True):
            a, b = root(int(i) + start), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    components: dict[int, list[int]] = {}
    for g in range(len(groups)):
        components.setdefault(root(g), []).append(g)
    near = sorted(
        tuple(sorted(i for g in comp for i in groups[g]))
        for comp in components.values()
        if len(comp) > 1
    )
    return Duplicates(exact, tuple(near), threshold)
