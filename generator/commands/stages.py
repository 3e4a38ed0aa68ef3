"""The one stage path every command takes: rows come from an engine (the images, decoded and
embedded) or from a store; they go to the sinks a command asks for (the site's thumbnails, a
store, sorted folders); then the analysis and the report. `build`, `build --embeddings`, `sort`
and `embed` call these with what differs; each message and check below is written once."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.analysis.analyse import Analysis, compare_labels, prefetch_analysis
from generator.analysis.cached import cached_analysis
from generator.analysis.duplicates import find_similar
from generator.config import K_MIN, BuildConfig
from generator.engines.local import EmbedOptions, LocalEngine
from generator.errors import InputError, OutputError, written_in
from generator.i18n import Message
from generator.ingest.discover import Discovery, discover, no_images
from generator.ingest.imaging import THUMB_FORMAT
from generator.ingest.labels import Labelling
from generator.model.embed import plan_embedder
from generator.site.payload import ImageRecord, ReportExtras
from generator.site.sitedir import check_output, discard, open_staging, staging_exclusions
from generator.storage.cache import EmbeddingCache
from generator.storage.store import Store, read_rows
from generator.types import (
    Embedder,
    ModelInfo,
    Progress,
    Row,
    SkippedImage,
    SourceImage,
    no_progress,
)

log = logging.getLogger(__name__)

HASHED_NAME = re.compile(r"[0-9a-f]{64}")  # a thumbnail's name: the first 20 of these


@dataclass(frozen=True)
class Embedded:
    records: tuple[ImageRecord, ...]
    features: np.ndarray
    skipped: tuple[SkippedImage, ...]
    info: ModelInfo
    embedded: int  # how many images went through the model (the rest came from the cache)
    prefixed: bool = False  # paths start with their input folder's name (several inputs)
    sizes: tuple[int, int] = (0, 0)  # the thumbnail and preview sizes the images were decoded for


# --- source: which images --------------------------------------------------------------------


def find_images(inputs: Sequence[Path], exclude: Sequence[Path]) -> Discovery:
    """The inputs' images; none at all is an error that says where it looked and for what."""
    found = discover(inputs, exclude=exclude)
    if not found.images:
        raise no_images(inputs, found)
    log.info("found %d images", len(found.images))
    return found


def discover_images(config: BuildConfig) -> Discovery:
    """The inputs' images, after checking that the output may be written (before any work)."""
    check_output(config.output, config.inputs)
    return find_images(config.inputs, [*staging_exclusions(config.output), *config.extra_excludes])


def check_enough(n: int, skipped: tuple[SkippedImage, ...]) -> None:
    """K-means needs two images; the remedy names the skipped files only when there are some."""
    if n >= K_MIN:
        return
    found = f"only {n} could be used" if n else "none could be used"
    if skipped:
        files = "file" if len(skipped) == 1 else f"{len(skipped)} files"
        remedy = f"Add more images, or fix the skipped {files} named above."
    else:
        remedy = "Add more images to the input."
    raise InputError(f"Clustering needs at least {K_MIN} images; {found}. {remedy}")


def check_skipped(
    strict: bool, skipped: tuple[SkippedImage, ...], command: str = "build", kept: str = ""
) -> tuple[SkippedImage, ...]:
    """The files that could not be used; under --strict, any of them stops the command (`kept`:
    what the message adds about the output left as it was)."""
    if strict and skipped:
        raise InputError(
            f"--strict: {len(skipped)} file(s) could not be used, first {skipped[0].rel}: "
            f"{skipped[0].reason}. Fix or remove them, or {command} without --strict.{kept}"
        )
    return skipped


# --- the run: its model, cache and staging folder -------------------------------------------


@dataclass(frozen=True)
class Run:
    embedder: Embedder | None  # None: the rows come from a store
    cache: EmbeddingCache | None
    staging: Path  # the output being made, swapped in only when complete


@contextmanager
def open_run(config: BuildConfig, embedder: Embedder | None, model: bool = True) -> Iterator[Run]:
    """What a command holds while it works, released whatever happens: the model the options
    name (loaded only if an image is not in the cache; `model` False: none), the cache, and a
    staging folder beside the output, removed unless the command published it."""
    with ExitStack() as stack:
        if embedder is None and model:
            lazy = plan_embedder(config.model, config.cache_dir, prefetch_analysis)
            stack.callback(lazy.close)  # the loader thread and its decoders shut down
            embedder = lazy
        cache = None
        if config.cache_dir:
            cache = stack.enter_context(closing(EmbeddingCache(config.cache_dir)))
        staging = open_staging(config.output)
        stack.callback(discard, staging)  # a no-op once published: the folder has moved
        stack.enter_context(written_in(staging))  # before the discard: while the disk is full
        yield Run(embedder, cache, staging)


# --- rows: from an engine or a store, into the site's files --------------------------------


