"""The local engine: decode in worker threads while the model embeds full batches, on this machine.

It schedules the mapper and nothing more: what is known already (the SQLite cache, or the rows of
an earlier `dinoclust embed`) is served without decoding; everything else is decoded, batched and
mapped. Rows come out in input order, streamed, so thumbnails never pile up in memory. Stopping
early (an error, Ctrl-C, the consumer closing the generator) cancels every queued decode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from generator.cache import CachedThumb, EmbeddingCache, namespace, preview_spec, thumb_spec
from generator.embed import PREPROCESS, Embedder, file_sha256
from generator.i18n import Message
from generator.imaging import Decoded, DecodeError, decode
from generator.mapper import Mapper, Row
from generator.structure import SourceImage

if TYPE_CHECKING:
    from generator.pipeline import Progress

log = logging.getLogger(__name__)

DECODE_THREADS = 2
LOOKAHEAD = 64  # decoded images waiting for the model: bounds memory whatever N is
REORDER_BATCHES = 4  # finished rows held for an earlier image's batch before it is sent early


@dataclass(frozen=True)
class EmbedOptions:
    """What the embed stage needs from a config."""

    thumb_size: int = 192
    batch_size: int = 32
    preview_size: int = 0  # the preview dialog's larger image; 0: none

    @property
    def decode_side(self) -> int:
        """A decode for previews keeps more pixels, which changes the thumbnail and the model
        input a little: the cache keeps the two apart (0: no previews)."""
        if not self.preview_size:
            return 0
        return max(PREPROCESS.size, self.thumb_size, self.preview_size)


@dataclass(frozen=True)
class Known:
    """Vectors and thumbnails an earlier run already made, by content hash."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    thumbs: dict[str, CachedThumb] = field(default_factory=dict)
    previews: dict[str, CachedThumb] = field(default_factory=dict)


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
        self._new_thumbs: list[tuple[str, CachedThumb]] = []  # for the cache, one write a batch
        self._new_previews: list[tuple[str, CachedThumb]] = []

    def run(self, images: Sequence[SourceImage], progress: Progress) -> Iterator[Row]:
        digests = self._digests(images)
        vectors, thumbs, previews = self._lookup(digests)
        done: dict[int, Row] = {}
        todo: list[int] = []
        for index, digest in enumerate(digests):
            rel = images[index].rel
            if isinstance(digest, OSError):
                done[index] = _skip(
                    rel, Message.of("skip_unreadable", error=digest.strerror or digest)
                )
            elif (
                digest is not None
                and digest in vectors
                and digest in thumbs
                and (not self.options.preview_size or digest in previews)
            ):
                thumb, preview = thumbs[digest], previews.get(digest)
                done[index] = Row(
                    rel,
                    digest,
                    thumb.size,
                    thumb.data,
                    thumb.thumb_size,
                    vectors[digest],
                    preview=preview.data or None if preview else None,
                    preview_size=preview.thumb_size if preview and preview.data else None,
                )
                self.served += 1
            else:
                todo.append(index)
        if any(not isinstance(digests[i], str) or digests[i] not in vectors for i in todo):
            prefetch = getattr(self.embedder, "prefetch", None)
            if prefetch is not None:
                prefetch()
        order = _InOrder(done)
        yield from order.ready()
        if todo:
            with progress("Embedding images", len(todo)) as advance:
                yield from self._decode_and_map(images, todo, vectors, order, advance)
        yield from order.ready()
        log.info("%d images embedded, %d served without the model", self.embedded, self.served)

    def _decode_and_map(
        self,
        images: Sequence[SourceImage],
        todo: list[int],
        vectors: dict[str, np.ndarray],
        order: _InOrder,
        advance: Callable[[int], None],
    ) -> Iterator[Row]:
        batch: list[tuple[int, str, Decoded]] = []
        limit = REORDER_BATCHES * self.options.batch_size
        with _Decoder(self.options.thumb_size, self.options.preview_size) as decoder:
            for index, result in decoder.results([images[i] for i in todo], todo):
                rel = images[index].rel
                if isinstance(result, DecodeError):
                    order.put(index, _skip(rel, result.why))
                    advance(1)
                    continue
                self._put_thumb(result)
                if result.sha256 in vectors:
                    order.put(index, _row(rel, result, vectors[result.sha256]))
                    advance(1)
                else:
                    batch.append((index, rel, result))
                if len(batch) >= self.options.batch_size or (batch and order.waiting > limit):
                    advance(self._flush(batch, order))
                    batch = []
                yield from order.ready()
            advance(self._flush(batch, order))

    def _flush(self, batch: list[tuple[int, str, Decoded]], order: _InOrder) -> int:
        """Embed one batch and store the new results in the cache; returns the batch size."""
        if self.cache is not None and self._new_thumbs:
            spec = thumb_spec(self.options.thumb_size, self.options.decode_side)
            self.cache.put_thumbs(spec, self._new_thumbs)
        if self.cache is not None and self._new_previews:
            self.cache.put_thumbs(preview_spec(self.options.preview_size), self._new_previews)
        self._new_thumbs, self._new_previews = [], []
        if not batch:
            return 0
        rows = self.mapper([(rel, decoded) for _, rel, decoded in batch])
        for (index, _, _), row in zip(batch, rows, strict=True):
            order.put(index, row)
        self.embedded += len(rows)
        if self.cache is not None:
            space = namespace(self.embedder.info, self.options.decode_side)
            self.cache.put_vectors(space, [(r.sha256, r.vector) for r in rows])
        release_freed_memory()
        return len(rows)

    def _digests(self, images: Sequence[SourceImage]) -> list[str | OSError | None]:
        """Content hashes where they help: from the cache's index, or by hashing when an earlier
        run's rows can be reused. None: decode to find out."""
        paths = [image.path for image in images]
        if self.cache is not None:
            return list(self.cache.digests(paths))
        if self.known is None:
            return [None] * len(paths)
        out: list[str | OSError | None] = []
        for path in paths:
            try:
                out.append(file_sha256(path))
            except OSError as exc:
                out.append(exc)
        return out

    def _lookup(
        self, digests: Sequence[str | OSError | None]
    ) -> tuple[dict[str, np.ndarray], dict[str, CachedThumb], dict[str, CachedThumb]]:
        wanted = [d for d in digests if isinstance(d, str)]
        vectors: dict[str, np.ndarray] = {}
        thumbs: dict[str, CachedThumb] = {}
        previews: dict[str, CachedThumb] = {}
        side = self.options.decode_side
        if self.cache is not None and wanted:
            vectors = self.cache.vectors(namespace(self.embedder.info, side), wanted)
            thumbs = self.cache.thumbs(thumb_spec(self.options.thumb_size, side), wanted)
            if self.options.preview_size:
                previews = self.cache.thumbs(preview_spec(self.options.preview_size), wanted)
        if self.known is not None:
            vectors |= {d: self.known.vectors[d] for d in wanted if d in self.known.vectors}
            thumbs |= {d: self.known.thumbs[d] for d in wanted if d in self.known.thumbs}
            previews |= {d: self.known.previews[d] for d in wanted if d in self.known.previews}
        return vectors, thumbs, previews

    def _put_thumb(self, decoded: Decoded) -> None:
        if self.cache is not None:
            thumb = CachedThumb(decoded.thumb, decoded.thumb_size, decoded.size)
            self._new_thumbs.append((decoded.sha256, thumb))
            if self.options.preview_size:  # empty data: this source needs no preview
                size = decoded.preview_size or (0, 0)
                preview = CachedThumb(decoded.preview or b"", size, decoded.size)
                self._new_previews.append((decoded.sha256, preview))


