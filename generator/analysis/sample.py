"""Deterministic, hash-ranked samples: which images the 3D view draws when there are too many.

The rank of an image is the SHA-256 of its path, so the sample depends only on the paths: not on
k, the seed or the order of work. One sample serves every k (the page restyles it, never rebuilds
it), and each cluster of each k keeps at least one drawn point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from generator.config import DISPLAY_POINTS as DEFAULT_DISPLAY_POINTS

__all__ = ["DEFAULT_DISPLAY_POINTS", "display_sample", "hash_ranks", "path_rank"]


def path_rank(paths: Sequence[str] | Any) -> np.ndarray:
    """A deterministic pseudo-random rank per path (the first 8 bytes of its sha256). Takes a
    list of str, or an Arrow string array (read as bytes: no str objects made)."""
    import pyarrow as pa

    if isinstance(paths, (pa.Array, pa.ChunkedArray)):
        raw = paths.cast(pa.binary()).to_pylist()
    else:
        raw = [p.encode() for p in paths]
    sha = hashlib.sha256
    digests = b"".join([sha(p).digest()[:8] for p in raw])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def hash_ranks(keys: Sequence[str]) -> np.ndarray:
    """Each key's position when the keys are ordered by SHA-256 (equal keys: by index)."""
    order = np.lexsort((np.arange(len(keys)), path_rank(keys)))
    ranks = np.empty(len(keys), dtype=np.int64)
    ranks[order] = np.arange(len(keys))
    return ranks


def display_sample(
    keys: Sequence[str], labels: Mapping[int, np.ndarray], points: int | None
) -> np.ndarray:
    """The sorted indices of the images to draw (all when `points` is None): the `points` lowest
    hash ranks, adjusted so that every cluster of every k in `labels` has a member, with the
    same size min(N, points); larger only when `points` is below the number of clusters that
    need their own point (never with points ≥ MIN_DISPLAY_POINTS and k ≤ 50)."""
    n = len(keys)
    if points is None or points >= n:
        return np.arange(n, dtype=np.int64)
    ranks = hash_ranks(keys)
    order = np.argsort(ranks, kind="stable")
    chosen = np.zeros(n, dtype=bool)
    chosen[order[:points]] = True
    forced = np.zeros(n, dtype=bool)
    ids = {k: np.asarray(labels[k]) for k in sorted(labels)}
    for clusters in ids.values():
        for cluster in np.unique(clusters):
            members = np.flatnonzero(clusters == cluster)
            if not chosen[members].any():  # its lowest-ranked member joins the sample
                best = members[np.argmin(ranks[members])]
                chosen[best] = forced[best] = True
    _trim(chosen, forced, order, ids, points)
    return np.flatnonzero(chosen).astype(np.int64)


def _trim(
    chosen: np.ndarray,
    forced: np.ndarray,
    order: np.ndarray,
    ids: Mapping[int, np.ndarray],
    points: int,
) -> None:
    """Drop the highest-ranked points whose clusters keep another member until `points` are left."""
    counts = {k: np.bincount(ids[k][chosen], minlength=int(ids[k].max()) + 1) for k in ids}
    excess = int(chosen.sum()) - points
    for index in order[points - 1 :: -1]:  # the hash-ranked part of the sample, highest first
        if excess <= 0:
            break
        if forced[index]:
            continue
        if all(counts[k][ids[k][index]] > 1 for k in ids):
            chosen[index] = False
            for k in ids:
                counts[k][ids[k][index]] -= 1
            excess -= 1
