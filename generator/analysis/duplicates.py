"""Byte-identical files (same content hash), near-duplicates (embedding cosine similarity at or
above NEAR_DUPLICATE_COSINE) and each image's NEIGHBOURS most similar images, from one pass.

Every decision is taken on the exact cosine of the (float32, unit) vectors, rounded to float32:
a float64 dot product, so the result does not depend on the BLAS, the CPU or the blocks. The
N×N products are only a filter: a fast product (float32; above TORCH_ROWS images bfloat16
inputs with float32 sums where the CPU has bfloat16 units) has a proven error bound per row,
`eps`, and every pair that could be in a row's top NEIGHBOURS (within 2·eps of the row's m-th
largest product) or could reach the threshold (within eps of it) is re-scored exactly. Pairs
whose product is above the threshold by more than eps are near without a re-score.

The products are computed in row blocks, so memory stays bounded whatever N is. Each block's
near pairs join the components found so far in one union–find pass (NumPy) over the
component labels (no Python loop over pairs: with untrained weights nearly every pair of 10,000
images is "near"), and a pair is re-scored only if it would join two components."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97
NEIGHBOURS = 12  # similar images per image
BLOCK_ENTRIES = 1 << 21  # similarities per block of the NumPy pass: 8 MB of float32
SAMPLE_COLUMNS = 1024  # columns whose top values bound each row's (see _numpy_blocks)
TORCH_ROWS = 20_000  # from this many images, the products run in torch (see _torch_blocks)
TORCH_BLOCK_ENTRIES = 1 << 25  # similarities per block of the torch pass: 128 MB of float32
CHUNK = 32  # the torch pass bounds each run of CHUNK columns by its largest product
DENSE = 96  # candidates per row above which float32 products are cheaper than bfloat16 ones
SLACK = 1e-6  # added to every error bound: the float32 rounding of the bounds and thresholds


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


@dataclass(frozen=True)
class _Block:
    """What one row block of approximate products leaves to decide exactly (global indices)."""

    start: int
    stop: int
    top: tuple[np.ndarray, np.ndarray]  # candidate pairs for each row's top m
    sure: tuple[np.ndarray, np.ndarray]  # pairs certainly at or above the threshold
    maybe: tuple[np.ndarray, np.ndarray]  # pairs that may be: re-scored if they join components


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
    component, neighbours = _similarity_pass(unit_rows(features), threshold, count)
    components: dict[int, list[int]] = {}
    for index in range(len(digests)):
        components.setdefault(int(component[index]), []).append(index)
    near = sorted(
        tuple(comp) for comp in components.values() if len(set(content[comp].tolist())) > 1
    )
    return Duplicates(exact, tuple(near), threshold), neighbours


def unit_rows(features: np.ndarray) -> np.ndarray:
    """The float32 unit vectors every similarity is the cosine of (zero rows stay zero)."""
    x = features.astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def exact_similarity(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The cosines the pass decides on: float64 dot products of the unit rows, as float32.

    Pairs come grouped by row (as np.nonzero gives them); when each row has about as many, the
    row's vector is read once and its candidates are laid out in a padded (rows, width) grid."""
    if not len(rows):
        return np.empty(0, dtype=np.float32)
    first, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    width = int(counts.max())
    grouped = bool((np.diff(rows) >= 0).all())
    if grouped and len(first) * width <= 2 * len(rows):
        slot = np.arange(len(rows)) - np.repeat(starts, counts)
        grid = np.repeat(first, width).reshape(len(first), width)  # padding: the row itself
        grid[np.repeat(np.arange(len(first)), counts), slot] = cols
        sims = _dot64("rcd,rd->rc", x[grid], x[first])
        return sims[np.repeat(np.arange(len(first)), counts), slot]
    return _dot64("pd,pd->p", x[rows], x[cols])


