"""Reports from very large stores (`build --embeddings` above SAMPLED_ROWS rows), on one machine.

Nothing of size N is held in memory but one column of ints per k:
1. a streamed pass computes the exact PCA from the covariance (sum of x and of x xᵀ over every row,
   float64) and ranks every row by a hash of its path, keeping the SAMPLE_SIZE lowest: the
   deterministic sample (the same store gives the same sample, whatever the part sizes);
2. the sample's rows are read whole (thumbnails included): they are the page's images, and
   K-means for each k is fitted on their PCA coordinates (metrics, near-duplicates: the sample);
3. a streamed pass assigns every row to its nearest centre for each k, counts the sizes over all
   rows and writes `assignments.parquet` (path, cluster and distance for each k) beside the site.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.analyse import MAX_COMPONENTS, Analysis, Clustering, kmeans
from generator.config import K_MIN
from generator.errors import InputError
from generator.i18n import Message
from generator.store import META_ERRORS_I18N, Store, _batch_rows, _check_part, _vectors

if TYPE_CHECKING:
    from generator.config import BuildConfig
    from generator.labels import LabelSource
    from generator.mapper import Row
    from generator.pipeline import Progress

log = logging.getLogger(__name__)

SAMPLED_ROWS = 1_000_000  # above this, the page and report.json hold the sample only
SAMPLE_SIZE = 20_000  # rows K-means is fitted on and the page shows (documented in README)
BATCH_ROWS = 65_536
ASSIGNMENTS = "assignments.parquet"


@dataclass(frozen=True)
class Projection:
    """The exact PCA of every row: x → (x - mean) @ components.T."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (C, D), each with its largest loading positive (sklearn's sign)
    explained_variance_ratio: np.ndarray  # (C,)
    rows: int  # rows with an embedding
    sample: np.ndarray  # (S,) the sampled rows' numbers (over all parts' rows), ascending

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T


def vector_batches(store: Store) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """(paths, vectors (B, D) float32, valid mask) per batch, validated as read_rows validates."""
    import pyarrow.parquet as pq

    dim = store.dim or None
    for path in store.files:
        offset = 0
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=["path", "embedding"]):
            column = batch.column("embedding")
            fast = _fast_vectors(column)
            if fast is None:  # another tool's lists: the row-by-row checks that name the row
                vectors, valid, dim = _vectors(column, path, offset, dim)
                fast = vectors, np.asarray(valid, dtype=bool)
            offset += batch.num_rows
            yield batch.column("path").to_pylist(), *fast


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
    if not np.isfinite(vectors[valid]).all():
        return None  # the general reader names the row
    return vectors, valid


def path_rank(paths: list[str]) -> np.ndarray:
    """A deterministic pseudo-random rank per path (the first 8 bytes of its sha256)."""
    digests = b"".join(hashlib.sha256(p.encode()).digest()[:8] for p in paths)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def project(store: Store, sample_size: int | None = None) -> Projection:
    """Pass 1: the covariance of every row, and the sample (SAMPLE_SIZE rows), in one read."""
    sample_size = SAMPLE_SIZE if sample_size is None else sample_size
    total = np.zeros(0)
    outer = np.zeros((0, 0))
    n = 0
    ranks, where = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    seen = 0
    for paths, vectors, valid in vector_batches(store):
        x = vectors[valid].astype(np.float64)
        if not n and len(x):
            total, outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        if len(x):
            total += x.sum(axis=0)
            outer += x.T @ x
            n += len(x)
        positions = seen + np.flatnonzero(valid)  # row numbers over all parts
        seen += len(valid)
        kept_paths = [p for p, ok in zip(paths, valid, strict=True) if ok]
        keep = np.concatenate([ranks, path_rank(kept_paths)])
        at = np.concatenate([where, positions])
        if len(keep) > sample_size:
            chosen = np.lexsort((at, keep))[:sample_size]
            keep, at = keep[chosen], at[chosen]
        ranks, where = keep, at
    if n < K_MIN:
        raise InputError(f"Clustering needs at least {K_MIN} images; only {n} could be used.")
    return _pca(total, outer, n, np.sort(where))


def _pca(total: np.ndarray, outer: np.ndarray, n: int, sample: np.ndarray) -> Projection:
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
    return Projection(mean, kept, ratio, n, sample)


def sample_rows(store: Store, projection: Projection) -> list[Row]:
    """Pass 2: the sampled rows whole (thumbnails, sizes, hashes), in store order."""
    import json

    import pyarrow.parquet as pq

    rows: list[Row] = []
    start = 0
    for path in store.files:
        count = pq.read_metadata(path).num_rows
        sample = projection.sample
        wanted = sample[(sample >= start) & (sample < start + count)]
        if len(wanted):
            meta, _ = _check_part(path, pq)
            errors = json.loads(meta.get(META_ERRORS_I18N) or "{}")
            picked = pq.read_table(path).take(wanted - start)
            for batch in picked.to_batches():
                found, _ = _batch_rows(batch, path, 0, store.dim or None, errors, {})
                rows.extend(found)
        start += count
    return rows