class _InOrder:
    """Rows finished in any order, handed out in input order."""

    def __init__(self, done: dict[int, Row]) -> None:
        self.done = done
        self.next = 0

    @property
    def waiting(self) -> int:
        return len(self.done)

    def put(self, index: int, row: Row) -> None:
        self.done[index] = row

    def ready(self) -> Iterator[Row]:
        while self.next in self.done:
            yield self.done.pop(self.next)
            self.next += 1


class _Decoder:
    """The decode threads; leaving the block cancels every decode not yet started."""

    def __init__(self, thumb_size: int, preview_size: int = 0) -> None:
        self.thumb_size, self.preview_size = thumb_size, preview_size
        self.pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def results(
        self, images: Sequence[SourceImage], indices: Sequence[int]
    ) -> Iterator[tuple[int, Decoded | DecodeError]]:
        """Results in input order, with at most LOOKAHEAD decodes in flight."""
        pending: deque[tuple[int, Future[Decoded | DecodeError]]] = deque()
        todo = iter(zip(indices, images, strict=True))
        for index, image in islice(todo, LOOKAHEAD):
            pending.append((index, self._submit(image.path)))
        while pending:
            index, future = pending.popleft()
            for following, image in islice(todo, 1):
                pending.append((following, self._submit(image.path)))
            yield index, future.result()

    def _submit(self, path: Path) -> Future[Decoded | DecodeError]:
        return self.pool.submit(_try_decode, path, self.thumb_size, self.preview_size)


def _row(rel: str, decoded: Decoded, vector: np.ndarray) -> Row:
    return Row(
        rel,
        decoded.sha256,
        decoded.size,
        decoded.thumb,
        decoded.thumb_size,
        vector,
        preview=decoded.preview,
        preview_size=decoded.preview_size,
    )


def _skip(rel: str, why: Message) -> Row:
    log.warning("skipped %s: %s", rel, why)
    return Row.skipped(rel, why)


def _try_decode(path: Path, thumb_size: int, preview_size: int = 0) -> Decoded | DecodeError:
    try:
        return decode(path, PREPROCESS.size, thumb_size, preview_size)
    except DecodeError as exc:
        return exc


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Give the memory freed by the last batch back to the OS. Under glibc, the model's freed
    temporaries and the decoded pixels otherwise stay in a fragmented heap: a 10,000-image build
    grew by about 90 KB per image. Returns whether anything could be asked of the C library."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
