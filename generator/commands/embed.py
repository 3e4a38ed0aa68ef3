"""`dinoclust embed`: images in, a Parquet store of their embeddings out (no analysis, no site).

The same discovery, decoder, model, cache and local engine as `build`; the rows go to the store
writer instead of the site. A rerun makes the store match the inputs: rows of unchanged files
(same path and content hash) are kept without decoding or embedding, new and changed files are
embedded, rows of files no longer found are dropped, and nothing is duplicated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from generator.analysis.streamed import logged
from generator.commands.stages import EngineSource, check_skipped, embed_options, find_images, pour
from generator.config import EmbedConfig
from generator.engines.local import LocalEngine
from generator.engines.runner import EmbedOptions, Engine, Known
from generator.errors import GeneratorError, InputError, OutputError, room_for
from generator.ingest.discover import Discovery, folder_prefixes
from generator.ingest.manifest import read_manifest
from generator.model.embed import plan_embedder
from generator.site.sitedir import output_lock
from generator.storage.cache import EmbeddingCache
from generator.storage.store import (
    META_BACKEND,
    META_DECODER,
    META_MODEL,
    META_PRECISION,
    META_PREPROCESS,
    META_PREVIEW_SIZE,
    META_THUMB_SIZE,
    META_WEIGHTS_ID,
    PART_GLOB,
    StoredRows,
    StoreWriter,
    check_store_dir,
    model_metadata,
    open_store,
    unfinished_parts,
)
from generator.types import Embedder, Progress, Row, SkippedImage, no_progress

log = logging.getLogger(__name__)

MATCHING = (
    META_MODEL,
    META_WEIGHTS_ID,
    META_PRECISION,
    META_BACKEND,  # torch and OpenVINO agree to cosine 0.999, not exactly: one store, one backend
    META_PREPROCESS,
    META_THUMB_SIZE,
    META_PREVIEW_SIZE,  # a decode for previews keeps more pixels: the vectors differ a little
    META_DECODER,  # a new imaging.py or Pillow decodes a little differently, as for the cache
)


@dataclass(frozen=True)
class EmbedResult:
    output: Path
    rows: int  # rows written: images and skipped files
    images: int
    skipped: tuple[SkippedImage, ...]
    embedded: int  # images that went through the model
    kept: int  # images served from the previous run or the cache: not decoded again
    seconds: float
    resumed: bool = False  # DIR held a previous run's rows that could be kept


def embed_collection(
    config: EmbedConfig, progress: Progress = no_progress, embedder: Embedder | None = None
) -> EmbedResult:
    """Write (or bring up to date) the store at `config.output`; raises GeneratorError."""
    output = config.output
    kept = (
        f"What {output} held is kept, and so are the parts this run finished: once there is "
        "room, the same command goes on from there."
    )
    # one run per store at a time; room_for speaks once the writer has kept its finished parts
    with output_lock(output), room_for(output, "-o", kept):
        return _embed(config, progress, embedder)


def _embed(config: EmbedConfig, progress: Progress, embedder: Embedder | None) -> EmbedResult:
    start = time.perf_counter()
    found = _find(config)
    given = embedder  # a caller's embedder also runs on the Ray actors (a copy each)
    with ExitStack() as stack:
        if embedder is None:
            embedder = plan_embedder(config.model, config.cache_dir)
            stack.callback(embedder.close)
        prefixes = folder_prefixes(config.inputs)  # several inputs: --labels folders needs them
        cache = None
        if config.cache_dir:
            cache = stack.enter_context(closing(EmbeddingCache(config.cache_dir)))
        options = embed_options(config, workers=config.engine == "local")  # ray: the actors
        engine: Engine
        if config.engine == "ray":
            engine = _ray_engine(config, embedder, given, options, stack)
            progress = logged(progress)  # a cluster run's log says how far it is
        else:
            engine = LocalEngine(embedder, cache, options)
        # the model that will run (a Ray actor's own device and precision) decides what is kept
        metadata = model_metadata(engine.info, config.thumb_size, prefixes, config.preview_size)
        engine.known = _previous(config, metadata)
        writer = StoreWriter(config.output, metadata)
        stack.push(_on_exit(writer))
        sink = StoreRows(writer, found.skipped)  # discovery's skips first, as `build` lists them
        pour(EngineSource(engine, found.images), progress, sink)
        skipped = check_skipped(
            config.strict, tuple(sink.skipped), "embed", f" {config.output} was left as it was."
        )
        writer.metadata = model_metadata(  # what ran: a model that loads lazily says so then
            engine.info, config.thumb_size, prefixes, config.preview_size
        )
        rows = writer.commit()
    kept = engine.served  # from the previous run or the cache: neither decoded nor embedded
    seconds = time.perf_counter() - start
    images = rows - len(skipped)
    resumed = engine.known is not None and len(engine.known) > 0
    return EmbedResult(
        config.output, rows, images, skipped, engine.embedded, kept, seconds, resumed
    )


def finished_rows(output: Path) -> int:
    """Rows in the parts that interrupted runs finished in `output`: a rerun keeps them
    (`_previous`), so an interrupted run can say so."""
    import pyarrow.parquet as pq

    if not output.is_dir():
        return 0
    return sum(pq.read_metadata(part).num_rows for part in unfinished_parts(output))


def _find(config: EmbedConfig) -> Discovery:
    """The images to embed: walked from INPUTS, or listed by --manifest."""
    if config.manifest is not None:
        found = read_manifest(config.manifest)
        check_store_dir(config.output, [image.path for image in found.images[:1]])
        return found
    check_store_dir(config.output, config.inputs)
    return find_images(config.inputs, [config.output])


def _ray_engine(
    config: EmbedConfig,
    embedder: Embedder,
    given: Embedder | None,
    options: EmbedOptions,
    stack: ExitStack,
) -> Engine:
    """The Ray engine on a connected cluster (shut down on leaving, if this run started it),
    its model planned there, as the actors will settle it."""
    from generator.engines.ray import Given, ModelLoader, RayEngine, RayOptions, connect

    ray_options = RayOptions(config.ray_address, config.workers, config.gpus_per_worker)
    if connect(ray_options.address):
        import ray

        stack.callback(ray.shutdown)
    m = config.model
    load = (
        ModelLoader(m.weights, m.device, m.precision, m.seed, m.backend, config.cache_dir)
        if given is None
        else Given(given)
    )
    engine = RayEngine(embedder.info, load, options, ray_options)
    engine.plan()
    return engine


class StoreRows:
    """The rows' sink for a store: every row (skipped files too, with their reason) goes to the
    writer's parts; the skipped ones are listed for the summary and --strict."""

    def __init__(self, writer: StoreWriter, skipped: tuple[SkippedImage, ...]) -> None:
        self.writer = writer
        self.skipped = list(skipped)
        for item in skipped:
            writer.add(Row.skipped(item.rel, item.why))

    def add(self, row: Row) -> None:
        self.writer.add(row)
        if row.error is not None:
            self.skipped.append(SkippedImage(row.rel, row.error))


