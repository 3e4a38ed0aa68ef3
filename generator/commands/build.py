"""The build, stage by stage: discover → decode → embed → analyse → render.

`build_site` is the library's entry point; the CLI only fills in a BuildConfig and shows progress.
Each stage is its own module and can be tested alone (e.g. with a fake embedder). The embed
stage's rows come from the local engine (engines/local.py) or, with `--embeddings`, from a
Parquet store (store.py); the site's sink (`SiteRows`) takes either the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from generator.analysis import streamed
from generator.analysis.analyse import Analysis
from generator.analysis.cached import cached_analysis
from generator.analysis.streamed import assign, fit, logged, project, sample_rows
from generator.commands.stages import (
    Embedded,
    SiteRows,
    check_enough,
    check_skipped,
    discover_images,
    embed_images,
    from_store,
    open_run,
    report_extras,
)
from generator.config import BuildConfig, option_error
from generator.i18n import Message
from generator.ingest.discover import Discovery, unsupported_notes
from generator.ingest.labels import (
    Labelling,
    LabelSource,
    assign_labels,
    labels_for_store,
    read_labels,
)
from generator.report import Report
from generator.site.exports import ASSIGNMENTS, write_arrays, write_assignments, write_exports
from generator.site.payload import ReportExtras, SampledTotals, build_report
from generator.site.query import QueryModel, add_query, check_same_model
from generator.site.render import render_site
from generator.site.sitedir import carry_foreign, check_output, publish, record_written
from generator.storage.cache import EmbeddingCache
from generator.storage.store import Store, _with_thumb, open_store
from generator.types import (
    PHASE_LOGGER,
    Alias,
    Embedder,
    ModelInfo,
    Progress,
    SkippedImage,
    no_progress,
)

log = logging.getLogger(__name__)
phase = logging.getLogger(PHASE_LOGGER)


Finish = Callable[[Report, Path], Report]  # (report, staged site) → report


@dataclass(frozen=True)
class BuildResult:
    output: Path
    images: int
    skipped: tuple[SkippedImage, ...]
    seconds: float
    typed_report: Report
    embedded: int  # images that went through the model; 0 when all came from the cache
    aliases: tuple[Alias, ...] = ()  # further paths to images already included
    unsupported: tuple[tuple[str, int], ...] = ()  # files not read, by extension (".svg", 53)

    @cached_property
    def report(self) -> dict[str, Any]:
        """The report as report.json holds it: plain JSON data (the Python API promises it)."""
        return self.typed_report.to_json()


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
    store, found, labelling, sampled = None, None, None, False
    if config.embeddings is not None:
        check_output(config.output, (config.embeddings,))
        store = open_store(config.embeddings)  # checked before anything is written
        rows = store.count()  # every part's footer read: once
        sampled = rows > streamed.SAMPLED_ROWS
        if config.export_embeddings and sampled:
            raise option_error(
                "{export_embeddings}: {store} holds {rows} rows, more than the {most} a build "
                "holds in memory, so the page shows a sample. Their vectors are in its Parquet "
                "files already (the embedding column), and each row's clusters go to "
                "assignments.parquet: build without {export_embeddings}.",
                store=config.embeddings,
                rows=f"{rows:,}",
                most=f"{streamed.SAMPLED_ROWS:,}",
            )
        if config.query:  # the store's model must be the one the page gets: said before work
            check_same_model(_query_model(config, store.model_info(store.dim), (0, 0)))
    else:
        found = discover_images(config)
        if config.labels:
            labelling = assign_labels(read_labels(config.labels), found)
    with open_run(config, embedder, model=found is not None) as run:
        if store is not None and sampled:
            source = read_labels(config.labels) if config.labels else None
            report, images = build_sampled(store, config, run.staging, progress, source)
            report = _publish(config, run.staging, report, finish)
            return BuildResult(config.output, images, (), time.perf_counter() - start, report, 0)
        if store is not None:
            embedded = from_store(store, config, run.staging, progress)
            if config.labels:  # assigned from the store's paths, once they are read
                rels = [r.rel for r in embedded.records]
                labelling = labels_for_store(
                    read_labels(config.labels), rels, store.prefixed, store.prefixes
                )
        else:  # images: discovered above, the model planned by open_run
            embedded = embed_images(
                found.images, run.embedder, run.cache, run.staging, config, progress
            )
            embedded = replace(embedded, skipped=found.skipped + embedded.skipped)
        report = _report(embedded, config, labelling, run.cache, run.staging, found)
        report = _publish(config, run.staging, report, finish)
    walked = found or Discovery((), ())  # a store: no aliases, no files left unread
    return BuildResult(
        config.output,
        len(embedded.records),
        embedded.skipped,
        time.perf_counter() - start,
        report,
        embedded.embedded,
        walked.aliases,
        walked.unsupported,
    )


def _publish(config: BuildConfig, staging: Path, report: Any, finish: Finish | None) -> Any:
    """Carry over what someone added to the old site, let `finish` have the staged site (the zip
    or the size budget), record what the build wrote, and swap the site in."""
    carried = carry_foreign(config.output, staging)  # before the zip or size budget sees it
    if finish is not None:
        report = finish(report, staging)
    record_written(staging, carried, config.output)
    publish(staging, config.output)
    return report


def _report(
    embedded: Embedded,
    config: BuildConfig,
    labelling: Labelling | None,
    cache: EmbeddingCache | None,
    staging: Path,
    found: Discovery | None = None,
) -> Report:
    """Analyse, then write the report and the site into `staging`. `found`: what the walk met
    (None for a store), for the page's aliases and its notes on the files it could not read."""
    check_skipped(config.strict, embedded.skipped)
    check_enough(len(embedded.records), embedded.skipped)
    analysis = cached_analysis(embedded.features, config, cache)  # PCA and K-means, or the cache's
    extras = report_extras(embedded.records, embedded.features, analysis, labelling)
    if found is not None:
        notes = (*extras.notes, *unsupported_notes(found.unsupported))
        extras = replace(extras, aliases=found.aliases, notes=notes)
    phase.info("writing site…")
    report = write_site(config, staging, embedded, analysis, extras)
    paths = [record.rel for record in embedded.records]
    write_assignments(staging / ASSIGNMENTS, paths, analysis)
    if config.export_embeddings:
        write_arrays(staging, embedded.features, analysis.coords)
    return report