def _dot64(spec: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """einsum of float32 operands with float64 products and sums, rounded to float32."""
    return np.einsum(spec, a, b, dtype=np.float64, casting="unsafe").astype(np.float32)


def _similarity_pass(x: np.ndarray, threshold: float, count: int) -> tuple[np.ndarray, Neighbours]:
    """Component label per row of the unit vectors `x` for the graph "cosine ≥ threshold", and
    each row's top `count` other rows."""
    n = len(x)
    m = max(0, min(count, n - 1))
    component = np.arange(n)
    indices = np.empty((n, m), dtype=np.int64)
    similarity = np.empty((n, m), dtype=np.float32)
    limit = np.float32(threshold)
    shared = [component]  # the labels so far, which the torch pass reads to skip joined runs
    blocks = _torch_blocks if n >= TORCH_ROWS else _numpy_blocks
    for block in blocks(x, limit, m, shared):
        if m:
            rows, cols = block.top
            exact = exact_similarity(x, rows, cols)
            top = _top(rows - block.start, cols, exact, block.stop - block.start, m)
            indices[block.start : block.stop], similarity[block.start : block.stop] = top
        component = _join(component, *block.sure)
        rows, cols = block.maybe
        joins = component[rows] != component[cols]  # only pairs that would join need a score
        rows, cols = rows[joins], cols[joins]
        near = exact_similarity(x, rows, cols) >= limit
        component = _join(component, rows[near], cols[near])
        shared[0] = component
    return component, Neighbours(indices, similarity)


def _top(
    rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, b: int, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `m` largest of each row's candidates (every row has at least m), ties to the
    smaller index."""
    order = np.lexsort((cols, -sims, rows))
    rows, cols, sims = rows[order], cols[order], sims[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = position < m
    return cols[keep].reshape(b, m), sims[keep].reshape(b, m)


def _join(component: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The component labels once the edges rows[i]–cols[i] are added: each label becomes the
    smallest label of its new component.

    Union–find in NumPy: every edge hooks the larger of its two roots under the smaller, then
    pointers jump until each points at its root, until no edge joins two roots. (scipy's
    connected_components gives the same partition, but importing scipy.sparse costs a warm
    rebuild about 0.2 s, a sixth of it.)"""
    a, b = component[rows], component[cols]
    joins = a != b  # pairs that join two components found so far
    if not joins.any():
        return component
    a, b = a[joins], b[joins]
    root = np.arange(len(component))
    while True:
        ra, rb = root[a], root[b]
        apart = ra != rb
        if not apart.any():
            return root[component]
        np.minimum.at(root, np.maximum(ra, rb)[apart], np.minimum(ra, rb)[apart])
        while True:  # pointer jumping: at most log2(n) rounds
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped


def _near_pairs(
    sims: np.ndarray, offset: int, limit: np.float32, eps: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(sure, maybe) pairs of a few rows of approximate products (rows start at `offset`)."""
    rows, cols = np.nonzero(sims >= (limit - eps)[:, None])
    sure = sims[rows, cols] - eps[rows] >= limit
    rows = rows + offset
    return (rows[sure], cols[sure]), (rows[~sure], cols[~sure])


def _numpy_blocks(
    x: np.ndarray, limit: np.float32, m: int, shared: list[np.ndarray]
) -> Iterator[_Block]:
    """Float32 products in NumPy, for small N (no torch import for a small build).

    The m-th largest value among every few columns (SAMPLE_COLUMNS of them) is at most the row's
    m-th largest, so the entries within 2·eps of it hold the top m: a few dozen candidates per
    row to score, for the price of one comparison pass instead of a partition of the whole row."""
    n, dim = x.shape
    norm = float(np.linalg.norm(x, axis=1).max(initial=0.0))
    bound = np.float32(dim * 2.0**-23 * norm * norm + SLACK)  # float32 sums of `dim` products
    step = max(1, BLOCK_ENTRIES // max(n, 1))
    empty = np.empty(0, dtype=np.int64)
    for start in range(0, n, step):
        sims = x[start : start + step] @ x.T
        b = len(sims)
        local = np.arange(b)
        sims[local, local + start] = -np.inf  # an image is not its own neighbour
        eps = np.full(b, bound, dtype=np.float32)
        top = (empty, empty)
        if m:
            sample = sims[:, :: max(1, n // SAMPLE_COLUMNS)]
            if sample.shape[1] <= m:  # too few columns to leave out the diagonal: use them all
                sample = sims
            width = sample.shape[1]
            floor = np.partition(sample, width - m, axis=1)[:, width - m]  # ≤ the m-th largest
            rows, cols = np.nonzero(sims >= (floor - 2 * eps)[:, None])
            top = (rows + start, cols)
        sure, maybe = _near_pairs(sims, start, limit, eps)
        yield _Block(start, start + b, top, sure, maybe)


def _torch_blocks(
    x: np.ndarray, limit: np.float32, m: int, shared: list[np.ndarray]
) -> Iterator[_Block]:
    """The products in torch, for large N: bfloat16 inputs with float32 sums where the CPU has
    bfloat16 units (embed.cpu_has_bf16), float32 elsewhere, or once bfloat16's wider bound
    leaves more than DENSE candidates per row to score (dense collections: many images within
    a few thousandths of each other). Either way the decisions are the same: exact.

    Each row's products are cut into runs of CHUNK columns and each run is bounded by its
    largest value: one pass over the block. The row's m-th largest product lies in the runs
    with the m largest maxima, so the row's m-th largest (T) comes from m·CHUNK values, and only
    the runs whose maximum reaches T − 2·eps (or the threshold − eps) are looked into."""
    import torch

    from generator.model.embed import cpu_has_bf16

    n = len(x)
    padded = -(-n // CHUNK) * CHUNK
    low = cpu_has_bf16()
    q, eps_all = _operands(torch, x, padded, low)
    rows_per_block = max(CHUNK, min(1024, TORCH_BLOCK_ENTRIES // padded))
    buffer = torch.empty((rows_per_block, padded), dtype=torch.float32)
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        sims = buffer[: stop - start]
        with _matmul_precision(torch, "bf16" if low else None):
            torch.mm(q[start:stop], q.T, out=sims)
        block = _torch_block(sims, start, eps_all[start:stop], limit, m, shared[0])
        if low and len(block.top[0]) + len(block.maybe[0]) > DENSE * (stop - start):
            low = False  # scoring the candidates costs more than float32 products
            q, eps_all = _operands(torch, x, padded, low)
        yield block


def _operands(torch: Any, x: np.ndarray, padded: int, low: bool) -> tuple[Any, np.ndarray]:
    """The rows as the products read them (zero-padded to `padded`; rounded to bfloat16 if
    `low`) and each row's error bound `eps`."""
    n, dim = x.shape
    q = torch.zeros((padded, dim), dtype=torch.float32)
    q[:n] = torch.from_numpy(x).to(torch.bfloat16).float() if low else torch.from_numpy(x)
    rounding = np.linalg.norm(q[:n].numpy() - x, axis=1)  # |x' − x| per row: 0 in float32
    norm = float(np.linalg.norm(q.numpy(), axis=1).max(initial=0.0))
    unit = float(np.linalg.norm(x, axis=1).max(initial=0.0))
    # |x'·y' − x·y| ≤ |x'−x|·|y'| + |x|·|y'−y|, plus float32 sums of `dim` exact products
    bound = rounding * norm + float(rounding.max(initial=0.0)) * unit
    return q, (bound + dim * 2.0**-23 * norm * norm + SLACK).astype(np.float32)


def _torch_block(
    sims: Any, start: int, eps: np.ndarray, limit: np.float32, m: int, labels: np.ndarray
) -> _Block:
    """Candidates of one block of approximate products `sims` (rows start…, torch); `labels`:
    the components so far (a run of columns all in the row's component needs no look)."""
    import torch

    b, padded = sims.shape
    n = len(labels)
    local = torch.arange(b)
    sims[:, n:] = -torch.inf
    sims[local, local + start] = -torch.inf  # an image is not its own neighbour
    runs = sims.view(b, padded // CHUNK, CHUNK)
    peaks = runs.amax(dim=2)  # (b, runs)
    eps_t = torch.from_numpy(eps)
    empty = np.empty(0, dtype=np.int64)
    top = (empty, empty)
    if m:
        values = sims
        if peaks.shape[1] > m:  # the runs holding the row's m largest products
            best = peaks.topk(m, dim=1).indices
            values = sims.gather(1, (best[:, :, None] * CHUNK + torch.arange(CHUNK)).reshape(b, -1))
        floor = values.topk(m, dim=1).values[:, -1] - 2 * eps_t
        rows, cols = _run_candidates(runs, peaks >= floor[:, None], floor)
        top = (rows + start, cols)
    low = torch.from_numpy(limit - eps)
    hit = (peaks >= low[:, None]) & _unjoined(labels, start, b, padded)
    rows, cols = _run_candidates(runs, hit, low)
    approx = sims[torch.from_numpy(rows), torch.from_numpy(cols)].numpy()
    sure = approx - eps[rows] >= limit
    rows = rows + start
    return _Block(start, start + b, top, (rows[sure], cols[sure]), (rows[~sure], cols[~sure]))


def _unjoined(labels: np.ndarray, start: int, b: int, padded: int) -> Any:
    """(b, runs) bool, torch: False where no pair of the run can join anything: every column
    of the run is already in the row's component (dense near-duplicates, untrained weights),
    or every column comes before the row (its row saw the pair in an earlier block)."""
    import torch

    runs = np.full(padded, -1, dtype=np.int64)
    runs[: len(labels)] = labels
    runs = runs.reshape(-1, CHUNK)
    uniform = np.where(runs.min(axis=1) == runs.max(axis=1), runs[:, 0], -2)
    rows = np.arange(start, start + b)[:, None]
    later = (np.arange(len(runs)) + 1) * CHUNK > rows  # the run's last column is after the row
    return torch.from_numpy((uniform[None, :] != labels[start : start + b, None]) & later)


def _run_candidates(runs: Any, hit: Any, floor: Any) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every product at or above its row's `floor`, looked for in the runs
    marked in `hit` (rows × runs), a bounded number of runs at a time."""
    found = hit.nonzero()
    step = max(1, BLOCK_ENTRIES // CHUNK)
    rows, cols = [], []
    for first in range(0, len(found), step):
        row, run = found[first : first + step, 0], found[first : first + step, 1]
        values = runs.reshape(-1, CHUNK).index_select(0, row * runs.shape[1] + run)
        keep = (values >= floor.index_select(0, row)[:, None]).nonzero()
        rows.append(row.index_select(0, keep[:, 0]).numpy())
        cols.append((run.index_select(0, keep[:, 0]) * CHUNK + keep[:, 1]).numpy())
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(cols)


@contextmanager
def _matmul_precision(torch: Any, precision: str | None) -> Iterator[None]:
    """torch's float32 matmul precision on the CPU (oneDNN) for a while, then restored: "bf16"
    rounds the inputs to bfloat16 and sums in float32 (exact for inputs already rounded);
    None leaves it alone."""
    backend = torch.backends.mkldnn.matmul
    before = backend.fp32_precision
    if precision:
        backend.fp32_precision = precision
    try:
        yield
    finally:
        backend.fp32_precision = before