def _previous(config: EmbedConfig, metadata: dict[str, str]) -> Known | None:
    """What the last runs wrote, if it can be kept (same model, weights, precision and thumbs):
    the current generation, and the finished parts of an interrupted run after it."""
    if config.overwrite or not any(config.output.glob(PART_GLOB)):
        return None
    unfinished = [open_store(part) for part in unfinished_parts(config.output)]
    stores = [s for s in unfinished if all(s.metadata.get(k) == metadata[k] for k in MATCHING)]
    if len(unfinished) < len(list(config.output.glob(PART_GLOB))):
        try:
            current = open_store(config.output)
        except InputError as exc:
            raise OutputError(
                f"{exc} The previous embeddings in {config.output} cannot be kept: use "
                "--overwrite to make them again."
            ) from exc
        _check_same_model(config, current.metadata, metadata)
        stores.insert(0, current)
    known = StoredRows(stores, config.output)  # read lazily, as rows are served
    log.info("%d embeddings in %s can be kept", len(known), config.output)
    return known


def _check_same_model(config: EmbedConfig, found: dict[str, str], wanted: dict[str, str]) -> None:
    changed = [key for key in MATCHING if found.get(key) != wanted[key]]
    if changed:
        key = changed[0]
        before = found.get(key) or "not recorded: an earlier version of dinoclust"
        raise OutputError(
            f"{config.output} holds embeddings made with another {key.split('.')[1]} "
            f"({before}; this run: {wanted[key]}). Use --overwrite to make "
            "them again, or write to another folder with -o."
        )


def _on_exit(writer: StoreWriter) -> Callable[..., bool]:
    """A refused run (--strict, bad input) leaves the store as it was; an interrupted one (Ctrl-C,
    a crash) keeps its finished parts for the next run."""

    def leave(kind: type[BaseException] | None, exc: object, tb: object) -> bool:
        if kind is not None and issubclass(kind, GeneratorError):
            writer.abort()
        elif kind is not None:
            writer.interrupted()
        return False

    return leave