def write_site(
    config: BuildConfig,
    site: Path,
    embedded: Embedded,
    analysis: Analysis,
    extras: ReportExtras,
    sampled: SampledTotals | None = None,
) -> Report:
    """The one place a build writes its site: the report, with what the options decide (the
    title, the seed, the language, the points), the page and its data, the exports and, with
    --query, the query files, which report.json names."""
    title = config.title or Message.of(config.title_key)
    report = build_report(
        title,
        embedded.records,
        embedded.skipped,
        analysis,
        embedded.info,
        config.seed,
        extras,
        lang=config.lang,
        display_points=config.display_points,
        sampled=sampled,
    )
    if config.query:
        phase.info("writing the model and the vectors for --query…")
        query = _query_model(config, embedded.info, embedded.sizes)
        report = add_query(report, site, embedded.features, analysis, query)
    render_site(report, site, lang=config.lang)
    write_exports(site, report)
    return report


def _query_model(config: BuildConfig, info: ModelInfo, sizes: tuple[int, int]) -> QueryModel:
    """--query's model: the options' weights, which must be those that made the vectors
    (`info`), decoding as they were decoded (`sizes`: thumbnail and preview sizes)."""
    return QueryModel(info, config.weights, config.seed, config.cache_dir, sizes)


def build_sampled(
    store: Store, config: BuildConfig, site: Path, progress: Progress, labels: LabelSource | None
) -> tuple[Report, int]:
    """The report and site of a store above SAMPLED_ROWS rows: the sample on the page, the
    aggregates over every row. Returns the report and the number of rows with an embedding."""
    progress = logged(progress)
    total = store.count()
    with progress("Streaming the PCA", total) as advance:
        projection = project(store, advance=advance)
    log.info("PCA of %d rows; %d sampled rows", projection.rows, len(projection.sample))
    phase.info("reading the sample's %d rows…", len(projection.sample))
    sink = SiteRows(site)
    for row in sample_rows(store, projection):
        sink.add(_with_thumb(row, config.images_root, config.thumb_size, config.preview_size > 0))
    records, features = tuple(sink.records), sink.stacked()
    phase.info("clustering the sample, k = 2…%d…", min(config.k_max, len(records)))
    analysis = fit(projection, features, config.k_max, config.seed)
    sampled = Message.of("note_sampled", rows=f"{projection.rows:,}", shown=f"{len(records):,}")
    analysis = replace(analysis, notes=(sampled, *analysis.notes))
    with progress("Assigning every row", total) as advance:
        cluster_sizes = assign(store, projection, analysis, site / ASSIGNMENTS, advance)
    phase.info("similar images in the sample, report…")
    labelling = None
    if labels is not None:
        rels = [r.rel for r in records]
        labelling = labels_for_store(labels, rels, store.prefixed, store.prefixes)
    # the N² passes run on the sample only: its near-duplicates and similar images
    extras = report_extras(records, features, analysis, labelling)
    info = store.model_info(int(features.shape[1]) if len(features) else None)
    totals = SampledTotals(projection.rows, total - projection.rows, cluster_sizes)
    decoded = (store.thumb_size or 0, store.preview_size)  # the store's thumbnail, preview
    sample = Embedded(records, features, (), info, 0, decoded)
    report = write_site(config, site, sample, analysis, extras, totals)
    return report, projection.rows