def embed_images(
    images: Sequence[SourceImage],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    site: Path | None,
    config: BuildConfig,
    progress: Progress,
) -> Embedded:
    """Features (and, with a `site`, thumbnails) for every image, by the local engine: cache
    first, then decoded in worker processes while the model embeds full batches."""
    options = EmbedOptions(
        config.thumb_size,
        config.batch_size,
        config.preview_size,
        config.workers,
        config.max_file_size,
    )
    engine = LocalEngine(embedder, cache, options)
    with closing(engine.run(images, progress)) as rows:
        records, features, skipped = collect_rows(rows, site)
    prefixed = len(config.inputs) > 1
    sizes = (config.thumb_size, config.preview_size)
    return Embedded(records, features, skipped, embedder.info, engine.embedded, prefixed, sizes)


def from_store(
    store: Store, config: BuildConfig, site: Path, progress: Progress = no_progress
) -> Embedded:
    """The rows of a Parquet store instead of the engine's: no model, no originals (unless
    --images-root is given for thumbnails the store lacks)."""
    rows = read_rows(store, config.images_root, config.thumb_size, config.preview_size > 0)
    with closing(rows), progress("Reading embeddings", store.count()) as advance:
        records, features, skipped = collect_rows(counted(rows, advance), site)
    dim = int(features.shape[1]) if len(records) else store.dim
    log.info("read %d embeddings (D = %d) from %s", len(records), dim, config.embeddings)
    info, sizes = store.model_info(dim), (store.thumb_size or 0, store.preview_size)
    return Embedded(records, features, skipped, info, 0, store.prefixed, sizes)


def counted(rows: Iterable[Row], advance: Callable[[int], None], step: int = 500) -> Iterator[Row]:
    """Pass rows on, advancing the progress bar every `step` rows (a bar redraw is not free)."""
    n = 0
    for row in rows:
        n += 1
        if n == step:
            advance(n)
            n = 0
        yield row
    advance(n)


def collect_rows(
    rows: Iterable[Row], site: Path | None
) -> tuple[tuple[ImageRecord, ...], np.ndarray, tuple[SkippedImage, ...]]:
    """The rows' sink for a site: thumbnails go straight to disk as rows stream by (none without
    a `site`: `sort` writes folders, not pages), vectors are stacked in row order, skipped rows
    are listed."""
    if site is not None:
        (site / "thumbs").mkdir(exist_ok=True)
    records: list[ImageRecord] = []
    vectors: list[np.ndarray] = []
    skipped: list[SkippedImage] = []
    for row in rows:
        if row.vector is None:
            skipped.append(SkippedImage(row.rel, row.error or Message.of("skip_corrupt", error="")))
            continue
        records.append(save_thumb(site, row))
        vectors.append(row.vector)
    features = (
        np.stack(vectors).astype(np.float32, copy=False)
        if vectors
        else np.empty((0, 0), dtype=np.float32)
    )
    return tuple(records), features, tuple(skipped)


def save_thumb(site: Path | None, row: Row) -> ImageRecord:
    """Thumbnails are named by content hash: no file name leaks, duplicates share one file. A row
    without a hash (another tool's Parquet) is named by a hash of its path."""
    key = row.sha256 or hashlib.sha256(f"path:{row.rel}".encode()).hexdigest()
    if not HASHED_NAME.fullmatch(key):  # store.py checks it where it enters; a name it is not
        raise OutputError(f"{key!r} is not a content hash; nothing is written by that name.")
    rel = f"thumbs/{key[:20]}.{THUMB_FORMAT}"
    if site is not None and not (site / rel).exists():
        (site / rel).write_bytes(row.thumb or b"")
    size = row.size or (0, 0)
    preview = None
    if row.preview:  # the preview dialog's larger image (--preview-size), named the same way
        preview = f"previews/{key[:20]}.{THUMB_FORMAT}"
        if site is not None and not (site / preview).exists():
            (site / "previews").mkdir(exist_ok=True)  # only where some image has a preview
            (site / preview).write_bytes(row.preview)
    preview_size = row.preview_size if preview else None
    return ImageRecord(
        row.rel, rel, row.thumb_size or (0, 0), size, row.sha256 or "", preview, preview_size
    )


# --- analysis: what every report holds ------------------------------------------------------


def report_extras(
    records: Sequence[ImageRecord],
    features: np.ndarray,
    analysis: Analysis,
    labelling: Labelling | None,
) -> ReportExtras:
    """What the report adds to PCA and K-means: the known labels against the clusters,
    near-duplicates and each image's most similar images."""
    comparison = None
    if labelling is not None:
        comparison = compare_labels(analysis, [labelling.by_rel[r.rel] for r in records])
    duplicates, neighbours = find_similar([r.digest for r in records], features)
    source = labelling.name if labelling else None
    notes = labelling.notes() if labelling else ()
    return ReportExtras(comparison, source, duplicates, neighbours, notes=notes)


def analyse_all(
    embedded: Embedded,
    config: BuildConfig,
    labelling: Labelling | None,
    cache: EmbeddingCache | None = None,
) -> tuple[Analysis, ReportExtras]:
    """PCA and K-means (from the cache when nothing changed), then the report's extras."""
    analysis = cached_analysis(embedded.features, config, cache)
    return analysis, report_extras(embedded.records, embedded.features, analysis, labelling)
