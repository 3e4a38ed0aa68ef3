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
from typing import Protocol

import numpy as np

from generator.analysis.analyse import Analysis, compare_labels, prefetch_analysis
from generator.analysis.duplicates import find_similar
from generator.config import K_MIN, BuildConfig, EmbedConfig
from generator.engines.local import LocalEngine
from generator.engines.runner import EmbedOptions, Engine
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


# --- the one path: rows from a source (an engine or a store) into the command's sinks -------


class Source(Protocol):
    """Where rows come from: the images, decoded and embedded by an engine, or a store."""

    def rows(self, progress: Progress) -> Iterator[Row]: ...


@dataclass(frozen=True)
class EngineSource:
    """The images, through an engine (local or Ray): its rows in input order."""

    engine: Engine
    images: Sequence[SourceImage]

    def rows(self, progress: Progress) -> Iterator[Row]:
        return self.engine.run(self.images, progress)


@dataclass(frozen=True)
class StoreSource:
    """A Parquet store's rows instead of the engine's: no model, no originals (unless
    `images_root` is given for thumbnails the store lacks)."""

    store: Store
    images_root: Path | None
    thumb_size: int
    previews: bool

    def rows(self, progress: Progress) -> Iterator[Row]:
        rows = read_rows(self.store, self.images_root, self.thumb_size, self.previews)
        with closing(rows), progress("Reading embeddings", self.store.count()) as advance:
            yield from counted(rows, advance)


class Sink(Protocol):
    """Where rows go as they stream by: the site's files, a store, or only memory."""

    def add(self, row: Row) -> None: ...


def pour(source: Source, progress: Progress, *sinks: Sink) -> None:
    """The one loop every command runs: each row, in order, to each sink. Closing the source
    (here, whatever ends the loop) stops the engine's decoders or the store's reader."""
    with closing(source.rows(progress)) as rows:  # type: ignore[type-var]  # a generator
        for row in rows:
            for sink in sinks:
                sink.add(row)


class SiteRows:
    """The rows' sink for a site: thumbnails go straight to disk as rows stream by (none without
    a `site`: `sort` writes folders, not pages), vectors are stacked in row order, skipped rows
    are listed."""

    def __init__(self, site: Path | None) -> None:
        self.site = site
        if site is not None:
            (site / "thumbs").mkdir(exist_ok=True)
        self.records: list[ImageRecord] = []
        self.vectors: list[np.ndarray] = []
        self.skipped: list[SkippedImage] = []

    def add(self, row: Row) -> None:
        if row.vector is None:
            self.skipped.append(
                SkippedImage(row.rel, row.error or Message.of("skip_corrupt", error=""))
            )
            return
        self.records.append(save_thumb(self.site, row))
        self.vectors.append(row.vector)

    def stacked(self) -> np.ndarray:
        if not self.vectors:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack(self.vectors).astype(np.float32, copy=False)

    def embedded(self, info: ModelInfo, embedded: int, sizes: tuple[int, int]) -> Embedded:
        records, skipped = tuple(self.records), tuple(self.skipped)
        return Embedded(records, self.stacked(), skipped, info, embedded, sizes)


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
    engine = LocalEngine(embedder, cache, embed_options(config))
    sink = SiteRows(site)
    pour(EngineSource(engine, images), progress, sink)
    sizes = (config.thumb_size, config.preview_size)
    return sink.embedded(embedder.info, engine.embedded, sizes)


def embed_options(config: BuildConfig | EmbedConfig, workers: bool = True) -> EmbedOptions:
    """What the engine needs from a command's options (`workers` False: Ray's actors decide)."""
    return EmbedOptions(
        config.thumb_size,
        config.batch_size,
        config.preview_size,
        config.workers if workers else None,
        config.max_file_size,
    )


def from_store(store: Store, config: BuildConfig, site: Path, progress: Progress) -> Embedded:
    """The rows of a Parquet store, into the site as the engine's would go."""
    sink = SiteRows(site)
    source = StoreSource(store, config.images_root, config.thumb_size, config.preview_size > 0)
    pour(source, progress, sink)
    dim = len(sink.vectors[0]) if sink.vectors else store.dim
    log.info("read %d embeddings (D = %d) from %s", len(sink.records), dim, config.embeddings)
    sizes = (store.thumb_size or 0, store.preview_size)
    return sink.embedded(store.model_info(dim), 0, sizes)


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
