"""The Ray engine: the local engine's decode, mapper and store writer, scheduled by Ray Data.

Only who schedules the batches differs (clip-retrieval's distributor): the files still to embed
become a Ray dataset, `map_batches` runs an actor pool whose actors load the model once each and
decode + embed a batch with the shared `Mapper`, and the rows stream back, in input order, to the
driver, which writes them with the one `StoreWriter`. What an earlier run already made is served
on the driver by the local engine's rule (path and sha256), so a rerun never embeds it again.

Rows travel as Arrow tables with plain columns (the vector as float32 bytes, the skip reason as
its i18n JSON), never numpy objects: those would become Ray's tensor extension type.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from generator.engines.local import EmbedOptions, Known, LocalEngine, _InOrder, _try_decode
from generator.engines.mapper import Mapper
from generator.errors import ConfigError, GeneratorError
from generator.i18n import Message
from generator.ingest.imaging import DecodeError
from generator.types import Embedder, Row, SourceImage

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # an unreachable --ray-address fails well inside a minute
RESTARTS = 3  # a dead actor is restarted, and its batch retried, this many times
BATCHES_PER_BLOCK = 4  # input rows per Ray block: batch_size x this


class RayError(GeneratorError):
    """The Ray cluster cannot be reached, or cannot ever run what was asked of it."""


@dataclass(frozen=True)
class RayOptions:
    """`--ray-address`, `--workers`, `--gpus-per-worker` (None: Ray's `auto`, or a local one)."""

    address: str | None = None
    workers: int | None = None  # None: every CPU but one (Ray Data needs one for its own tasks)
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {self.workers}).")
        if self.gpus_per_worker < 0:
            raise ConfigError(
                f"--gpus-per-worker must be zero or more (got {self.gpus_per_worker})."
            )


@dataclass(frozen=True)
class ModelLoader:
    """What each actor calls once to load its model (picklable: it travels to the workers)."""

    weights: str
    device: str
    precision: str
    seed: int

    def __call__(self) -> Embedder:
        from generator.model.embed import load_embedder, plan_model

        info = plan_model(self.weights, self.device, self.precision, self.seed)
        return load_embedder(self.weights, info, self.seed)


@dataclass(frozen=True)
class Given:
    """An embedder made by the caller (tests, the Python API): each actor gets a copy."""

    embedder: Embedder

    def __call__(self) -> Embedder:
        return self.embedder


