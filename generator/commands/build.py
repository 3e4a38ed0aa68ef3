"""The build, stage by stage: discover → decode → embed → analyse → render.

`build_site` is the library's entry point; the CLI only fills in a BuildConfig and shows progress.
Each stage is its own module and can be tested alone (e.g. with a fake embedder). The embed
stage's rows come from the local engine (engines/local.py) or, with `--embeddings`, from a
Parquet store (store.py); the site stage (`collect_rows`) reads either the same way.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from generator.analysis import streamed
from generator.analysis.analyse import Analysis, compare_labels, prefetch_analysis
from generator.analysis.cached import cached_analysis
from generator.analysis.duplicates import find_similar
from generator.analysis.streamed import assign, fit, logged, project, sample_rows
from generator.config import K_MIN, BuildConfig
from generator.engines.local import EmbedOptions, LocalEngine
from generator.errors import InputError, written_in
from generator.i18n import Message
from generator.ingest.discover import Discovery, discover, no_images
from generator.ingest.imaging import THUMB_FORMAT
from generator.ingest.labels import (
    Labelling,
    LabelSource,
    assign_labels,
    labels_for_store,
    read_labels,
)
from generator.model.embed import plan_embedder
from generator.site.exports import ASSIGNMENTS, write_arrays, write_assignments, write_exports
from generator.site.payload import ImageRecord, ReportExtras, build_report
from generator.site.render import render_site
from generator.site.sitedir import (
    carry_foreign,
    check_output,
    discard,
    open_staging,
    publish,
    record_written,
    staging_exclusions,
)
from generator.storage.cache import EmbeddingCache
from generator.storage.store import Store, _with_thumb, open_store, read_rows
from generator.types import (
    PHASE_LOGGER,
    Alias,
    Embedder,
    ModelInfo,
    Progress,
    Row,
    SkippedImage,
    SourceImage,
    no_progress,
)

log = logging.getLogger(__name__)
phase = logging.getLogger(PHASE_LOGGER)


Finish = Callable[[dict[str, Any], Path], dict[str, Any]]  # (report, staged site) → report


@dataclass(frozen=True)
class BuildResult:
    output: Path
    images: int
    skipped: tuple[SkippedImage, ...]
    seconds: float
    report: dict[str, Any]
    embedded: int  # images that went through the model; 0 when all came from the cache
    aliases: tuple[Alias, ...] = ()  # further paths to images already included


@dataclass(frozen=True)
class Embedded:
    records: tuple[ImageRecord, ...]
    features: np.ndarray
    skipped: tuple[SkippedImage, ...]
    info: ModelInfo
    embedded: int  # how many images went through the model (the rest came from the cache)
    prefixed: bool = False  # paths start with their input folder's name (several inputs)


def build_site(
    config: BuildConfig,
    progress: Progress = no_progress,
    embedder: Embedder | None = None,
    finish: Finish | None = None,
) -> BuildResult:
    """Build the site for `config`; raises GeneratorError subclasses with actionable messages.

    `finish` is a last step on the complete staged site before it is published (deliver.py fits
    the size budget there), so a failure in it leaves the previous site untouched.
    """
    start = time.perf_counter()
    if config.embeddings is not None:
        check_output(config.output, (config.embeddings,))
        store, found = open_store(config.embeddings), None  # checked before anything is written
        labelling = None  # assigned from the store's paths, once they are read
    else:
        found = discover_images(config)
        store, labelling = (
            None,
            assign_labels(read_labels(config.labels), found) if config.labels else None,
        )
    with ExitStack() as stack:  # whatever happens: cache closed, loader and decoders shut down
        if embedder is None and found is not None:
            embedder = plan_embedder(config.model, config.cache_dir, prefetch_analysis)
            stack.callback(embedder.close)
        cache = None
        if config.cache_dir:
            cache = stack.enter_context(closing(EmbeddingCache(config.cache_dir)))
        staging = open_staging(config.output)
        stack.callback(discard, staging)  # a no-op once published: the folder has moved
        stack.enter_context(written_in(staging))  # before the discard: while the disk is full
        if store is not None and store.count() > streamed.SAMPLED_ROWS:
            source = read_labels(config.labels) if config.labels else None
            report, images = build_sampled(store, config, staging, progress, source)
            carried = carry_foreign(config.output, staging)
            if finish is not None:
                report = finish(report, staging)
            record_written(staging, carried)
            publish(staging, config.output)
            seconds = time.perf_counter() - start
            return BuildResult(config.output, images, (), seconds, report, 0)
        if store is not None:
            embedded = from_store(store, config, staging, progress)
            skipped = embedded.skipped
            if config.labels:
                rels = [r.rel for r in embedded.records]
                labelling = labels_for_store(read_labels(config.labels), rels, embedded.prefixed)
        else:  # images: discovered above, embedder planned above
            embedded = embed_images(found.images, embedder, cache, staging, config, progress)
            skipped = found.skipped + embedded.skipped
        aliases = found.aliases if found is not None else ()
        report = _report(embedded, skipped, config, labelling, cache, staging, aliases)
        carried = carry_foreign(config.output, staging)  # before the zip or size budget sees it
        if finish is not None:
            report = finish(report, staging)
        record_written(staging, carried)
        publish(staging, config.output)
    seconds = time.perf_counter() - start
    return BuildResult(
        config.output, len(embedded.records), skipped, seconds, report, embedded.embedded, aliases
    )


def discover_images(config: BuildConfig) -> Discovery:
    """The inputs' images, after checking that the output may be written (before any work)."""
    check_output(config.output, config.inputs)
    exclude = [*staging_exclusions(config.output), *config.extra_excludes]
    found = discover(config.inputs, exclude=exclude)
    if not found.images:
        raise no_images(config.inputs, found)
    log.info("found %d images", len(found.images))
    return found


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
    config: BuildConfig, skipped: tuple[SkippedImage, ...]
) -> tuple[SkippedImage, ...]:
    """The files that could not be used; under --strict, any of them stops the build."""
    if config.strict and skipped:
        raise InputError(
            f"--strict: {len(skipped)} file(s) could not be used, first {skipped[0].rel}: "
            f"{skipped[0].reason}. Fix or remove them, or build without --strict."
        )
    return skipped


