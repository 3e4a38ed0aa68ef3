"""Reports from very large stores (`build --embeddings` above SAMPLED_ROWS rows), on one machine.

Nothing of size N is held in memory but one column of ints per k:
1. a streamed pass computes the exact PCA from the covariance (sum of x and of x xᵀ over every row,
   float64) and ranks every row by a hash of its path, keeping the SAMPLE_SIZE lowest: the
   deterministic sample (the same store gives the same sample, whatever the part sizes);
2. the sample's rows are read (their small columns, thumbnails included; pass 1 kept their
   vectors): they are the page's images, and K-means for each k is fitted on their PCA
   coordinates (metrics, near-duplicates: the sample);
3. a streamed pass assigns every row to its nearest centre for each k, counts the sizes over all
   rows and writes `assignments.parquet` (path, cluster and distance for each k) beside the site.

Both passes split the store into row groups (`Chunk`), computed on WORKERS threads and combined
in store order, so the result does not depend on the threads. In-memory builds write the same
assignments.parquet (`write_assignments`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from generator.analysis.analyse import MAX_COMPONENTS, Analysis, distinct_points, notes, sweep
from generator.analysis.sample import path_rank
from generator.config import K_MIN
from generator.errors import InputError
from generator.storage.store import (
    META_ERRORS_I18N,
    Store,
    _batch_rows,
    _check_part,
    _vectors,
    readable,
)
from generator.types import PHASE_LOGGER

if TYPE_CHECKING:
    import pyarrow as pa

    from generator.types import Progress, Row

log = logging.getLogger(__name__)
phase = logging.getLogger(PHASE_LOGGER)

SAMPLED_ROWS = 1_000_000  # above this, the page and report.json hold the sample only
SAMPLE_SIZE = 20_000  # rows K-means is fitted on and the page shows (documented in README)
# Rows per read, and per float64 block: buffers the allocators reuse, instead of fresh pages
# from the kernel for each batch (at 65,536 rows, half the time went to page faults)
BATCH_ROWS = 16_384
BLOCK_ROWS = 4_096
WORKERS = min(4, os.cpu_count() or 1)  # chunks computed at once, each BLAS call on one thread
_T = TypeVar("_T")


def _ignore(n: int) -> None:
    """No progress to show."""


LOG_EVERY_S = 30.0


class _Logged:
    """A stage's progress as log lines (-v) with its rate and time left, every LOG_EVERY_S
    seconds and at the end: what a run on a cluster shows in its log, where no bar is drawn."""

    def __init__(
        self,
        label: str,
        total: int,
        advance: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.advance, self.clock = label, total, advance, clock
        self.start = self.last = clock()
        self.done = 0

    def __call__(self, n: int) -> None:
        self.advance(n)
        self.done += n
        now = self.clock()
        if now - self.last >= LOG_EVERY_S or (n and self.done >= self.total):
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        seconds = max(now - self.start, 1e-9)
        rate = self.done / seconds
        head = f"{self.label}: {self.done:,} of {self.total:,} ({rate:,.0f}/s"
        if self.done >= self.total:
            return f"{head}, done in {_duration(seconds)})"
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return f"{head}, about {_duration(left)} left)"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def logged(progress: Progress) -> Progress:
    """`progress` that also logs each stage's rate and time left (see _Logged)."""

    @contextmanager
    def both(label: str, total: int) -> Iterator[Callable[[int], None]]:
        with progress(label, total) as advance:
            yield _Logged(label, total, advance)

    return both


@dataclass(frozen=True)
class Projection:
    """The exact PCA of every row: x → (x - mean) @ components.T."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (C, D), each with its largest loading positive (sklearn's sign)
    explained_variance_ratio: np.ndarray  # (C,)
    rows: int  # rows with an embedding
    sample: np.ndarray  # (S,) the sampled rows' numbers (over all parts' rows), ascending
    sample_vectors: np.ndarray  # (S, D) float32, kept by pass 1 for pass 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T


@dataclass(frozen=True)
class Batch:
    """One read of a part: the Arrow path column, the vectors and which rows have one."""

    paths: pa.Array
    vectors: np.ndarray  # (B, D) float32; rows without an embedding are zeros
    valid: np.ndarray  # (B,) bool


@dataclass(frozen=True)
class Chunk:
    """One row group of one part: the unit a worker thread reads and computes on."""

    path: Path
    group: int
    first: int  # its first row's number over all parts
    offset: int  # ... and within its part (error messages name rows within the part)
    rows: int


def chunks(store: Store) -> list[Chunk]:
    """Every part's row groups, in store order, from the footers alone."""
    import pyarrow.parquet as pq

    out, first = [], 0
    for path in store.files:
        meta, offset = pq.read_metadata(readable(path)), 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            out.append(Chunk(path, group, first, offset, rows))
            first, offset = first + rows, offset + rows
    return out


