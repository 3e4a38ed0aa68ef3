"""The Ray engine: the same reader, mapper and writer as the local engine, scheduled by Ray Data.

The files still to embed become a Ray dataset in two stages: decoding is a CPU stage
(`map_batches` tasks), so that every core of the cluster decodes, and the model is an actor pool
(`num_gpus` each) whose actors load it once and run the shared `Mapper`. Many CPUs then feed
each GPU, and Ray Data's backpressure bounds what waits between the stages. What an earlier run
already made is served on the driver (runner.split), so a rerun never embeds it again. The
store records the model the actors ran, not the driver's plan: a CPU head with GPU workers
writes what the GPUs did.

Rows travel as Arrow tables with plain columns (pixels and vectors as bytes, the skip reason as
its i18n JSON), never numpy objects: those would become Ray's tensor extension type.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from generator.engines.decode import hashes, skip, try_decode
from generator.engines.decode import row as decoded_row
from generator.engines.mapper import Mapper
from generator.engines.runner import EmbedOptions, InOrder, Known, Served, Stub, split
from generator.errors import ConfigError, GeneratorError
from generator.i18n import Message
from generator.ingest.imaging import Decoded, DecodeError, limit_file_size
from generator.model.vit import PREPROCESS
from generator.types import Embedder, ModelInfo, Row, SourceImage

if TYPE_CHECKING:
    import pyarrow as pa

    from generator.types import Progress

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # an unreachable --ray-address fails well inside a minute
RESTARTS = 3  # a dead actor is restarted, and its batch retried, this many times
DECODE = try_decode  # what a decode task calls per file (a test's slow stand-in travels too)


class RayError(GeneratorError):
    """The Ray cluster cannot be reached, or cannot ever run what was asked of it."""


@dataclass(frozen=True)
class RayOptions:
    """`--ray-address` (None: Ray's `auto`, or a local one), `--workers`, `--gpus-per-worker`, as
    EmbedConfig checked them. `decode_cpus`: what one decode task asks of the cluster (no option:
    the tests give 0.5)."""

    address: str | None = None
    workers: int | None = None  # model actors; None: see check_resources
    gpus_per_worker: float = 0.0
    decode_cpus: float = 1.0


@dataclass(frozen=True)
class ModelLoader:
    """What each actor calls once to load its model (picklable: it travels to the workers).
    The device, precision and backend are settled there, on the actor's own hardware."""

    weights: str
    device: str
    precision: str
    seed: int
    backend: str = "auto"
    cache_dir: Path | None = None  # the driver's --cache-dir

    def plan(self) -> ModelInfo:
        from generator.model.embed import plan_model

        at = self.cache()
        return plan_model(self.weights, self.device, self.precision, self.seed, self.backend, at)

    def __call__(self) -> Embedder:
        from generator.model.embed import load_embedder

        return load_embedder(self.weights, self.plan(), self.seed, self.cache())

    def cache(self) -> Path | None:
        """The driver's cache folder where this node sees it (a local cluster, a shared disk):
        OpenVINO's conversion, the int8 model and its check are kept there, as a local run
        keeps them, not made again by every actor. A node without it keeps nothing."""
        return self.cache_dir if self.cache_dir is not None and self.cache_dir.is_dir() else None


@dataclass(frozen=True)
class Given:
    """An embedder made by the caller (tests, the Python API): each actor gets a copy."""

    embedder: Embedder

    def plan(self) -> ModelInfo:
        return self.embedder.info

    def __call__(self) -> Embedder:
        return self.embedder


class RayEngine:
    """An Engine (runner.Engine): `run(images)` yields one Row per image, in input order, like
    LocalEngine; the images that need the model are decoded and embedded on the Ray cluster.
    `plan()` asks the cluster which model its actors will run (connect first: `connect`)."""

    def __init__(
        self,
        planned: ModelInfo,
        load: ModelLoader | Given,
        options: EmbedOptions,
        ray_options: RayOptions,
        known: Known | None = None,
    ) -> None:
        self.load, self.options, self.ray_options = load, options, ray_options
        self.known = known
        self.embedded = 0
        self.served = 0  # rows that came whole from the earlier run
        self._info = planned  # the driver's plan, until the cluster says what it runs
        self._ran: ModelInfo | None = None  # what the first batch's actor ran
        self._images: Sequence[SourceImage] = ()  # this run's, for a row decoded again

    @property
    def info(self) -> ModelInfo:
        return self._ran or self._info

    def plan(self) -> ModelInfo:
        """The model as an actor settles it (device, precision, backend), asked of the cluster
        with an actor's resources, so that a rerun compares a store with what will run. A
        request the cluster can never meet is refused here, at once."""
        import ray
        import ray.exceptions

        check_resources(self.ray_options)
        gpus = self.ray_options.gpus_per_worker
        task = ray.remote(_plan).options(num_cpus=1, num_gpus=gpus, max_retries=0)
        try:
            self._info = ray.get(task.remote(self.load))
        except ray.exceptions.RayError as exc:
            raise RayError(
                f"The Ray cluster could not plan the model: {_cause(exc)}. Check --device, "
                "--precision and --backend against the workers' hardware."
            ) from exc
        return self._info

    def run(self, images: Sequence[SourceImage], progress: Progress) -> Iterator[Row]:
        served = Served([self.known] if self.known is not None else [])
        digests: list[str | OSError | None] = [None] * len(images)
        if self.known is not None:  # hashed here: the earlier run's rows are found by content
            digests = list(hashes([image.path for image in images]))
        previews = bool(self.options.preview_size)
        plan = split(images, digests, served, previews)
        self.served += plan.served
        self._images = images
        limit_file_size(self.options.max_file_size)  # a row decoded again here (_again)
        order = InOrder(plan.done, lambda stubs: served.materialise(stubs, previews, self._again))
        yield from order.ready()
        if plan.todo:
            with progress("Embedding images", len(plan.todo)) as advance:
                yield from self._embed(images, plan.todo, order, advance)
        yield from order.ready()
        log.info("%d images embedded, %d served without the model", self.embedded, self.served)

    def _again(self, stub: Stub, vector: np.ndarray | None) -> Row:
        """A stored row whose thumbnail could not be read back: decoded again here."""
        log.warning("%s: its stored thumbnail went missing; decoding it again", stub.rel)
        result = try_decode(
            self._images[stub.index].path, self.options.thumb_size, self.options.preview_size
        )
        if isinstance(result, DecodeError):
            return skip(stub.rel, result.why)
        if vector is None:  # the store said it had the vector, then did not give it
            raise RayError(f"{stub.rel}: its stored vector went missing. Run the command again.")
        return decoded_row(stub.rel, result, vector)

    def _embed(
        self,
        images: Sequence[SourceImage],
        todo: list[int],
        order: InOrder,
        advance: Callable[[int], None],
    ) -> Iterator[Row]:
        import ray.exceptions

        dataset = self._dataset(images, todo)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows, info = rows_from_arrow(batch)
                for index, row in rows:
                    if row.error is not None:
                        log.warning("skipped %s: %s", images[index].rel, row.error)  # as local says
                    else:
                        self.embedded += 1
                    order.put(index, row)
                self._record(info)
                advance(len(rows))
                yield from order.ready()
        except ray.exceptions.RayError as exc:
            raise RayError(
                f"The Ray cluster could not embed the images: {_cause(exc)}. The finished parts "
                "are kept: fix the cause and run the same command again to finish the job (the "
                "workers' logs are in Ray's session folder, /tmp/ray/session_latest/logs)."
            ) from exc

    def _record(self, info: ModelInfo | None) -> None:
        """What the actors ran; one store holds one model, so actors that disagree are named."""
        if info is None or info == self._ran:
            return
        if self._ran is None:
            if info != self._info:
                log.info("the actors run %s on %s (planned: %s on %s)", info.precision,
                         info.device, self._info.precision, self._info.device)  # fmt: skip
            self._ran = info
            return
        log.warning(
            "the Ray actors ran different models: %s %s on %s, and %s %s on %s; the store "
            "records the first. Pin --device, --precision and --backend to make them agree.",
            self._ran.backend, self._ran.precision, self._ran.device,
            info.backend, info.precision, info.device,
        )  # fmt: skip

    def _dataset(self, images: Sequence[SourceImage], todo: list[int]) -> Any:
        """Two stages: decode tasks (CPU), then the model actors (GPU where asked). Batches
        come back as they finish, not in order: Ray Data's preserve_order would hold every
        later batch behind a slow decode task (a worker still starting), and the model would
        wait; the driver puts rows back in input order (InOrder). The price: rows that finish
        ahead of a slow batch wait on the driver, as many as the stages make while it is late
        (each a thumbnail, a vector and, if asked, a preview; not measured at scale)."""
        import ray.data

        workers = check_resources(self.ray_options)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our own progress, per stage
        items = [{"index": i, "path": str(images[i].path), "rel": images[i].rel} for i in todo]
        size = self.options.batch_size
        blocks = -(-len(items) // size)  # a decode task a batch: the model waits for one batch
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        decoded = dataset.map_batches(
            decode_batch,
            fn_args=(DECODE, self.options.thumb_size, self.options.preview_size),
            fn_kwargs={"max_file_size": self.options.max_file_size},
            batch_size=size,
            batch_format="pyarrow",
            num_cpus=self.ray_options.decode_cpus,
        )
        with warnings.catch_warnings():  # Ray 2.60 names no other way to bound the restarts
            warnings.simplefilter("ignore", DeprecationWarning)
            return decoded.map_batches(
                EmbedActor,
                fn_constructor_args=(self.load,),
                batch_size=size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=1,
                num_gpus=self.ray_options.gpus_per_worker or None,
                max_restarts=RESTARTS,  # a dead actor is started again ...
                max_task_retries=RESTARTS,  # ... and its batch retried, not for ever
            )


def _plan(load: ModelLoader | Given) -> ModelInfo:
    return load.plan()


def decode_batch(
    batch: pa.Table,
    decode_one: Callable[[Path, int, int], Decoded | DecodeError],
    thumb_size: int,
    preview_size: int,
    max_file_size: int,
) -> pa.Table:
    """The CPU stage: one task decodes a batch of files; a file that cannot be used (or larger
    than --max-file-size) becomes a skipped row, which the model stage passes on."""
    limit_file_size(max_file_size)  # this worker's, as a local decode worker sets it
    indices = batch.column("index").to_pylist()
    paths = batch.column("path").to_pylist()
    rows: list[Row] = []
    pixels: list[bytes | None] = []
    for rel, path in zip(batch.column("rel").to_pylist(), paths, strict=True):
        result = decode_one(Path(path), thumb_size, preview_size)
        if isinstance(result, DecodeError):
            rows.append(Row.skipped(rel, result.why))
            pixels.append(None)
        else:
            rows.append(decoded_row(rel, result, None))  # the vector comes from the model stage
            pixels.append(np.ascontiguousarray(result.pixels, dtype=np.uint8).tobytes())
    return rows_to_arrow(indices, rows, None, paths, pixels)


class EmbedActor:
    """One per model worker: loads the model in `__init__`, then embeds decoded batches."""

    def __init__(self, load: Callable[[], Embedder]) -> None:
        self.embedder = load()
        self.mapper = Mapper(self.embedder)

    def __call__(self, batch: pa.Table) -> pa.Table:
        paths = batch.column("path").to_pylist()
        try:
            return self._embed(batch, paths)
        except Exception as exc:  # noqa: BLE001 - named with its files, for the driver's message
            raise BatchError(
                f"{type(exc).__name__}: {exc} (in the batch of {len(paths)} files from "
                f"{paths[0]} to {paths[-1]})"
            ) from None

    def _embed(self, batch: pa.Table, paths: list[str]) -> pa.Table:
        pairs, _ = rows_from_arrow(batch)
        pixels = batch.column("pixels").to_pylist()
        side = PREPROCESS.size
        good = [
            (row, np.frombuffer(data, dtype=np.uint8).reshape(side, side, 3))
            for (_, row), data in zip(pairs, pixels, strict=True)
            if row.error is None
        ]
        mapped = iter(self.mapper(good))
        rows = [row if row.error is not None else next(mapped) for _, row in pairs]
        indices = [index for index, _ in pairs]
        return rows_to_arrow(indices, rows, self.embedder.info, paths)


class BatchError(RuntimeError):
    """An actor's batch failed for another reason than a file that does not decode (those are
    rows with `error`): the message names the batch's files."""


def _cause(exc: BaseException) -> str:
    """The first line of what failed on the cluster (our BatchError's message when it was the
    actor's code), not Ray's traceback."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BatchError):
            return str(cause).splitlines()[0]
        cause = getattr(cause, "cause", None) or cause.__cause__
    lines = [line for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "BatchError" in line]
    text = (named or lines or [type(exc).__name__])[-1]
    return text.split("BatchError: ", 1)[-1].strip()[:500]


def rows_to_arrow(
    indices: Sequence[int],
    rows: Sequence[Row],
    info: ModelInfo | None,
    paths: Sequence[str],
    pixels: Sequence[bytes | None] | None = None,
) -> pa.Table:
    """Rows → the transport table (one schema whatever the batch holds): after the decode stage
    with `pixels` and no vectors, after the model stage with vectors and the actor's `info`."""
    import pyarrow as pa

    def sizes(pick: Callable[[Row], tuple[int, int] | None], i: int) -> pa.Array:
        return pa.array([s[i] if (s := pick(row)) else None for row in rows], pa.int32())

    info_json = None if info is None else _info_to_json(info)
    nothing = [None] * len(rows)
    return pa.table(
        {
            "index": pa.array(indices, pa.int64()),
            "path": pa.array(paths, pa.string()),
            "rel": pa.array([row.rel for row in rows], pa.string()),
            "sha256": pa.array([row.sha256 for row in rows], pa.string()),
            "width": sizes(lambda r: r.size, 0),
            "height": sizes(lambda r: r.size, 1),
            "thumb": pa.array([row.thumb for row in rows], pa.binary()),
            "thumb_width": sizes(lambda r: r.thumb_size, 0),
            "thumb_height": sizes(lambda r: r.thumb_size, 1),
            "preview": pa.array([row.preview for row in rows], pa.binary()),
            "preview_width": sizes(lambda r: r.preview_size, 0),
            "preview_height": sizes(lambda r: r.preview_size, 1),
            "pixels": pa.array(nothing if pixels is None else pixels, pa.binary()),
            "vector": pa.array(
                [None if r.vector is None else r.vector.tobytes() for r in rows], pa.binary()
            ),
            "error": pa.array(
                [json.dumps(r.error.to_json()) if r.error else None for r in rows], pa.string()
            ),
            "info": pa.array([info_json] * len(rows), pa.string()),
        }
    )


def rows_from_arrow(batch: pa.Table) -> tuple[list[tuple[int, Row]], ModelInfo | None]:
    """The transport table → (input index, Row) pairs, and the actor's ModelInfo (None: the
    batch has not been through the model)."""
    col = {name: batch.column(name).to_pylist() for name in batch.column_names}
    out = []
    for i, index in enumerate(col["index"]):
        if col["error"][i] is not None:
            why = Message.from_json(json.loads(col["error"][i]))
            out.append((index, Row.skipped(col["rel"][i], why, col["sha256"][i])))
            continue
        size = (col["width"][i], col["height"][i])
        thumb_size = (col["thumb_width"][i], col["thumb_height"][i])
        data = col["vector"][i]
        vector = None if data is None else np.frombuffer(data, dtype=np.float32).copy()
        preview = col["preview"][i]
        preview_size = (col["preview_width"][i], col["preview_height"][i]) if preview else None
        row = Row(
            col["rel"][i],
            col["sha256"][i],
            size,
            col["thumb"][i],
            thumb_size,
            vector,
            preview=preview,
            preview_size=preview_size,
        )
        out.append((index, row))
    said = next((text for text in col["info"] if text is not None), None)
    info = None if said is None else _info_from_json(said)
    return out, info


def _info_to_json(info: ModelInfo) -> str:
    said = info.weights_i18n.to_json() if info.weights_i18n else None
    return json.dumps({**asdict(info), "weights_i18n": said}, sort_keys=True)


def _info_from_json(text: str) -> ModelInfo:
    data = json.loads(text)
    said = data.pop("weights_i18n", None)
    return ModelInfo(**data, weights_i18n=Message.from_json(said) if said else None)


# --- the cluster ---------------------------------------------------------------------------


def connect(address: str | None) -> bool:
    """Join the cluster at `address`; without one, the cluster `ray start` made on this machine
    (Ray's `auto`), else a new local one. Returns whether this call started Ray (then the caller
    shuts it down). An unreachable address fails within CONNECT_TIMEOUT_S."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--engine ray needs Ray Data: pip install 'dinoclust[ray]'.") from exc
    remote = bool(address) and address not in ("auto", "local")
    if remote:
        _check_reachable(address)
    if ray.is_initialized():  # the caller's session (a notebook, the tests)
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing written to ~/.ray for it
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if remote:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            raise RayError(_unreachable(address, str(exc))) from exc
        return True
    if address == "local":  # Ray's word for a new cluster on this machine
        ray.init(include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address="auto", **quiet)
    except ConnectionError:
        if address == "auto":
            raise RayError(
                "--ray-address auto: no Ray cluster runs on this machine. Start one with "
                "`ray start --head`, give its address, or leave --ray-address out to start a "
                "local one."
            ) from None
        log.info("no Ray cluster on this machine: starting a local one")
        ray.init(include_dashboard=False, **quiet)
    return True


def _check_reachable(address: str) -> None:
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port or (10001 if "://" in address else 6379)
    if not host:
        raise RayError(_unreachable(address, "no host in the address"))
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayError(_unreachable(address, exc.strerror or str(exc) or "timed out")) from exc


def _unreachable(address: str, why: str) -> str:
    return (
        f"--ray-address {address}: cannot reach a Ray cluster there ({why}). Check the address "
        "that `ray start --head` printed (host:6379, or ray://host:10001 for Ray Client), that "
        "the port is open from here, or leave --ray-address out to start a local cluster."
    )


def check_resources(options: RayOptions) -> int:
    """The number of model actors, refused at once if the cluster can never give them what they
    ask: Ray would otherwise wait for ever without a word. By default, with GPUs, an actor per
    GPU share and every other CPU decodes; on CPUs only, half the CPUs run the model and half
    decode (README Performance: a core decodes 14 12-MP photos a second, and embeds 12 in fp32
    or 38 in bf16)."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    workers = options.workers or max(1, cpus - 1 if options.gpus_per_worker > 0 else cpus // 2)
    if options.gpus_per_worker > 0 and options.workers is None:
        workers = max(1, min(workers, int(gpus // options.gpus_per_worker)))
    if workers >= cpus:  # a cluster of one CPU has none to spare for an actor: only more help
        fewer = f"Use --workers {cpus - 1} or fewer, or add" if cpus > 1 else "Add"
        raise RayError(
            f"--workers {workers} asks for {workers} CPUs, but the Ray cluster has {cpus}, and "
            f"Ray Data needs at least one more for reading and writing blocks. {fewer} nodes to "
            "the cluster."
        )
    wanted = workers * options.gpus_per_worker
    if wanted > gpus:
        raise RayError(
            f"--workers {workers} with --gpus-per-worker {options.gpus_per_worker:g} asks for "
            f"{wanted:g} GPUs, but the Ray cluster has {gpus:g}. Use fewer workers, a smaller "
            "--gpus-per-worker (e.g. 0.5 puts two actors on one GPU), or 0 for CPUs only."
        )
    return workers
