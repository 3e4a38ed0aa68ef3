"""Byte-identical files (same content hash), near-duplicates (embedding cosine similarity at or
above NEAR_DUPLICATE_COSINE) and each image's NEIGHBOURS most similar images, from one pass.

The N×N similarities are computed in row blocks of about BLOCK_ENTRIES, so memory stays bounded
whatever N is. Each block's pairs join the components found so far in one SciPy
connected-components pass over the component labels (no Python loop over pairs: with untrained
weights nearly every pair of 10,000 images is "near"), and each block's rows give their exact
top NEIGHBOURS (a partition, then a sort of the few candidates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97
NEIGHBOURS = 12  # similar images per image
BLOCK_ENTRIES = 1 << 21  # similarities per block: 8 MB of float32
SAMPLE_COLUMNS = 1024  # columns whose top values bound each row's (see _top)


@dataclass(frozen=True)
class Duplicates:
    """Groups of image indices (sorted, each group ≥ 2 images, groups sorted by first index)."""

    exact: tuple[tuple[int, ...], ...]
    near: tuple[tuple[int, ...], ...]
    threshold: float = NEAR_DUPLICATE_COSINE


@dataclass(frozen=True)
class Neighbours:
    """Row i: the images most similar to image i (never i itself), most similar first; equal
    similarities go to the smaller index. min(NEIGHBOURS, N-1) columns."""

    indices: np.ndarray  # (N, m) int64
    similarity: np.ndarray  # (N, m) float32 cosine similarities


def find_duplicates(
    digests: Sequence[str], features: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE
) -> Duplicates:
    """Exact groups share a digest; near groups are connected components of the "cosine ≥
    threshold" graph, kept when they hold at least two distinct files."""
    return find_similar(digests, features, threshold, count=0)[0]


def find_similar(
    digests: Sequence[str],
    features: np.ndarray,
    threshold: float = NEAR_DUPLICATE_COSINE,
    count: int = NEIGHBOURS,
) -> tuple[Duplicates, Neighbours]:
    """Duplicates and each image's `count` nearest neighbours by cosine, in one blocked pass."""
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        by_digest.setdefault(digest or f"#{index}", []).append(index)
    exact = tuple(tuple(g) for g in sorted(by_digest.values()) if len(g) > 1)
    content = np.empty(len(digests), dtype=np.int64)
    for g, members in enumerate(by_digest.values()):
        content[members] = g
    x = features.astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    component, neighbours = _similarity_pass(x, threshold, count)
    components: dict[int, list[int]] = {}
    for index in range(len(digests)):
        components.setdefault(int(component[index]), []).append(index)
    near = sorted(
        tuple(comp) for comp in components.values() if len(set(content[comp].tolist())) > 1
    )
    return Duplicates(exact, tuple(near), threshold), neighbours


def _similarity_pass(x: np.ndarray, threshold: float, count: int) -> tuple[np.ndarray, Neighbours]:
    """Component label per row of the unit vectors `x` for the graph "cosine ≥ threshold", and
    each row's top `count` other rows."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    n = len(x)
    m = max(0, min(count, n - 1))
    component = np.arange(n)
    indices = np.empty((n, m), dtype=np.int64)
    similarity = np.empty((n, m), dtype=np.float32)
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, step):
        sims = x[start : start + step] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        if m:  # after the threshold: _top overwrites the diagonal
            stop = start + len(sims)
            indices[start:stop], similarity[start:stop] = _top(sims, start, m)
        a, b = component[rows + start], component[cols]
        joins = a != b  # pairs that join two components found so far
        if not joins.any():
            continue
        ones = np.ones(int(joins.sum()), dtype=np.int8)
        graph = coo_array((ones, (a[joins], b[joins])), shape=(n, n))  # over component labels
        component = connected_components(graph, directed=False)[1][component]
    return component, Neighbours(indices, similarity)


def _top(sims: np.ndarray, start: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The `m` largest entries of each row of a block (rows start…), the row's own image left
    out; exact, with ties to the smaller index.

    The m-th largest value among every few columns (SAMPLE_COLUMNS of them) is at most the row's
    m-th largest, so the entries at or above it hold the top m: a few dozen candidates per row
    to sort, for the price of one comparison pass instead of a partition of the whole row."""
    b, n = sims.shape
    rows = np.arange(b)
    sims[rows, rows + start] = -np.inf  # an image is not its own neighbour
    sample = sims[:, :: max(1, n // SAMPLE_COLUMNS)]
    if sample.shape[1] <= m:  # too few columns to leave out the diagonal: use them all
        sample = sims
    width = sample.shape[1]
    floor = np.partition(sample, width - m, axis=1)[:, width - m]  # ≤ the row's m-th largest
    r, c = np.nonzero(sims >= floor[:, None])  # the top m, and a few more
    s = sims[r, c]
    order = np.lexsort((c, -s, r))
    r, c, s = r[order], c[order], s[order]
    position = np.arange(len(r)) - np.searchsorted(r, r)
    keep = position < m
    return c[keep].reshape(b, m), s[keep].reshape(b, m)