def chunk_batches(chunk: Chunk, dim: int | None) -> Iterator[Batch]:
    """The chunk's rows in BATCH_ROWS batches, validated as read_rows validates, with no Python
    work per row for what `dinoclust embed` writes (float32 fixed-size lists)."""
    import pyarrow.parquet as pq

    offset = chunk.offset
    reader = pq.ParquetFile(readable(chunk.path), memory_map=True)  # no copy out of the page cache
    for batch in reader.iter_batches(
        BATCH_ROWS, row_groups=[chunk.group], columns=["path", "embedding"], use_threads=False
    ):
        column = batch.column("embedding")
        fast = _fast_vectors(column)
        if fast is None:  # another tool's lists: the row-by-row checks that name the row
            vectors, valid, dim = _vectors(column, chunk.path, offset, dim)
            fast = vectors, np.asarray(valid, dtype=bool)
        offset += batch.num_rows
        yield Batch(batch.column("path"), *fast)


def _fast_vectors(column: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """float32 fixed-size lists with finite values (what `dinoclust embed` writes), without a
    loop over rows; None when the general reader must check them row by row."""
    import pyarrow as pa

    kind = column.type
    if not pa.types.is_fixed_size_list(kind) or kind.value_type != pa.float32():
        return None
    size = kind.list_size
    flat = column.values.slice(column.offset * size, len(column) * size)
    vectors = flat.to_numpy(zero_copy_only=False).reshape(len(column), size)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if column.null_count:
        vectors = np.where(valid[:, None], vectors, np.float32(0))  # a null's slot is unset
    if not np.isfinite(vectors).all():
        return None  # the general reader names the row
    return vectors, valid


@dataclass
class Candidates:
    """Rows of lowest path rank (with their vectors), at most `size`: the sample so far."""

    size: int
    ranks: np.ndarray
    rows: np.ndarray
    vectors: np.ndarray | None = None

    @classmethod
    def empty(cls, size: int) -> Candidates:
        return cls(size, np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))

    @property
    def bound(self) -> int | None:
        """Rows ranked above this cannot enter (None: not full yet)."""
        return int(self.ranks.max()) if len(self.ranks) >= self.size else None

    def merge(self, ranks: np.ndarray, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Keep the `size` lowest by rank, ties by row number: the same whatever the order of
        merging (so whatever the part sizes, and whichever worker finishes first)."""
        if self.vectors is not None:
            ranks = np.concatenate([self.ranks, ranks])
            rows = np.concatenate([self.rows, rows])
            vectors = np.concatenate([self.vectors, vectors])
        chosen = np.lexsort((rows, ranks))[: self.size]
        self.ranks, self.rows, self.vectors = ranks[chosen], rows[chosen], vectors[chosen]


@dataclass(frozen=True)
class Moments:
    """One chunk's share of pass 1."""

    total: np.ndarray  # sum of x (float64)
    outer: np.ndarray  # sum of x xᵀ (float64: the PCA stays exact)
    count: int
    candidates: Candidates
    dim: int | None


@dataclass(frozen=True)
class _Moments:
    """Pass 1 on one chunk, in a worker thread; `sample` is read for its bound only (a stale
    bound lets more rows compete, never fewer)."""

    dim: int | None
    sample: Candidates

    def __call__(self, chunk: Chunk) -> Moments:
        total: np.ndarray | float = 0.0
        outer: np.ndarray | float = 0.0
        count, dim, first = 0, self.dim, chunk.first
        found = Candidates.empty(self.sample.size)
        for batch in chunk_batches(chunk, dim):
            where = np.flatnonzero(batch.valid)
            if not len(where):
                first += len(batch.valid)
                continue
            given = batch.vectors if len(where) == len(batch.valid) else batch.vectors[where]
            for block in range(0, len(given), BLOCK_ROWS):
                x = given[block : block + BLOCK_ROWS].astype(np.float64)
                total, outer = total + x.sum(axis=0), outer + x.T @ x
            count, dim = count + len(given), given.shape[1]
            if found.size:
                ranks, rows, kept = _ranked(batch, where, first, self.sample.bound)
                found.merge(ranks, rows, kept)
            first += len(batch.valid)
        return Moments(np.asarray(total), np.asarray(outer), count, found, dim)


def _ranked(
    batch: Batch, where: np.ndarray, first: int, bound: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch's rows with an embedding that may enter the sample: (ranks, rows, vectors)."""
    import pyarrow as pa

    whole = len(where) == len(batch.valid)
    ranks = path_rank(batch.paths if whole else batch.paths.filter(pa.array(batch.valid)))
    if bound is not None:
        keep = ranks <= np.uint64(bound)
        where, ranks = where[keep], ranks[keep]
    return ranks, first + where, batch.vectors[where]


def _in_order(func: Callable[[Chunk], _T], work: Sequence[Chunk]) -> Iterator[tuple[Chunk, _T]]:
    """func(chunk) on WORKERS threads (Parquet decoding, numpy and BLAS let go of the GIL; each
    BLAS call on one thread, which on a busy machine is several times faster than BLAS's own
    threads), results in chunk order, at most 2 x WORKERS chunks under way."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    pending: deque[tuple[Chunk, Future[_T]]] = deque()
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(WORKERS) as pool:
        try:
            for chunk in work:
                pending.append((chunk, pool.submit(func, chunk)))
                if len(pending) >= 2 * WORKERS:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def project(
    store: Store, sample_size: int | None = None, advance: Callable[[int], None] = _ignore
) -> Projection:
    """Pass 1: the covariance of every row, and the sample (SAMPLE_SIZE rows), in one read."""
    sample = Candidates.empty(SAMPLE_SIZE if sample_size is None else sample_size)
    total, outer, n = np.zeros(0), np.zeros((0, 0)), 0
    dim: int | None = store.dim or None
    for chunk, part in _in_order(_Moments(dim, sample), chunks(store)):
        advance(chunk.rows)
        if not part.count:
            continue
        if dim is not None and part.dim != dim:
            raise InputError(
                f"{chunk.path}: embeddings have {part.dim} values, but earlier ones have {dim}. "
                "All embeddings must have the same dimension."
            )
        dim = part.dim
        if not n:
            total, outer = np.zeros_like(part.total), np.zeros_like(part.outer)
        total += part.total  # summed in chunk order: the same result on every run
        outer += part.outer
        n += part.count
        if part.candidates.vectors is not None:
            sample.merge(part.candidates.ranks, part.candidates.rows, part.candidates.vectors)
    if n < K_MIN:
        raise InputError(f"Clustering needs at least {K_MIN} images; only {n} could be used.")
    order = np.argsort(sample.rows)
    vectors = sample.vectors if sample.vectors is not None else np.zeros((0, dim or 0), np.float32)
    return _pca(total, outer, n, sample.rows[order], vectors[order])


def _pca(
    total: np.ndarray,
    outer: np.ndarray,
    n: int,
    sample: np.ndarray,
    sample_vectors: np.ndarray,
) -> Projection:
    mean = total / n
    covariance = (outer - n * np.outer(mean, mean)) / max(n - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    components = min(MAX_COMPONENTS, n, len(mean))
    values, vectors = np.clip(values[order], 0, None), vectors[:, order].T
    kept = vectors[:components]
    signs = np.sign(kept[np.arange(components), np.argmax(np.abs(kept), axis=1)])
    kept = kept * np.where(signs == 0, 1, signs)[:, None]
    variance = values.sum()
    ratio = values[:components] / variance if variance > 0 else np.zeros(components)
    return Projection(mean, kept, ratio, n, sample, sample_vectors)


def sample_rows(store: Store, projection: Projection) -> list[Row]:
    """Pass 2: the sampled rows whole (thumbnails, sizes, hashes), in store order. Only the
    small columns are read: the vectors are the ones pass 1 kept."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[Row] = []
    start = 0
    sample, kept = projection.sample, projection.sample_vectors
    for path in store.files:
        count = pq.read_metadata(readable(path)).num_rows
        picked = (sample >= start) & (sample < start + count)
        wanted = sample[picked]
        if len(wanted):
            meta, _ = _check_part(path, pq)
            errors = json.loads(meta.get(META_ERRORS_I18N) or "{}")
            names = [n for n in pq.read_schema(readable(path)).names if n != "embedding"]
            table = pq.read_table(readable(path), columns=names).take(wanted - start)
            vectors = kept[picked]
            flat = pa.array(vectors.ravel())
            embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
            table = table.append_column("embedding", embedding)
            for batch in table.to_batches():
                found, _ = _batch_rows(batch, path, 0, store.dim or None, errors, {})
                rows.extend(found)
        start += count
    return rows


def fit(projection: Projection, sample: np.ndarray, k_max: int, seed: int) -> Analysis:
    """K-means for each k on the sample's PCA coordinates (ids stable across k)."""
    coords = projection(sample)
    dim, distinct = len(projection.mean), distinct_points(coords)
    return Analysis(
        coords,
        projection.explained_variance_ratio,
        sweep(coords, k_max, seed),
        dim,
        distinct,
        notes(coords, dim, distinct, k_max),
        projection.mean,
        projection.components,
    )


@dataclass(frozen=True)
class _Assign:
    """Pass 3 on one chunk, in a worker thread: each row's nearest centre and distance for
    every k, as the chunk's rows of assignments.parquet, and the chunk's cluster sizes."""

    projection: Projection
    centers: dict[int, np.ndarray]
    dim: int | None

    def __call__(self, chunk: Chunk) -> tuple[pa.Table | None, dict[int, np.ndarray]]:
        import pyarrow as pa

        tables = []
        sizes = {k: np.zeros(k, dtype=np.int64) for k in self.centers}
        for batch in chunk_batches(chunk, self.dim):
            given = batch.vectors[batch.valid]
            coords = np.concatenate(
                [
                    self.projection(given[block : block + BLOCK_ROWS])
                    for block in range(0, max(len(given), 1), BLOCK_ROWS)
                ]
            )
            squares = (coords**2).sum(axis=1)
            columns: dict[str, Any] = {"path": batch.paths.filter(pa.array(batch.valid))}
            for k, centers in self.centers.items():
                labels, distances = _nearest(coords, centers, squares)
                sizes[k] += np.bincount(labels, minlength=k)
                columns[f"cluster_k{k}"] = pa.array(labels.astype(np.int32))
                columns[f"distance_k{k}"] = pa.array(distances.astype(np.float32))
            tables.append(pa.table(columns))
        return (pa.concat_tables(tables) if tables else None), sizes


def assign(
    store: Store,
    projection: Projection,
    analysis: Analysis,
    target: Path | None,
    advance: Callable[[int], None] = _ignore,
) -> dict[int, list[int]]:
    """Pass 3: every row's nearest centre and distance for each k; the sizes over all rows.
    Writes `target` (assignments.parquet) when given, in store order."""
    import pyarrow.parquet as pq

    ks = sorted(analysis.clusterings)
    work = _Assign(projection, {k: analysis.clusterings[k].centers for k in ks}, store.dim or None)
    sizes = {k: np.zeros(k, dtype=np.int64) for k in ks}
    writer = None
    try:
        for chunk, (table, counts) in _in_order(work, chunks(store)):
            for k in ks:
                sizes[k] += counts[k]
            if target is not None and table is not None:
                writer = writer or pq.ParquetWriter(target, table.schema, compression="zstd")
                writer.write_table(table)
            advance(chunk.rows)
    finally:
        if writer is not None:
            writer.close()
    return {k: [int(s) for s in sizes[k]] for k in ks}


def _nearest(
    coords: np.ndarray, centers: np.ndarray, squares: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    squared = squares[:, None] - 2 * coords @ centers.T + (centers**2).sum(axis=1)[None]
    labels = np.argmin(squared, axis=1)
    distances = np.sqrt(np.clip(squared[np.arange(len(coords)), labels], 0, None))
    return labels, distances