def from_store(
    store: Store, config: BuildConfig, site: Path, progress: Progress = no_progress
) -> Embedded:
    """The site stage reading a Parquet store instead of the engine: no model, no originals
    (unless --images-root is given for thumbnails the store lacks)."""
    rows = read_rows(store, config.images_root, config.thumb_size, config.preview_size > 0)
    with closing(rows), progress("Reading embeddings", store.count()) as advance:
        records, features, skipped = collect_rows(_counted(rows, advance), site)
    dim = int(features.shape[1]) if len(records) else store.dim
    log.info("read %d embeddings (D = %d) from %s", len(records), dim, config.embeddings)
    return Embedded(records, features, skipped, store.model_info(dim), 0, store.prefixed)


def _counted(rows: Iterable[Row], advance: Callable[[int], None], step: int = 500) -> Iterator[Row]:
    """Pass rows on, advancing the progress bar every `step` rows (a bar redraw is not free)."""
    n = 0
    for row in rows:
        n += 1
        if n == step:
            advance(n)
            n = 0
        yield row
    advance(n)


def _report(
    embedded: Embedded,
    skipped: tuple[SkippedImage, ...],
    config: BuildConfig,
    labelling: Labelling | None,
    cache: EmbeddingCache | None,
    staging: Path,
    aliases: tuple[Alias, ...] = (),
) -> dict[str, Any]:
    """Analyse, then write the report and the site into `staging`."""
    check_skipped(config, skipped)
    check_enough(len(embedded.records), skipped)
    analysis, extras = analyse_all(embedded, config, labelling, cache)
    extras = replace(extras, aliases=aliases)
    title = config.title or Message.of(config.title_key)
    report = build_report(
        title,
        embedded.records,
        skipped,
        analysis,
        embedded.info,
        config.seed,
        extras,
        lang=config.lang,
        display_points=config.display_points,
    )
    phase.info("writing site…")
    render_site(report, staging, lang=config.lang)
    write_exports(staging, report)
    paths = [record.rel for record in embedded.records]
    write_assignments(staging / ASSIGNMENTS, paths, analysis)
    if config.export_embeddings:
        write_arrays(staging, embedded.features, analysis.coords)
    return report


def analyse_all(
    embedded: Embedded,
    config: BuildConfig,
    labelling: Labelling | None,
    cache: EmbeddingCache | None = None,
) -> tuple[Analysis, ReportExtras]:
    """PCA and K-means (from the cache when nothing changed), then what the report adds: known
    labels, duplicates and each image's most similar images."""
    analysis = cached_analysis(embedded.features, config, cache)
    comparison = None
    if labelling is not None:
        names = [labelling.by_rel[r.rel] for r in embedded.records]
        comparison = compare_labels(analysis, names)
    digests = [r.digest for r in embedded.records]
    duplicates, neighbours = find_similar(digests, embedded.features)
    source = labelling.name if labelling else None
    notes = labelling.notes() if labelling else ()
    return analysis, ReportExtras(comparison, source, duplicates, neighbours, notes=notes)


