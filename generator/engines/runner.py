"""What both engines share around the mapper: the Engine protocol, the options, the rows an
earlier run already made (served without decoding), and input order.

clip-retrieval's shape: a reader says which files need the model (`split`), the mapper decodes
and embeds them (engines/mapper.py, engines/decode.py), the writer takes the rows (the store or
the site). An engine only decides *where* the batches run: LocalEngine in decode processes and
this process, RayEngine on a Ray cluster. Neither imports the other (pyproject.toml's contract).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from generator.config import BATCH_SIZE, FILE_SIZE, PREVIEW_SIZE, THUMB_SIZE, WORKERS
from generator.engines.decode import skip
from generator.i18n import Message
from generator.model.vit import PREPROCESS
from generator.types import CachedThumb, ModelInfo, Row, SourceImage

if TYPE_CHECKING:
    import numpy as np

    from generator.types import Progress

CHUNK = 512  # rows served without the model whose thumbnails and previews are read at once


class Engine(Protocol):
    """Rows for images: `run` yields one Row per image, in input order, streamed. `embedded`
    counts the images that went through the model, `served` those an earlier run (or the
    cache) already had, and `info` is the model that made the vectors: what ran, not what the
    driver planned (a Ray actor on a GPU reports its own device and precision). `known`: the
    rows an earlier run made, served instead of embedded again (None: none)."""

    embedded: int
    served: int
    known: Known | None

    @property
    def info(self) -> ModelInfo: ...

    def run(self, images: Sequence[SourceImage], progress: Progress) -> Iterator[Row]: ...


@dataclass(frozen=True)
class EmbedOptions:
    """What the embed stage needs from a config."""

    thumb_size: int = THUMB_SIZE.default
    batch_size: int = BATCH_SIZE.default
    preview_size: int = PREVIEW_SIZE.default  # the preview dialog's larger image; 0: none
    workers: int | None = WORKERS.default  # decode processes (None: every CPU it may use)
    max_file_size: int = FILE_SIZE.default  # larger files are skipped with a reason, never read

    @property
    def decode_side(self) -> int:
        """A decode for previews keeps more pixels, which changes the thumbnail and the model
        input a little: the cache keeps the two apart (0: no previews)."""
        if not self.preview_size:
            return 0
        return max(PREPROCESS.size, self.thumb_size, self.preview_size)


class Known(Protocol):
    """Rows an earlier run already made, by content hash (store.StoredRows): which digests it
    has, answered up front, and their data, read a chunk at a time as rows are served."""

    def has(self, digests: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
        """The digests with a vector, with a thumbnail, with a preview."""
        ...

    def fetch(
        self, digests: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, CachedThumb], dict[str, CachedThumb]]:
        """Vectors, thumbnails and previews of a chunk of digests."""
        ...

    def vector(self, digest: str) -> np.ndarray | None: ...


class Stub(NamedTuple):
    """A row to serve whole, its bytes not read yet (see InOrder.ready)."""

    index: int
    rel: str
    digest: str


@dataclass
class Split:
    """The reader's answer: rows decided without the model (skips, stubs to serve), and the
    indices of the images the mapper must decode and embed."""

    done: dict[int, Row | Stub]
    todo: list[int]
    served: int
    new: bool  # some image in `todo` has no vector anywhere: the model will be needed


def split(
    images: Sequence[SourceImage],
    digests: Sequence[str | OSError | None],
    served: Served,
    previews: bool,
) -> Split:
    """Which images are served whole (vector, thumbnail and, if asked, preview known), which are
    skipped (unreadable while hashing), and which go to the mapper."""
    vectors, thumbs, previews_known = served.has(d for d in digests if isinstance(d, str))
    done: dict[int, Row | Stub] = {}
    todo: list[int] = []
    for index, digest in enumerate(digests):
        rel = images[index].rel
        if isinstance(digest, OSError):
            done[index] = skip(rel, Message.of("skip_unreadable", error=digest.strerror or digest))
        elif digest in vectors and digest in thumbs and (not previews or digest in previews_known):
            done[index] = Stub(index, rel, digest)  # its bytes are read when it is next
        else:
            todo.append(index)
    new = any(digests[i] not in vectors for i in todo)  # None (not hashed yet) is in none
    count = sum(isinstance(item, Stub) for item in done.values())
    return Split(done, todo, count, new)


class InOrder:
    """Rows finished in any order, handed out in input order. Rows served whole wait as stubs;
    a run of them is read `chunk` at a time just before it is handed out, so their thumbnails
    and previews are never all in memory at once."""

    def __init__(
        self,
        done: dict[int, Row | Stub],
        materialise: Callable[[Sequence[Stub]], list[Row]],
        chunk: int = CHUNK,
    ) -> None:
        self.done = done
        self.materialise = materialise
        self.chunk = chunk
        self.next = 0

    @property
    def waiting(self) -> int:
        return len(self.done)

    def put(self, index: int, row: Row) -> None:
        self.done[index] = row

    def ready(self) -> Iterator[Row]:
        while self.next in self.done:
            item = self.done.pop(self.next)
            if isinstance(item, Stub):
                stubs = [item]
                while len(stubs) < self.chunk:
                    more = self.done.get(self.next + len(stubs))
                    if not isinstance(more, Stub):
                        break
                    stubs.append(more)
                    del self.done[self.next + len(stubs) - 1]
                rows = self.materialise(stubs)
                for offset, row in enumerate(rows[1:], start=1):
                    self.done[self.next + offset] = row
                item = rows[0]
                del rows  # else the chunk's bytes live on while the next chunk is read
            yield item
            self.next += 1


class Served:
    """The sources of served rows, asked in order: the first that has a digest's vector (or
    thumbnail, or preview) gives it, as the dicts merged with |= did before."""

    def __init__(self, sources: Sequence[Known]) -> None:
        self.sources = sources
        self.found: list[tuple[set[str], set[str], set[str]]] = []

    def has(self, digests: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
        wanted = list(digests)
        self.found = [source.has(wanted) for source in self.sources]
        union: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        for found in self.found:
            for into, got in zip(union, found, strict=True):
                into |= got
        return union

    def fetch(
        self, digests: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, CachedThumb], dict[str, CachedThumb]]:
        out: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
        for source, found in zip(self.sources, self.found, strict=True):
            mine = [
                d
                for d in digests
                if any(d in has and d not in got for has, got in zip(found, out, strict=True))
            ]
            if mine:
                for into, got in zip(out, source.fetch(mine), strict=True):
                    for digest, value in got.items():
                        into.setdefault(digest, value)
        return out

    def vector(self, digest: str) -> np.ndarray | None:
        for source in self.sources:
            vector = source.vector(digest)
            if vector is not None:
                return vector
        return None

    def materialise(
        self,
        stubs: Sequence[Stub],
        previews: bool,
        again: Callable[[Stub, np.ndarray | None], Row],
    ) -> list[Row]:
        """The rows of a chunk of stubs, their bytes read now; `again` makes the row of one
        whose bytes went missing meanwhile (another build replaced a damaged cache)."""
        vectors, thumbs, preview_of = self.fetch([stub.digest for stub in stubs])
        rows = []
        for stub in stubs:
            digest = stub.digest
            thumb = thumbs.get(digest)
            whole = thumb is not None and (not previews or digest in preview_of)
            if digest in vectors and whole:
                rows.append(cached_row(stub.rel, digest, vectors[digest], thumb, preview_of))
            else:
                rows.append(again(stub, vectors.get(digest)))
        return rows


def cached_row(
    rel: str,
    digest: str,
    vector: np.ndarray,
    thumb: CachedThumb,
    previews: dict[str, CachedThumb],
) -> Row:
    preview = previews.get(digest)
    return Row(
        rel,
        digest,
        thumb.size,
        thumb.data,
        thumb.thumb_size,
        vector,
        preview=preview.data or None if preview else None,
        preview_size=preview.thumb_size if preview and preview.data else None,
    )
