"""The cache's vectors, thumbnails and previews: Parquet parts of the store's schema, one folder
per space (`<cache>/rows/<namespace>/<thumbnail and preview spec>/part-*.parquet`).

A build appends parts with the rows it decoded: each is written under a temporary name, rows
streamed into it a row group at a time, and renamed when complete, so a reader never sees half a
part and two builds at once each add their own (a digest in two parts is served once, the newer
winning). Reading is the store's `StoredRows`: one pass keeps where each row is, the bytes are read
a chunk at a time when served. Like the SQLite index, it never costs the build: a part that cannot
be read is left out (with a warning) and its images decoded again; a folder that cannot be written
means building without saving rows this time. Only a part of ours whose footer Parquet itself
rejects is removed; when a space holds more than COMPACT_AT small parts, a build rewrites them
into full ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.errors import InputError, OutputError, first_line
from generator.storage.store import (
    PAGE_ROWS,
    PART_BYTES,
    PART_GLOB,
    PART_ROWS,
    TMP_GLOB,
    Served,
    StoredRows,
    open_store,
)
from generator.types import Row

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

ROWS_DIR = "rows"
GROUP_ROWS = 256  # rows held before they go into the open part as one row group ...
GROUP_BYTES = 16 << 20  # ... or once their thumbnails and previews reach this
COMPACT_AT = 32  # small parts (under PART_ROWS rows and PART_BYTES / 2) a space may hold
LEFTOVER_S = 24 * 3600  # a temporary part this old is a killed build's, not a running one's


def space_folder(cache: Path, namespace: str, thumbs: str, previews: str | None) -> Path:
    """Where the rows of one namespace (model, weights, decoder …) and thumbnail and preview
    specs live; the spaces of one namespace are siblings (they share vectors)."""
    spec = hashlib.sha256(f"{thumbs}\n{previews or ''}".encode()).hexdigest()[:16]
    return cache / ROWS_DIR / namespace / spec


class CacheSpace:
    """Rows of one space, served through the engine's `Known` protocol and appended to."""

    def __init__(self, folder: Path, metadata: dict[str, str]) -> None:
        self.folder, self.metadata = folder, metadata
        self.rows: StoredRows | None = None  # indexed on first use
        self.sound: set[Path] = set()  # parts that passed the index's checks: compacted
        self.siblings: list[CacheSpace] | None = None  # for vectors only, indexed on a miss
        self.added: set[str] = set()
        self.buffer: list[Row] = []
        self.buffered = 0
        self.writer = _PartWriter(folder)

    # --- reading ------------------------------------------------------------------------------

    def index(self) -> StoredRows:
        if self.rows is None:
            self.rows = StoredRows([], self.folder)
            for part in self._parts():
                self._add_part(self.rows, part)
            _release()
        return self.rows

    def has(self, digests: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
        return self.index().has(digests)

    def fetch(self, digests: Sequence[str]) -> Served:
        """Part by part: a part that fails now is left out, its rows decoded again."""
        out = self._read(digests)
        if out[0]:
            _release()  # a chunk's worth: not for each vector a cold build looks up
        return out

    def _read(self, digests: Sequence[str]) -> Served:
        import pyarrow as pa

        rows = self.index()
        by_part: dict[int, list[str]] = {}
        for digest in digests:
            if digest in rows.where:
                by_part.setdefault(rows.where[digest][0] >> 32, []).append(digest)
        out: Served = ({}, {}, {})
        for part, mine in by_part.items():
            try:
                got = rows.fetch(mine)
            except (OutputError, OSError, pa.ArrowException) as exc:  # gone, or damaged inside
                self._lost(rows, part, exc.__cause__ or exc)
                continue
            for into, values in zip(out, got, strict=True):
                into.update(values)
        return out

    def vector(self, digest: str) -> np.ndarray | None:
        """This space's vector, else a sibling's (same model, other thumbnail size)."""
        found = self._read([digest])[0].get(digest)
        if found is not None:
            return found
        if self.siblings is None:
            parent = self.folder.parent
            others = sorted(p for p in _listing(parent) if p.is_dir() and p != self.folder)
            self.siblings = [CacheSpace(p, self.metadata) for p in others]
        for sibling in self.siblings:
            found = sibling._read([digest])[0].get(digest)
            if found is not None:
                return found
        return None

    def _parts(self) -> list[Path]:
        return sorted(p for p in _listing(self.folder) if p.match(PART_GLOB))

    def _add_part(self, rows: StoredRows, part: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(part)
        except pa.ArrowInvalid as exc:  # the file is there but is not Parquet: ours, damaged
            log.warning("cached rows %s are damaged (%s); removing them", part, first_line(exc))
            part.unlink(missing_ok=True)
            return
        except OSError as exc:
            self._skip(part, exc)
            return
        try:
            rows.add(open_store(part))
        except (InputError, pa.ArrowException, OSError) as exc:
            self._skip(part, exc)
        else:
            self.sound.add(part)

    def _skip(self, part: Path, exc: BaseException) -> None:
        log.warning(
            "cannot read the cached rows %s (%s); building without them this time (they are "
            "kept as they are)",
            part,
            first_line(exc),
        )

    def _lost(self, rows: StoredRows, part: int, exc: BaseException) -> None:
        self._skip(rows.parts[part], exc)
        for digest in [d for d, at in rows.where.items() if at[0] >> 32 == part]:
            del rows.where[digest]

    # --- writing ------------------------------------------------------------------------------

    def add(self, rows: Iterable[Row]) -> None:
        """Keep rows this space lacks: those with a finite vector, sizes and a thumbnail."""
        known = self.index().where
        for row in rows:
            digest, vector = row.sha256, row.vector
            if digest is None or vector is None or not row.thumb or row.size is None:
                continue
            if digest in known or digest in self.added or not np.isfinite(vector).all():
                continue
            self.added.add(digest)
            self.buffer.append(replace(row, rel=digest))  # content-keyed: no name of yours
            self.buffered += len(row.thumb) + len(row.preview or b"")
        if len(self.buffer) >= GROUP_ROWS or self.buffered >= GROUP_BYTES:
            self._write()

    def finish(self) -> None:
        """The build is done with this space: its last part is renamed into place, and the small
        parts are compacted when there are too many."""
        self.close()
        if self.writer.usable:
            self.compact()
            self.writer.remove_leftovers()
        self.rows, self.siblings, self.added = None, None, set()  # a next run indexes afresh
        self.sound, self.writer.written = set(), []

    def close(self) -> None:
        """Keep what was added (also after an error or Ctrl-C): the open part is completed."""
        self._write()
        self.writer.close()

    def _write(self) -> None:
        from generator.storage.store import table

        if not self.buffer:
            return
        dim = len(self.buffer[0].vector)  # type: ignore[arg-type]
        self.writer.write(table(self.buffer, dim, self.metadata), self.buffered)
        self.buffer, self.buffered = [], 0

    def compact(self) -> None:
        """More than COMPACT_AT small parts: rewrite them, each digest once, into full parts,
        then remove them. A reader that still wants a removed part decodes those rows again."""
        sound = self.sound | set(self.writer.written)  # never a part of unknown content
        small = [p for p in self._parts() if p in sound and _small(p)]
        if len(small) <= COMPACT_AT:
            return
        try:
            self._merge(small)
        except Exception as exc:  # noqa: BLE001 - an optimisation never costs the build
            self.writer.close()
            why = first_line(exc)
            log.warning("could not compact the cached rows in %s (%s)", self.folder, why)

    def _merge(self, small: list[Path]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        seen: set[str] = set()
        merged: list[Path] = []
        for part in reversed(small):  # newest first: its row wins
            try:
                reader = pq.ParquetFile(part, buffer_size=1 << 20, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=PAGE_ROWS):
                    self.writer.write(*_unseen(batch, seen))
            except (OSError, pa.ArrowException) as exc:
                if not self.writer.usable:
                    return  # could not write: every small part stays
                self._skip(part, exc)
                continue
            merged.append(part)
        self.writer.close()
        if self.writer.usable:
            for part in merged:
                part.unlink(missing_ok=True)
            log.info("compacted %d cached parts in %s", len(merged), self.folder)


class _PartWriter:
    """Parts written a row group at a time under a temporary name, renamed once complete; a
    write that fails (read-only folder, full disk) stops writing for this build."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.usable = True
        self.open: Any = None  # pq.ParquetWriter
        self.tmp: Path | None = None
        self.rows, self.bytes = 0, 0
        self.written: list[Path] = []  # the parts renamed into place

    def write(self, data: pa.Table, size: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.usable or data.num_rows == 0:
            return
        try:
            if self.open is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                name = f"part-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.parquet"
                self.tmp = self.folder / f".{name}.tmp"
                self.open = pq.ParquetWriter(
                    self.tmp, data.schema, compression="zstd", write_batch_size=PAGE_ROWS
                )
            self.open.write_table(data)
        except (OSError, pa.ArrowException) as exc:
            self._give_up(exc)
            return
        self.rows += data.num_rows
        self.bytes += size
        if self.rows >= PART_ROWS or self.bytes >= PART_BYTES:
            self.close()

    def close(self) -> None:
        import pyarrow as pa

        if self.open is None:
            return
        tmp, self.open, writer = self.tmp, None, self.open
        self.rows, self.bytes = 0, 0
        assert tmp is not None
        try:
            writer.close()
            final = tmp.parent / tmp.name[1:-4]
            os.replace(tmp, final)
            self.written.append(final)
        except (OSError, pa.ArrowException) as exc:
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        log.warning(
            "cannot write into the embedding cache %s (%s); building without saving new "
            "results there this time. Check the folder's permissions and free space, or choose "
            "another with --cache-dir.",
            self.folder,
            first_line(exc),
        )
        self.usable = False
        if self.open is not None:
            with contextlib.suppress(Exception):  # it is being given up
                self.open.close()
            self.open = None
        if self.tmp is not None:  # ours and unfinished
            with contextlib.suppress(OSError):
                self.tmp.unlink(missing_ok=True)

    def remove_leftovers(self) -> None:
        """Temporary parts of builds killed long ago (a running build's are fresh)."""
        now = time.time()
        for leftover in self.folder.glob(TMP_GLOB):
            try:
                if now - leftover.stat().st_mtime > LEFTOVER_S:
                    leftover.unlink()
            except OSError:
                continue


def _unseen(batch: pa.RecordBatch, seen: set[str]) -> tuple[pa.Table, int]:
    """The batch's rows whose digest is not in `seen` (now added), and their bytes."""
    import pyarrow as pa

    keep = []
    for i, digest in enumerate(batch.column("sha256").to_pylist()):
        if digest not in seen:
            seen.add(digest)
            keep.append(i)
    kept = pa.Table.from_batches([batch.take(pa.array(keep, pa.int64()))])
    size = sum(kept.column(name).nbytes for name in ("thumb", "preview"))
    return kept, size


def _release() -> None:
    """Hand back what reading a chunk freed (Arrow's allocator and glibc's heap keep it)."""
    import pyarrow as pa

    from generator.memory import release_freed_memory

    pa.default_memory_pool().release_unused()
    release_freed_memory()


def _small(part: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(part).num_rows
        return rows < PART_ROWS and part.stat().st_size < PART_BYTES // 2
    except OSError:  # unreadable: left as it is
        return False


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # none yet, or unreadable: nothing cached there
        return []