class RayEngine(LocalEngine):
    """`run(images)` yields one Row per image, in input order, like LocalEngine; the batches that
    need the model run on the Ray cluster. `cluster` is connected once (see `connect`)."""

    def __init__(
        self,
        embedder: Embedder,
        load: Callable[[], Embedder],
        options: EmbedOptions,
        ray_options: RayOptions,
        known: Known | None = None,
    ) -> None:
        super().__init__(_NoPrefetch(embedder), None, options, known)
        self.load = load
        self.ray_options = ray_options

    def _decode_and_map(
        self,
        images: Sequence[SourceImage],
        todo: list[int],
        order: _InOrder,
        advance: Callable[[int], None],
    ) -> Iterator[Row]:
        import ray.exceptions

        dataset = self._dataset(images, todo)
        try:
            yield from self._collect(dataset, images, order, advance)
        except ray.exceptions.RayError as exc:
            raise RayError(
                f"The Ray cluster could not embed the images: {_cause(exc)}. The finished parts "
                "are kept: fix the cause and run the same command again to finish the job (the "
                "workers' logs are in Ray's session folder, /tmp/ray/session_latest/logs)."
            ) from exc

    def _collect(
        self,
        dataset: Any,
        images: Sequence[SourceImage],
        order: _InOrder,
        advance: Callable[[int], None],
    ) -> Iterator[Row]:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows, info = rows_from_arrow(batch)
            for index, row in rows:
                if row.error is not None:
                    log.warning("skipped %s: %s", images[index].path, row.error)
                else:
                    self.embedded += 1
                order.put(index, row)
            if info is not None:
                self.embedder.info = info  # what the actors ran (device, precision)
            advance(len(rows))
            yield from order.ready()

    def _dataset(self, images: Sequence[SourceImage], todo: list[int]) -> Any:
        import ray.data

        workers = check_resources(self.ray_options)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows stream back in input order
        context.enable_progress_bars = False  # our own progress, per stage
        items = [{"index": i, "path": str(images[i].path), "rel": images[i].rel} for i in todo]
        block = self.options.batch_size * BATCHES_PER_BLOCK
        blocks = max(1, min(len(items), -(-len(items) // block)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        with warnings.catch_warnings():  # Ray 2.60 names no other way to bound the restarts
            warnings.simplefilter("ignore", DeprecationWarning)
            return dataset.map_batches(
                EmbedActor,
                fn_constructor_args=(self.load, self.options.thumb_size, self.options.preview_size),
                batch_size=self.options.batch_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=1,
                num_gpus=self.ray_options.gpus_per_worker or None,
                max_restarts=RESTARTS,  # a dead actor is started again ...
                max_task_retries=RESTARTS,  # ... and its batch retried, not for ever
            )


class _NoPrefetch:
    """The driver never loads the model: the actors do."""

    def __init__(self, embedder: Embedder) -> None:
        self.info = embedder.info

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        raise RuntimeError("the Ray engine embeds on its actors, not on the driver")


class EmbedActor:
    """One per worker: loads the model in `__init__`, then decodes and embeds a batch per call."""

    def __init__(
        self, load: Callable[[], Embedder], thumb_size: int, preview_size: int = 0
    ) -> None:
        self.embedder = load()
        self.mapper = Mapper(self.embedder)
        self.thumb_size, self.preview_size = thumb_size, preview_size

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
        indices = batch.column("index").to_pylist()
        rels = batch.column("rel").to_pylist()
        results = [_try_decode(Path(path), self.thumb_size, self.preview_size) for path in paths]
        good = [(rel, r) for rel, r in zip(rels, results, strict=True) if not _failed(r)]
        mapped = iter(self.mapper(good))
        rows = [
            Row.skipped(rel, r.why) if isinstance(r, DecodeError) else next(mapped)
            for rel, r in zip(rels, results, strict=True)
        ]
        return rows_to_arrow(indices, rows, self.embedder.info)


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


def _failed(result: object) -> bool:
    return isinstance(result, DecodeError)


def rows_to_arrow(indices: Sequence[int], rows: Sequence[Row], info: Any) -> pa.Table:
    """Rows → the transport table (one schema whatever the batch holds)."""
    import pyarrow as pa

    def sizes(pick: Callable[[Row], tuple[int, int] | None], i: int) -> pa.Array:
        return pa.array([s[i] if (s := pick(row)) else None for row in rows], pa.int32())

    info_json = json.dumps(_info_to_json(info), sort_keys=True)
    return pa.table(
        {
            "index": pa.array(indices, pa.int64()),
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
            "vector": pa.array(
                [None if r.vector is None else r.vector.tobytes() for r in rows], pa.binary()
            ),
            "error": pa.array(
                [json.dumps(r.error.to_json()) if r.error else None for r in rows], pa.string()
            ),
            "info": pa.array([info_json] * len(rows), pa.string()),
        }
    )


def rows_from_arrow(batch: pa.Table) -> tuple[list[tuple[int, Row]], Any]:
    """The transport table → (input index, Row) pairs, and the actors' ModelInfo."""
    from generator.types import ModelInfo

    col = {name: batch.column(name).to_pylist() for name in batch.column_names}
    out = []
    for i, index in enumerate(col["index"]):
        if col["error"][i] is not None:
            why = Message.from_json(json.loads(col["error"][i]))
            out.append((index, Row.skipped(col["rel"][i], why, col["sha256"][i])))
            continue
        size = (col["width"][i], col["height"][i])
        thumb_size = (col["thumb_width"][i], col["thumb_height"][i])
        vector = np.frombuffer(col["vector"][i], dtype=np.float32).copy()
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
    info = _info_from_json(json.loads(col["info"][0]), ModelInfo) if col["info"] else None
    return out, info


def _info_to_json(info: Any) -> dict[str, Any]:
    said = info.weights_i18n.to_json() if info.weights_i18n else None
    return {
        "name": info.name,
        "weights": info.weights,
        "weights_id": info.weights_id,
        "random_weights": info.random_weights,
        "device": info.device,
        "precision": info.precision,
        "backend": info.backend,
        "weights_i18n": said,
    }


def _info_from_json(data: dict[str, Any], model_info: Any) -> Any:
    said_json = data.pop("weights_i18n", None)
    said = Message.from_json(said_json) if said_json else None
    return model_info(**data, weights_i18n=said)


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
    """The number of actors, refused at once if the cluster can never give them what they ask:
    Ray would otherwise wait for ever without a word."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    workers = options.workers or max(1, cpus - 1)
    if options.gpus_per_worker > 0 and options.workers is None:
        workers = max(1, min(workers, int(gpus // options.gpus_per_worker)))
    if workers >= cpus:
        raise RayError(
            f"--workers {workers} asks for {workers} CPUs, but the Ray cluster has {cpus}, and "
            "Ray Data needs at least one more for reading and writing blocks. Use --workers "
            f"{max(1, cpus - 1)} or fewer, or add nodes to the cluster."
        )
    wanted = workers * options.gpus_per_worker
    if wanted > gpus:
        raise RayError(
            f"--workers {workers} with --gpus-per-worker {options.gpus_per_worker:g} asks for "
            f"{wanted:g} GPUs, but the Ray cluster has {gpus:g}. Use fewer workers, a smaller "
            "--gpus-per-worker (e.g. 0.5 puts two actors on one GPU), or 0 for CPUs only."
        )
    return workers