def fit(projection: Projection, sample: np.ndarray, k_max: int, seed: int) -> Analysis:
    """K-means for each k on the sample's PCA coordinates (ids stable across k)."""
    coords = projection(sample)
    clusterings: dict[int, Clustering] = {}
    previous = None
    for k in range(K_MIN, min(k_max, len(coords)) + 1):
        clusterings[k] = kmeans(coords, k, seed, previous)
        previous = clusterings[k].labels
    distinct = len(np.unique(np.round(coords, 6), axis=0))
    return Analysis(
        coords, projection.explained_variance_ratio, clusterings, len(projection.mean), distinct, ()
    )


def assign(
    store: Store, projection: Projection, analysis: Analysis, target: Path | None
) -> dict[int, list[int]]:
    """Pass 3: every row's nearest centre and distance for each k; the sizes over all rows.
    Writes `target` (assignments.parquet) when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ks = sorted(analysis.clusterings)
    centers = {k: analysis.clusterings[k].centers for k in ks}
    sizes = {k: np.zeros(k, dtype=np.int64) for k in ks}
    writer = None
    try:
        for paths, vectors, valid in vector_batches(store):
            coords = projection(vectors[valid])
            kept_paths = [p for p, ok in zip(paths, valid, strict=True) if ok]
            columns: dict[str, Any] = {"path": kept_paths}
            for k in ks:
                labels, distances = _nearest(coords, centers[k])
                sizes[k] += np.bincount(labels, minlength=k)
                columns[f"cluster_k{k}"] = pa.array(labels.astype(np.int32))
                columns[f"distance_k{k}"] = pa.array(distances.astype(np.float32))
            if target is not None:
                table = pa.table(columns)
                writer = writer or pq.ParquetWriter(target, table.schema, compression="zstd")
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return {k: [int(s) for s in sizes[k]] for k in ks}


def _nearest(coords: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    squared = (
        (coords**2).sum(axis=1)[:, None] - 2 * coords @ centers.T + (centers**2).sum(axis=1)[None]
    )
    labels = np.argmin(squared, axis=1)
    distances = np.sqrt(np.clip(squared[np.arange(len(coords)), labels], 0, None))
    return labels, distances


def sampled_note(rows: int, shown: int) -> Message:
    return Message.of("note_sampled", rows=f"{rows:,}", shown=f"{shown:,}")


def build_sampled(
    store: Store, config: BuildConfig, site: Path, progress: Progress, labels: LabelSource | None
) -> tuple[dict[str, Any], int]:
    """The report and site of a store above SAMPLED_ROWS rows: the sample on the page, the
    aggregates over every row. Returns the report and the number of rows with an embedding."""
    from generator.exports import write_exports
    from generator.pipeline import collect_rows
    from generator.render import render_site
    from generator.store import _with_thumb

    with progress("Streaming the PCA", store.count()) as advance:
        projection = project(store)
        advance(store.count())
    size = config.thumb_size
    rows = [_with_thumb(r, config.images_root, size) for r in sample_rows(store, projection)]
    records, features, _ = collect_rows(rows, site)
    analysis = fit(projection, features, config.k_max, config.seed)
    analysis = replace(analysis, notes=(sampled_note(projection.rows, len(records)),))
    with progress("Assigning every row", store.count()) as advance:
        sizes = assign(store, projection, analysis, site / ASSIGNMENTS)
        advance(store.count())
    report = _report(store, config, records, features, analysis, labels)
    report["sampled"] = True
    report["rows"] = projection.rows
    report["skipped_rows"] = store.count() - projection.rows
    for k, counts in sizes.items():
        report["clusterings"][str(k)]["sizes_all"] = counts
    render_site(report, site, lang=config.lang)
    write_exports(site, report)
    return report, projection.rows


def _report(
    store: Store,
    config: BuildConfig,
    records: Any,
    features: np.ndarray,
    analysis: Analysis,
    labels: LabelSource | None,
) -> dict[str, Any]:
    from generator.analyse import compare_labels
    from generator.duplicates import find_similar
    from generator.labels import labels_for_store
    from generator.payload import ReportExtras, build_report

    comparison = None
    if labels is not None:
        labelling = labels_for_store(labels, [r.rel for r in records], store.prefixed)
        names = [labelling.by_rel[r.rel] for r in records]
        comparison = compare_labels(analysis, names)
    # the N² passes run on the sample only: its near-duplicates and similar images
    duplicates, neighbours = find_similar([r.digest for r in records], features)
    extras = ReportExtras(comparison, labels.name if labels else None, duplicates, neighbours)
    title = config.title or Message.of(config.title_key)
    info = store.model_info(int(features.shape[1]) if len(features) else None)
    return build_report(title, records, (), analysis, info, config.seed, extras, lang=config.lang)