def embed_images(
    images: Sequence[SourceImage],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    site: Path,
    config: BuildConfig,
    progress: Progress,
) -> Embedded:
    """Features and thumbnails for every image, by the local engine (cache first, then decoded
    in worker processes while the model embeds full batches); the site stage writes thumbnails."""
    options = EmbedOptions(
        config.thumb_size, config.batch_size, config.preview_size, config.workers
    )
    engine = LocalEngine(embedder, cache, options)
    with closing(engine.run(images, progress)) as rows:
        records, features, skipped = collect_rows(rows, site)
    prefixed = len(config.inputs) > 1
    return Embedded(records, features, skipped, embedder.info, engine.embedded, prefixed)


def collect_rows(
    rows: Iterable[Row], site: Path
) -> tuple[tuple[ImageRecord, ...], np.ndarray, tuple[SkippedImage, ...]]:
    """The site stage's reader: thumbnails go straight to disk as rows stream by, vectors are
    stacked in row order, skipped rows are listed."""
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


def save_thumb(site: Path, row: Row) -> ImageRecord:
    """Thumbnails are named by content hash: no file name leaks, duplicates share one file. A row
    without a hash (another tool's Parquet) is named by a hash of its path."""
    key = row.sha256 or hashlib.sha256(f"path:{row.rel}".encode()).hexdigest()
    rel = f"thumbs/{key[:20]}.{THUMB_FORMAT}"
    target = site / rel
    if not target.exists():
        target.write_bytes(row.thumb or b"")
    size = row.size or (0, 0)
    preview = None
    if row.preview:  # the preview dialog's larger image (--preview-size), named the same way
        preview = f"previews/{key[:20]}.{THUMB_FORMAT}"
        if not (site / preview).exists():
            (site / "previews").mkdir(exist_ok=True)  # only where some image has a preview
            (site / preview).write_bytes(row.preview)
    preview_size = row.preview_size if preview else None
    return ImageRecord(
        row.rel, rel, row.thumb_size or (0, 0), size, row.sha256 or "", preview, preview_size
    )


def sampled_note(rows: int, shown: int) -> Message:
    return Message.of("note_sampled", rows=f"{rows:,}", shown=f"{shown:,}")


def build_sampled(
    store: Store, config: BuildConfig, site: Path, progress: Progress, labels: LabelSource | None
) -> tuple[dict[str, Any], int]:
    """The report and site of a store above SAMPLED_ROWS rows: the sample on the page, the
    aggregates over every row. Returns the report and the number of rows with an embedding."""

    progress = logged(progress)
    total = store.count()
    with progress("Streaming the PCA", total) as advance:
        projection = project(store, advance=advance)
    log.info("PCA of %d rows; %d sampled rows", projection.rows, len(projection.sample))
    phase.info("reading the sample's %d rows…", len(projection.sample))
    size, previews = config.thumb_size, config.preview_size > 0
    rows = [
        _with_thumb(r, config.images_root, size, previews) for r in sample_rows(store, projection)
    ]
    records, features, _ = collect_rows(rows, site)
    phase.info("clustering the sample, k = 2…%d…", min(config.k_max, len(records)))
    analysis = fit(projection, features, config.k_max, config.seed)
    analysis = replace(analysis, notes=(sampled_note(projection.rows, len(records)),))
    with progress("Assigning every row", total) as advance:
        sizes = assign(store, projection, analysis, site / ASSIGNMENTS, advance)
    phase.info("similar images in the sample, report…")
    report = _sampled_report(store, config, records, features, analysis, labels)
    report["sampled"] = True
    report["rows"] = projection.rows
    report["skipped_rows"] = total - projection.rows
    for k, counts in sizes.items():
        report["clusterings"][str(k)]["sizes_all"] = counts
    render_site(report, site, lang=config.lang)
    write_exports(site, report)
    return report, projection.rows


def _sampled_report(
    store: Store,
    config: BuildConfig,
    records: Any,
    features: np.ndarray,
    analysis: Analysis,
    labels: LabelSource | None,
) -> dict[str, Any]:

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
    return build_report(
        title,
        records,
        (),
        analysis,
        info,
        config.seed,
        extras,
        lang=config.lang,
        display_points=config.display_points,
    )
