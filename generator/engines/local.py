"""The local engine: decode in worker processes while the model embeds full batches, here.

What the cache (or an earlier `dinoclust embed`) knows is served without decoding (runner.py);
the rest is decoded, batched and mapped. Rows come out in input order, streamed, so thumbnails
never pile up in memory. Stopping early (an error, Ctrl-C, the consumer closing the generator)
cancels every queued decode.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from generator.engines.decode import hashes
from generator.engines.decode import row as _row
from generator.engines.decode import skip as _skip
from generator.engines.decode import try_decode as _try_decode  # tests swap it, here
from generator.engines.mapper import Mapper
from generator.engines.runner import CHUNK, EmbedOptions, InOrder, Known, Served, Stub, split
from generator.ingest.imaging import (
    Decoded,
    DecodeError,
    limit_file_size,
    share_big_decodes,
    unsupported,
)
from generator.memory import release_freed_memory
from generator.storage.cache import EmbeddingCache, namespace, preview_spec, thumb_spec
from generator.storage.cachestore import CacheSpace
from generator.types import Embedder, ModelInfo, Row, SourceImage

__all__ = ["CHUNK", "EmbedOptions", "Known", "LocalEngine", "default_workers", "task_size"]

if TYPE_CHECKING:
    from generator.types import Progress

log = logging.getLogger(__name__)

LOOKAHEAD = 64  # images decoded or being decoded ahead of the model: bounds memory at any N
LOADING_LOOKAHEAD = 512  # the same while the model is still loading (import, OpenVINO's compile)
TASK_IMAGES = 8  # images one decode task takes at most: one round trip to a worker per 8 images
WORKER_NICENESS = 5  # decode workers yield the CPU to the model
REORDER_BATCHES = 4  # finished rows held for an earlier image's batch before it is sent early


class LocalEngine:
    """`run(images)` yields one Row per image, in input order; `embedded` counts model inputs."""

    def __init__(
        self,
        embedder: Embedder,
        cache: EmbeddingCache | None,
        options: EmbedOptions,
        known: Known | None = None,
    ) -> None:
        self.embedder, self.cache, self.options = embedder, cache, options
        self.known = known
        self.mapper = Mapper(embedder)
        self.embedded = 0
        self.served = 0  # rows that came whole from the cache or the earlier run
        self._fresh: list[Row] = []  # decoded rows for the cache, handed over once a batch
        self._space: CacheSpace | None = None  # the cache's rows for these options
        self._new_hashes: list[tuple[Path, tuple[int, int], str]] = []  # for the files index
        self._images: Sequence[SourceImage] = ()  # this run's, for a row decoded again
        self._served = Served([])

    @property
    def info(self) -> ModelInfo:
        """The model that made the vectors (a LazyEmbedder's once it has loaded)."""
        return self.embedder.info

    def run(self, images: Sequence[SourceImage], progress: Progress) -> Iterator[Row]:
        self._images = images
        digests = self._digests(images)
        self._served = Served(self._sources())
        previews = bool(self.options.preview_size)
        plan = split(images, digests, self._served, previews)
        self.served += plan.served
        prefetch = getattr(self.embedder, "prefetch", None)
        if plan.new and prefetch is not None:
            prefetch()
        order = InOrder(
            plan.done, lambda stubs: self._served.materialise(stubs, previews, self._again), CHUNK
        )
        yield from order.ready()
        if plan.todo:
            with progress("Embedding images", len(plan.todo)) as advance:
                yield from self._decode_and_map(images, plan.todo, order, advance)
        yield from order.ready()
        if self._space is not None:
            self._space.add(self._fresh)  # rows decoded again while served
            self._fresh = []
            self._space.finish()
        log.info("%d images embedded, %d served without the model", self.embedded, self.served)

    def _decode_and_map(
        self,
        images: Sequence[SourceImage],
        todo: list[int],
        order: InOrder,
        advance: Callable[[int], None],
    ) -> Iterator[Row]:
        batch: list[tuple[int, Row, np.ndarray]] = []
        limit = REORDER_BATCHES * self.options.batch_size
        paths = [images[i].path for i in todo]
        loading = getattr(self.embedder, "loading", None)  # LazyEmbedder: True while it loads
        with _Decoder(self.options, len(todo), loading) as decoder:
            for index, result in decoder.results(paths, todo):
                rel = images[index].rel
                if isinstance(result, DecodeError):
                    order.put(index, _skip(rel, result.why))
                    advance(1)
                    continue
                if self.cache is not None and result.stat is not None:  # for its files index
                    self._new_hashes.append((images[index].path, result.stat, result.sha256))
                vector = self._served.vector(result.sha256)  # also one only its decode hashed
                if vector is not None:
                    row = _row(rel, result, vector)
                    order.put(index, row)
                    self._fresh.append(row)
                    advance(1)
                else:
                    batch.append((index, _row(rel, result, None), result.pixels))
                if len(batch) >= self.options.batch_size or (batch and order.waiting > limit):
                    advance(self._flush(batch, order))
                    batch = []
                yield from order.ready()
            advance(self._flush(batch, order))

    def _sources(self) -> list[Known]:
        """Where served rows come from, the earlier run's rows winning over the cache's."""
        sources: list[Known] = []
        if self.known is not None:
            sources.append(self.known)
        if self.cache is not None:
            self._space = self._cache_space(self.cache)
            sources.append(self._space)
        return sources

    def _cache_space(self, cache: EmbeddingCache) -> CacheSpace:
        from generator.storage.store import model_metadata

        size, preview = self.options.thumb_size, self.options.preview_size
        thumbs = thumb_spec(size, self.options.decode_side)
        previews = preview_spec(preview) if preview else None
        metadata = model_metadata(self.embedder.info, size, None, preview)
        space = namespace(self.embedder.info, self.options.decode_side)  # as settled in plan
        return cache.space(space, thumbs, previews, metadata)

    def _again(self, stub: Stub, vector: np.ndarray | None) -> Row:
        log.warning("%s: its cached thumbnail went missing; decoding it again", stub.rel)
        path = self._images[stub.index].path
        result = _try_decode(path, self.options.thumb_size, self.options.preview_size)
        if isinstance(result, DecodeError):
            return _skip(stub.rel, result.why)
        if vector is None:
            self.embedded += 1
            row = self.mapper([(_row(stub.rel, result, None), result.pixels)])[0]
        else:
            row = _row(stub.rel, result, vector)
        self._fresh.append(row)  # for the cache, once the run ends
        return row

    def _flush(self, batch: list[tuple[int, Row, np.ndarray]], order: InOrder) -> int:
        """Embed one batch and hand the decoded rows to the cache; returns the batch size."""
        if self.cache is not None and self._new_hashes:
            self.cache.remember(self._new_hashes)
        self._new_hashes = []
        rows = self.mapper([(row, pixels) for _, row, pixels in batch])
        for (index, _, _), row in zip(batch, rows, strict=True):
            order.put(index, row)
        self.embedded += len(rows)
        if self._space is not None:
            self._space.add([*self._fresh, *rows])
        self._fresh = []
        if rows:
            release_freed_memory()
        return len(rows)

    def _digests(self, images: Sequence[SourceImage]) -> list[str | OSError | None]:
        """Content hashes where they help: from the cache's index (None: not known there, the
        decode workers hash it), or hashed here, as the Ray driver does, when an earlier run's
        rows can be reused (threads: 2.2 s against 3.0 s for worker processes, 300 3-MB files
        on 2 cores)."""
        paths = [image.path for image in images]
        if self.cache is not None:
            return list(self.cache.digests(paths))
        if self.known is None:
            return [None] * len(paths)
        return list(hashes(paths))


def default_workers() -> int:
    """Every CPU this process may use (its affinity mask: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _Decoder:
    """Decode processes (threads do not scale: measured in bench_build.py); each worker reads,
    hashes, decodes and encodes the thumbnail, and sends back the 224×224 input and small
    records. A worker that dies (a crash in a C decoder) costs only its file: the files then in
    flight are retried one at a time, and the one that kills its worker again is skipped.
    Leaving the block cancels every decode not yet started. While `loading()` says the model
    is still loading, up to LOADING_LOOKAHEAD images are sent ahead, so that the cores the load
    leaves idle decode; the batches, and so the results, are the same either way."""

    def __init__(
        self, options: EmbedOptions, count: int, loading: Callable[[], bool] | None = None
    ) -> None:
        self.thumb_size, self.preview_size = options.thumb_size, options.preview_size
        self.max_file_size = options.max_file_size
        limit_file_size(options.max_file_size)  # this process decodes a file again after a crash
        self.workers = max(1, min(options.workers or default_workers(), count))
        self.task = task_size(count, self.workers)
        self.lookahead = max(LOOKAHEAD, 4 * self.workers * self.task)
        self.loading = loading or (lambda: False)
        self.context = _context()
        with _semaphores():
            self.big = self.context.BoundedSemaphore(1)  # one huge decode at a time, machine-wide
        self.pool = self._pool(self.workers)
        self.solo: ProcessPoolExecutor | None = None  # retries after a crash, one at a time

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        with _semaphores():  # the pool's queues hold some
            return ProcessPoolExecutor(
                workers,
                mp_context=self.context,
                initializer=_worker_start,
                initargs=(self.big, self.max_file_size),
            )

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.solo is not None:
            self.solo.shutdown(wait=True, cancel_futures=True)

    def results(
        self, paths: Sequence[Path], indices: Sequence[int]
    ) -> Iterator[tuple[int, Decoded | DecodeError]]:
        """Results in input order, with at most `lookahead` images in flight."""
        pending: deque[tuple[list[tuple[int, Path]], _Task]] = deque()
        items = list(zip(indices, paths, strict=True))
        tasks = (items[start : start + self.task] for start in range(0, len(items), self.task))
        while True:
            ahead = max(self.lookahead, LOADING_LOOKAHEAD) if self.loading() else self.lookahead
            try:
                for task in tasks:
                    pending.append((task, self._submit([path for _, path in task])))
                    if len(pending) * self.task >= ahead:
                        break
            except BrokenProcessPool:  # a worker died while more tasks were being sent
                yield from self._after_crash([*pending, (task, None)])
                pending.clear()
                continue
            if not pending:
                return
            task, submitted = pending.popleft()
            try:
                results = submitted.results()
            except BrokenProcessPool:
                yield from self._after_crash([(task, submitted), *pending])
                pending.clear()
                continue
            yield from zip((index for index, _ in task), results, strict=True)

    def _submit(self, paths: Sequence[Path], pool: ProcessPoolExecutor | None = None) -> _Task:
        """One task: the files whose format is not installed are decided here (the hint is
        logged once, by this process); the rest go to one worker together."""
        early = [unsupported(path) for path in paths]
        wanted = [path for path, missing in zip(paths, early, strict=True) if missing is None]
        if not wanted:
            return _Task(early, None)
        with _main_unseen():  # a submit may start a worker
            future = (pool or self.pool).submit(
                _decode_task, _try_decode, wanted, self.thumb_size, self.preview_size
            )
        return _Task(early, future)

    def _after_crash(
        self, in_flight: Sequence[tuple[list[tuple[int, Path]], _Task | None]]
    ) -> Iterator[tuple[int, Decoded | DecodeError]]:
        """A worker died: the pool is lost. The tasks then in flight (None: not sent), in
        input order: those that finished keep their results, the others' files are retried
        one at a time."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        for task, submitted in in_flight:
            if submitted is not None and submitted.finished():
                yield from zip((index for index, _ in task), submitted.results(), strict=True)
                continue
            for index, path in task:
                yield index, self._alone(path)
        self.pool = self._pool(self.workers)

    def _alone(self, path: Path) -> Decoded | DecodeError:
        if self.solo is None:
            self.solo = self._pool(1)
        try:
            return self._submit([path], self.solo).results()[0]
        except BrokenProcessPool:
            self.solo.shutdown(wait=True)
            self.solo = None
            log.warning("the decoder crashed on %s", path)
            return DecodeError("skip_decoder_crashed")


def task_size(count: int, workers: int) -> int:
    """Images per decode task: TASK_IMAGES, fewer when a task each would leave a worker less
    than 8 tasks (a small build spreads its work evenly; one image a task below 16 a worker)."""
    return max(1, min(TASK_IMAGES, count // (8 * workers)))


class _Task(NamedTuple):
    """A decode task under way: the results decided before submitting (None: sent to the
    worker), and the worker's results for the others, in order."""

    early: list[DecodeError | None]
    future: Future[list[Decoded | DecodeError]] | None

    def results(self) -> list[Decoded | DecodeError]:
        decoded = iter(self.future.result() if self.future is not None else ())
        return [missing if missing is not None else next(decoded) for missing in self.early]

    def finished(self) -> bool:
        """Its results are in (a task whose worker died, or that was cancelled, is not)."""
        future = self.future
        return future is None or (
            future.done() and not future.cancelled() and future.exception() is None
        )


def _context() -> Any:
    """forkserver where there is one (Linux): fast to start, and never forks a process that
    holds torch's threads; spawn elsewhere."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["generator.engines.local"])
        return context
    return multiprocessing.get_context("spawn")


@contextmanager
def _semaphores() -> Iterator[None]:
    """Linux keeps multiprocessing's semaphores in /dev/shm: a full or read-only one (a
    container's is often 64 MB) is named on the error, not taken for the output's disk."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and sys.platform.startswith("linux"):
            exc.filename = "/dev/shm"
        raise


@contextmanager
def _main_unseen() -> Iterator[None]:
    """Start workers without making them import the caller's `__main__`: a user's script
    without an `if __name__ == "__main__":` guard would otherwise run again in every worker.
    The workers only ever run generator functions (or, in tests, functions of tests/). Every
    submit is wrapped: ProcessPoolExecutor starts workers on demand, in submit()."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _worker_start(big: Any, max_file_size: int) -> None:
    """Ctrl-C is the parent's to handle: a worker does not print its own traceback. Workers run
    at a lower priority, so that on the CPU decoding fills the time the model leaves idle and
    does not take the cores it needs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):  # not on Windows
        os.nice(WORKER_NICENESS)
    share_big_decodes(big)
    limit_file_size(max_file_size)


def _decode_task(
    decode_one: Callable[[Path, int, int], Decoded | DecodeError],
    paths: Sequence[Path],
    thumb_size: int,
    preview_size: int,
) -> list[Decoded | DecodeError]:
    """A worker's task: several files, one round trip (`decode_one` is `_try_decode`, passed
    in so that a test's stand-in reaches the workers)."""
    return [decode_one(path, thumb_size, preview_size) for path in paths]
