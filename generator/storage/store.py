"""The embedding store: a Parquet dataset of one row per image (what `dinoclust embed` writes and
`dinoclust build --embeddings` reads).

The schema is a contract that other tools (Ray Data, DuckDB, Spark, clip-retrieval) and a later
distributed engine share: `path, sha256, embedding fixed_size_list<float32>[D] (null when skipped),
width, height int32, thumb binary, error string, preview binary` (the preview dialog's larger image,
null when the original is small or previews are off), with the model's identity in the file
metadata.
Each part is written under a temporary name and renamed when complete, so an interrupted run never
leaves a half-written part; a run writes a new generation of parts and removes the old one only
once the new one is whole. Reading validates everything and names the file (and row) at fault.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from generator.errors import (
    InputError,
    OutputError,
    cannot_write,
    check_regular,
    first_line,
    printable,
    written_in,
)
from generator.i18n import Message
from generator.model.vit import PREPROCESS
from generator.types import CachedThumb, ModelInfo, Row
from generator.version import __version__

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

MARKER = ".dinoclust-embeddings"
MARKER_TEXT = (
    "This folder holds embeddings written by `dinoclust embed`. The next `dinoclust embed` into\n"
    "it updates it (keeping the rows of unchanged files); other files here are left alone.\n"
)
PART_ROWS = 10_000  # rows per part file: bounds the memory a part's thumbnails take
PART_BYTES = 128 << 20  # ... and so do its thumbnails' and previews' bytes: photos' previews are
# 50-160 KB each, so 10,000 of them (and their Arrow copy) would take up to 3 GB
# rows per data page at most (Arrow checks a page's size only every write_batch_size values, 1,024
# by default): a reader decompresses whole pages, so 1,024 previews would be 100 MB or more at once
PAGE_ROWS = 64
PART_GLOB = "part-*.parquet"
TMP_GLOB = ".part-*.parquet.tmp"  # a part being written, renamed to part-*.parquet when complete
COLUMNS = ("path", "sha256", "embedding", "width", "height", "thumb", "error", "preview")
SERVE_COLUMNS = ("embedding", "width", "height", "thumb", "preview")  # what a rerun reads lazily
UNKNOWN_MODEL = "unknown model"
# File metadata keys: the first six are the contract; the others let a site built from the store
# say exactly what a one-step build says.
META_MODEL = "dinoclust.model"
META_WEIGHTS_ID = "dinoclust.weights_id"
META_PRECISION = "dinoclust.precision"
META_BACKEND = "dinoclust.backend"  # torch or openvino (--backend)
META_DEVICE = "dinoclust.device"  # cpu, cuda, mps: where the model ran (a Ray actor's own)
META_PREPROCESS = "dinoclust.preprocess"
META_THUMB_SIZE = "dinoclust.thumb_size"
META_PREVIEW_SIZE = "dinoclust.preview_size"  # 0: no previews
META_DECODER = "dinoclust.decoder"  # imaging.py's and the decoders' fingerprint (cache.py)
META_VERSION = "dinoclust.version"
META_WEIGHTS = "dinoclust.weights"
META_WEIGHTS_I18N = "dinoclust.weights_i18n"
META_RANDOM = "dinoclust.random_weights"
META_PREFIXED = "dinoclust.prefixed"
META_PREFIXES = "dinoclust.prefixes"  # several inputs: the folder inputs' prefixes (may be none)
META_ERRORS_I18N = "dinoclust.errors_i18n"
META_GENERATION = "dinoclust.generation"
META_PARTS = "dinoclust.parts"  # only in a generation's last part: how many it has
STORE_ADVICE = (
    "Give --embeddings the folder written by `dinoclust embed`, or Parquet files saved on disk."
)
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# What serving a chunk of digests gives: their vectors, thumbnails and previews.
Served = tuple[dict[str, np.ndarray], dict[str, CachedThumb], dict[str, CachedThumb]]


def schema(dim: int, metadata: dict[str, str] | None = None) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("path", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("thumb", pa.binary()),
        pa.field("error", pa.string()),
        pa.field("preview", pa.binary()),  # an addition: readers of the first seven columns work
    ]
    return pa.schema(fields, metadata=metadata)


def model_metadata(
    info: ModelInfo, thumb_size: int, prefixes: Sequence[str] | None, preview_size: int = 0
) -> dict[str, str]:
    """The file metadata that says which model made the vectors (and how the images were
    decoded: the thumbnail and preview sizes, and the decoder itself). `prefixes`: None for one
    input, else the folder inputs' prefixes (discover.folder_prefixes), for --labels folders."""
    from generator.ingest.imaging import decode_version

    i18n = info.weights_i18n.to_json() if info.weights_i18n else None
    meta = {
        META_MODEL: info.name,
        META_WEIGHTS_ID: info.weights_id,
        META_PRECISION: info.precision,
        META_BACKEND: info.backend,
        META_DEVICE: info.device,
        META_PREPROCESS: json.dumps(asdict(PREPROCESS), sort_keys=True),
        META_THUMB_SIZE: str(thumb_size),
        META_PREVIEW_SIZE: str(preview_size),
        META_DECODER: decode_version(),
        META_VERSION: __version__,
        META_WEIGHTS: info.weights,
        META_WEIGHTS_I18N: json.dumps(i18n, sort_keys=True, ensure_ascii=False),
        META_RANDOM: json.dumps(info.random_weights),
        META_PREFIXED: json.dumps(prefixes is not None),
    }
    if prefixes is not None:
        meta[META_PREFIXES] = json.dumps(list(prefixes), ensure_ascii=False)
    return meta


def table(rows: Sequence[Row], dim: int, metadata: dict[str, str]) -> pa.Table:
    """Rows → one Arrow table of the store's schema; the skip reasons' UI keys go in metadata."""
    import pyarrow as pa

    flat = np.zeros((len(rows), dim), dtype=np.float32)
    for i, row in enumerate(rows):
        if row.vector is not None:
            flat[i] = row.vector
    values = pa.array(flat.reshape(-1), type=pa.float32())
    mask = pa.array([row.vector is None for row in rows], type=pa.bool_())
    embedding = pa.FixedSizeListArray.from_arrays(values, dim, mask=mask)
    errors = {row.rel: row.error.to_json() for row in rows if row.error is not None}
    meta = {**metadata, META_ERRORS_I18N: json.dumps(errors, sort_keys=True, ensure_ascii=False)}
    columns = [
        pa.array([row.rel for row in rows], pa.string()),
        pa.array([row.sha256 for row in rows], pa.string()),
        embedding,
        pa.array([row.size[0] if row.size else None for row in rows], pa.int32()),
        pa.array([row.size[1] if row.size else None for row in rows], pa.int32()),
        pa.array([row.thumb for row in rows], pa.binary()),
        pa.array([row.error.text() if row.error else None for row in rows], pa.string()),
        pa.array([row.preview for row in rows], pa.binary()),
    ]
    return pa.Table.from_arrays(columns, schema=schema(dim, meta))


# --- the folder ----------------------------------------------------------------------------


def check_store_dir(folder: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before any work, a folder that is not ours, or one the inputs are inside."""
    out = Path(os.path.realpath(folder))
    for given in inputs:
        src = Path(os.path.realpath(given))
        if src == out or out in src.parents:
            raise InputError(
                f"{given} is inside the embeddings folder {folder}. Choose another folder with -o."
            )
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{folder} exists and is not a folder; choose another folder with -o.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise OutputError(
            f"{folder} already exists, is not empty and was not made by `dinoclust embed` (no "
            f"{MARKER} file), so nothing will be written there. Choose a new or empty folder "
            "with -o."
        )


class StoreWriter:
    """Writes one generation of parts into `folder`; `commit()` makes it the current one."""

    def __init__(self, folder: Path, metadata: dict[str, str]) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        except OSError as exc:
            why = (
                f"Cannot write into {folder} ({exc.strerror or exc}); choose a writable folder "
                "with -o."
            )
            raise cannot_write(exc, folder, "-o", why) from exc
        self.folder = folder
        self.metadata = metadata
        self.old = sorted(folder.glob(PART_GLOB))
        self.generation = 1 + max((_generation_of(p) for p in self.old), default=0)
        self.buffer: list[Row] = []
        self.buffered = 0  # bytes of the buffer's thumbnails and previews
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final) names
        self.dim: int | None = None
        self.rows = 0
        for leftover in folder.glob(TMP_GLOB):  # a killed run's: ours to remove
            leftover.unlink(missing_ok=True)

    def add(self, row: Row) -> None:
        if row.vector is not None and self.dim is None:
            self.dim = len(row.vector)
        self.buffer.append(row)
        self.buffered += len(row.thumb or b"") + len(row.preview or b"")
        if len(self.buffer) >= PART_ROWS or self.buffered >= PART_BYTES:
            self._write(last=False)

    def commit(self) -> int:
        """Write the last part (the one that says the generation is whole), rename it into
        place, then remove the previous generation. Returns the number of rows."""
        self._write(last=True)
        tmp, final = self.pending[-1]
        os.replace(tmp, final)
        for old in self.old:
            old.unlink(missing_ok=True)
        return self.rows

    def abort(self) -> None:
        """Give this generation up: its parts go, the previous generation stays current."""
        for tmp, final in self.pending:
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)

    def interrupted(self) -> None:
        """A run stopped before `commit`: only the unfinished part goes. The finished parts stay
        (not current: the generation lacks its last part) for the next run to reuse."""
        if self.pending:
            self.pending[-1][0].unlink(missing_ok=True)

    def _write(self, last: bool) -> None:
        import pyarrow.parquet as pq

        index = len(self.pending)
        name = f"part-g{self.generation:04d}-{index:05d}.parquet"
        meta = {**self.metadata, META_GENERATION: str(self.generation)}
        if last:
            meta[META_PARTS] = str(index + 1)
        data = table(self.buffer, self.dim or 384, meta)
        tmp = self.folder / f".{name}.tmp"
        try:
            with written_in(self.folder):
                pq.write_table(data, tmp, compression="zstd", write_batch_size=PAGE_ROWS)
        except BaseException:  # a full disk, say: no half-written part is left behind
            tmp.unlink(missing_ok=True)
            raise
        self.pending.append((tmp, self.folder / name))
        if not last:  # finished: a killed run loses only the rows after it
            os.replace(tmp, self.folder / name)
        self.rows += len(self.buffer)
        self.buffer, self.buffered = [], 0


def _generation_of(path: Path) -> int:
    parts = path.stem.split("-")
    if len(parts) == 3 and parts[1].startswith("g") and parts[1][1:].isdigit():
        return int(parts[1][1:])
    return 0


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A validated dataset: its part files (in order), metadata and vector dimension. Made only by
    `open_store`, whose `_metadata` has checked the sizes below are whole numbers."""

    files: tuple[Path, ...]
    metadata: dict[str, str]
    dim: int

    @property
    def thumb_size(self) -> int | None:
        value = self.metadata.get(META_THUMB_SIZE)
        return None if value is None else int(value)

    def count(self) -> int:
        """Rows in all parts, from the footers alone."""
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(readable(path)).num_rows for path in self.files)

    @property
    def preview_size(self) -> int:
        """The previews' longest side (0: the store has none)."""
        return int(self.metadata.get(META_PREVIEW_SIZE, 0))

    @property
    def prefixed(self) -> bool:
        return self.metadata.get(META_PREFIXED) == "true"

    @property
    def prefixes(self) -> tuple[str, ...] | None:
        """The folder inputs' path prefixes; None where not recorded (one input, older stores,
        other tools)."""
        recorded = json.loads(self.metadata.get(META_PREFIXES, "null"))
        return None if recorded is None else tuple(recorded)

    def model_info(self, dim: int | None) -> ModelInfo:
        """What made the vectors, as the report shows it; another tool's file is an "unknown
        model" with its dimension (`dim`, known once variable-length lists are read) in the
        weights."""
        meta = self.metadata
        if META_MODEL not in meta:
            said = Message.of("weights_unknown", dim=dim or self.dim)
            return ModelInfo(
                UNKNOWN_MODEL, said.text(), "unknown", False, "cpu", "unknown", said, "unknown"
            )
        i18n = json.loads(meta.get(META_WEIGHTS_I18N) or "null")
        said = Message.from_json(i18n) if i18n else None
        weights = meta.get(META_WEIGHTS) or (said.text() if said else meta.get(META_WEIGHTS_ID))
        return ModelInfo(
            meta[META_MODEL],
            weights or "unknown",
            meta.get(META_WEIGHTS_ID, "unknown"),
            meta.get(META_RANDOM) == "true",
            meta.get(META_DEVICE, "cpu"),
            meta.get(META_PRECISION, "unknown"),
            said,
            meta.get(META_BACKEND, "torch"),
        )


def open_store(location: Path) -> Store:
    """The current generation of parts in `location` (a folder, or one Parquet file), checked:
    each is Parquet, has `path` and a list-of-floats `embedding`, one dimension, one weights_id."""
    import pyarrow.parquet as pq

    files, fds = _pinned_parts(location)
    held = list(zip(files, fds, strict=False))  # none where descriptors are not held
    try:
        store = _checked(files, pq)
    except BaseException:
        _unpin(held)
        raise
    weakref.finalize(store, _unpin, held)
    return store


def _checked(files: tuple[Path, ...], pq: Any) -> Store:
    metadata: dict[str, str] | None = None
    dim: int | None = None
    for path in files:
        meta, file_dim = _check_part(path, pq)
        if metadata is None:
            metadata = meta
        elif meta.get(META_WEIGHTS_ID) != metadata.get(META_WEIGHTS_ID):
            raise InputError(
                f"{path}: made with weights {meta.get(META_WEIGHTS_ID) or 'unknown'}, but "
                f"{files[0]} with {metadata.get(META_WEIGHTS_ID) or 'unknown'}. Embeddings of "
                "different weights cannot be compared: make them again with one `dinoclust embed`."
            )
        if file_dim is not None and dim is not None and file_dim != dim:
            raise InputError(
                f"{path}: embeddings have {file_dim} values, but those in {files[0]} have {dim}. "
                "All embeddings must have the same dimension."
            )
        dim = dim or file_dim
    return Store(files, metadata or {}, dim or 0)


# --- a reader sees the generation it opened ------------------------------------------------

PIN_TRIES = 5  # listings tried while a concurrent `embed` replaces the generation


@dataclass
class _Pin:
    """One descriptor on a part, shared by every open store that holds that same file."""

    fd: int
    file: tuple[int, int]  # (st_dev, st_ino): the file it holds
    holders: int = 1


_PINNED: dict[Path, list[_Pin]] = {}  # part → the descriptors open stores hold on it
_PIN_LOCK = threading.Lock()  # builds, embeds and prefetch threads pin and read at once


@cache
def _by_descriptor() -> bool:
    """Whether a held descriptor can be opened again by name (Linux's /proc/self/fd); elsewhere
    nothing is held (Windows could not then remove an old generation's parts)."""
    return os.path.isdir("/proc/self/fd")


def readable(path: Path) -> str | Path:
    """Where to read a part of an open store: through the descriptor `open_store` holds on it,
    so that an `embed` that commits a new generation meanwhile (and removes this one's parts)
    cannot take it away mid-read; messages still name `path`. Stores that hold the same file
    share one descriptor, closed when the last of them lets go, so another store closing
    cannot pull it from under this read."""
    with _PIN_LOCK:
        pins = _PINNED.get(path)
        return f"/proc/self/fd/{pins[-1].fd}" if pins else path


def _pin(path: Path, fd: int) -> int:
    """Hold `fd` (just opened on `path`) for a store; returns the descriptor the store holds,
    an existing one where another store already holds the same file."""
    stat = os.fstat(fd)
    file = (stat.st_dev, stat.st_ino)
    with _PIN_LOCK:
        pins = _PINNED.setdefault(path, [])
        for pin in pins:
            if pin.file == file:
                pin.holders += 1
                os.close(fd)
                return pin.fd
        pins.append(_Pin(fd, file))
        return fd


def _pinned_parts(location: Path) -> tuple[tuple[Path, ...], list[int]]:
    """The current generation's parts, each held open. A part removed between the listing and
    its opening (`embed` committed meanwhile) means a newer generation: list again."""
    for _ in range(PIN_TRIES):
        files = _current_parts(location)
        if not _by_descriptor():
            return files, []
        fds: list[int] = []
        try:
            for path in files:  # O_NONBLOCK: a part swapped for a named pipe cannot stall this
                fds.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except FileNotFoundError:
            for fd in fds:
                os.close(fd)
            continue
        return files, [_pin(path, fd) for path, fd in zip(files, fds, strict=True)]
    raise InputError(
        f"{location}: the embeddings were replaced {PIN_TRIES} times while being opened (a "
        "`dinoclust embed` into it is running). Build again once it has finished."
    )


def _unpin(pairs: list[tuple[Path, int]]) -> None:
    with _PIN_LOCK:
        for path, fd in pairs:
            pins = _PINNED.get(path, [])
            for pin in pins:
                if pin.fd == fd:
                    pin.holders -= 1
                    if not pin.holders:
                        pins.remove(pin)
                        os.close(fd)
                    break
            if not pins:
                _PINNED.pop(path, None)


def _current_parts(location: Path) -> tuple[Path, ...]:
    if location.exists() and not location.is_dir():
        check_regular(location, str(location), STORE_ADVICE)
        return (location,)
    if not location.is_dir():
        raise InputError(
            f"{location}: no such folder. Give --embeddings the folder written by "
            "`dinoclust embed -o DIR`, or a Parquet file."
        )
    files = sorted(location.glob(PART_GLOB)) or sorted(
        p for p in location.glob("*.parquet") if not p.is_dir()
    )
    for part in files:  # before any is opened: opening a named pipe waits for a writer
        check_regular(part, str(part), STORE_ADVICE)
    if not files:
        raise InputError(
            f"{location}: no Parquet files (part-*.parquet or *.parquet) in this folder. Make "
            "them with `dinoclust embed INPUTS -o DIR`."
        )
    generations = sorted({_generation_of(p) for p in files})
    if generations == [0]:
        return tuple(files)
    for generation in reversed(generations):  # the newest complete generation wins
        parts = [p for p in files if _generation_of(p) == generation]
        if _complete(parts):
            return tuple(parts)
    raise InputError(
        f"{location}: the embeddings are incomplete (an interrupted `dinoclust embed`). Run "
        "`dinoclust embed` again to finish them."
    )


def unfinished_parts(location: Path) -> list[Path]:
    """The finished parts of generations newer than the current one (an interrupted run's):
    what a rerun can reuse before they are removed."""
    try:
        whole = _generation_of(_current_parts(location)[0])
    except InputError:
        whole = 0
    return [p for p in sorted(location.glob(PART_GLOB)) if _generation_of(p) > whole]


def _complete(parts: list[Path]) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(parts[-1]).metadata or {}
    except Exception:  # noqa: BLE001 - a broken part is reported when it is read
        return True
    count = meta.get(META_PARTS.encode())
    if count is not None and not (count.isascii() and count.isdigit()):
        return True  # not a number: _check_part says so
    return count is not None and int(count) == len(parts)


def _check_part(path: Path, pq: Any) -> tuple[dict[str, str], int | None]:
    import pyarrow as pa

    try:
        found = pq.read_schema(readable(path))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: not a Parquet file ({first_line(exc)}). Give --embeddings the folder "
            "written by `dinoclust embed`, or Parquet files with path and embedding columns."
        ) from exc
    names = found.names
    for column in ("path", "embedding"):
        if column not in names:
            raise InputError(
                f"{path}: no '{column}' column (it has: {', '.join(names) or 'none'}). A Parquet "
                "file for --embeddings needs at least 'path' and 'embedding'."
            )
    kind = found.field("embedding").type
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise InputError(
            f"{path}: the 'embedding' column is {kind}, not a list of numbers. Store each "
            "embedding as a list of float16, float32 or float64."
        )
    if not pa.types.is_floating(kind.value_type):
        raise InputError(
            f"{path}: the 'embedding' column holds {kind.value_type}, not floats. Store each "
            "embedding as a list of float16, float32 or float64."
        )
    dim = kind.list_size if pa.types.is_fixed_size_list(kind) else None
    _check_types(found, path, pa)
    return _metadata(found.metadata or {}, path), dim


# The other columns, when present, and the types they may have.
COLUMN_KINDS = {
    "path": ("text", "is_string", "is_large_string"),
    "sha256": ("text", "is_string", "is_large_string"),
    "width": ("whole numbers", "is_integer"),
    "height": ("whole numbers", "is_integer"),
    "thumb": ("bytes", "is_binary", "is_large_binary"),
    "preview": ("bytes", "is_binary", "is_large_binary"),
    "error": ("text", "is_string", "is_large_string"),
}


def _check_types(found: pa.Schema, path: Path, pa: Any) -> None:
    """Each known column holds what it must (a `width` of strings would fail later, mid-build)."""
    for name, (what, *tests) in COLUMN_KINDS.items():
        if name not in found.names:
            continue
        kind = found.field(name).type
        if not any(getattr(pa.types, test)(kind) for test in tests):
            raise InputError(
                f"{path}: the '{name}' column is {kind}, not {what}. Store it as the schema of "
                "`dinoclust embed` does, or drop that column."
            )


def _metadata(raw: dict[bytes, bytes], path: Path) -> dict[str, str]:
    """The file metadata as text, with dinoclust's own keys checked: the edge where a store's
    metadata enters, so that nothing later meets a malformed value."""
    meta: dict[str, str] = {}
    for key, value in raw.items():
        try:
            meta[key.decode()] = value.decode()
        except UnicodeDecodeError:
            raise InputError(
                f"{path}: the file metadata {printable(key.decode(errors='replace'))} is not "
                "UTF-8 text. Remove that key, or make the file again with `dinoclust embed`."
            ) from None
    for key in (META_PARTS, META_GENERATION, META_THUMB_SIZE, META_PREVIEW_SIZE):
        if key in meta and not (meta[key].isascii() and meta[key].isdigit()):
            _bad_meta(path, key, meta[key], "a whole number")
    errors = _json_meta(meta, META_ERRORS_I18N, path, "{}")
    if not isinstance(errors, dict):
        _bad_meta(path, META_ERRORS_I18N, meta[META_ERRORS_I18N], "an object of path: message")
    for rel, said in errors.items():
        check_message(said, path, f"{META_ERRORS_I18N} ({printable(rel)})")
    weights = _json_meta(meta, META_WEIGHTS_I18N, path, "null")
    if weights is not None:
        check_message(weights, path, META_WEIGHTS_I18N)
    prefixes = _json_meta(meta, META_PREFIXES, path, "[]")  # null is refused: only [] says none
    if not (isinstance(prefixes, list) and all(isinstance(p, str) and p for p in prefixes)):
        _bad_meta(path, META_PREFIXES, meta[META_PREFIXES], "a list of folder names")
    return meta


def _json_meta(meta: dict[str, str], key: str, path: Path, default: str) -> Any:
    try:
        return json.loads(meta.get(key) or default)
    except ValueError:
        _bad_meta(path, key, meta[key], "JSON")


def check_message(data: Any, path: Path, key: str) -> None:
    """A message as the store keeps it: {"key": a UI string's key, "args": {name: text}}."""
    try:
        Message.from_json(data).text()
    except (KeyError, TypeError, ValueError, AttributeError):
        _bad_meta(
            path, key, json.dumps(data, ensure_ascii=False), '{"key": a known key, "args": {…}}'
        )


def _bad_meta(path: Path, key: str, value: str, expected: str) -> NoReturn:
    shown = printable(value if len(value) <= 60 else value[:57] + "…")
    raise InputError(
        f"{path}: the file metadata {key} is {shown}, not {expected}. Remove that key, or make "
        "the file again with `dinoclust embed`."
    )


def read_rows(
    store: Store, images_root: Path | None, thumb_size: int, previews: bool
) -> Iterator[Row]:
    """Every row of the store, validated, in order, as the site stage takes it (`_with_thumb`)."""
    for row in read_rows_raw(store):
        yield _with_thumb(row, images_root, thumb_size, previews)


def _batch_rows(
    batch: pa.RecordBatch,
    path: Path,
    offset: int,
    dim: int | None,
    errors: dict[str, Any],
    seen: dict[str, tuple[Path, int]],
) -> tuple[list[Row], int | None]:
    names = batch.schema.names
    paths = batch.column("path").to_pylist()
    vectors, valid, dim = _vectors(batch.column("embedding"), path, offset, dim)
    column = {
        n: batch.column(n).to_pylist() for n in COLUMNS[1:] if n in names and n != "embedding"
    }
    out = []
    for i, rel in enumerate(paths):
        where = f"{path}, row {offset + i}"
        rel = _relative(rel, where)
        if rel in seen:
            first, row = seen[rel]
            raise InputError(
                f"{where}: path {rel} appears twice (first in {first}, row {row}). Each image "
                "must appear once."
            )
        seen[rel] = (path, offset + i)
        get = lambda name, i=i: column[name][i] if name in column else None  # noqa: E731
        width, height = get("width"), get("height")
        size = (int(width), int(height)) if width is not None and height is not None else None
        sha256 = _digest(get("sha256"), where)
        if not valid[i]:
            why, text = errors.get(rel), get("error")
            if why:
                message = Message.from_json(why)
            elif text:
                message = Message.of("skip_from_store", error=text)
            else:
                message = Message.of("skip_no_embedding")
            out.append(Row.skipped(rel, message, sha256))
            continue
        thumb = _image(get("thumb"), where, "thumb")
        preview = _image(get("preview"), where, "preview")  # an empty preview is none
        out.append(Row(rel, sha256, size, thumb, None, vectors[i], preview=preview))
    return out, dim


def _digest(value: str | None, where: str) -> str | None:
    """A content hash names the site's thumbnail files: only 64 hexadecimal digits are one."""
    if not value:
        return None
    if not HEX64.fullmatch(value):
        raise InputError(
            f"{where}: the sha256 {printable(value[:80])} is not a SHA-256 digest (64 hexadecimal "
            "digits). Fix that cell, or drop the sha256 column."
        )
    return value.lower()


def _image(data: bytes | None, where: str, column: str) -> bytes | None:
    """A stored thumbnail or preview as the site may hold it: pixels only (imaging.site_image)."""
    from generator.ingest.imaging import DecodeError, site_image

    if not data:
        return None
    try:
        return site_image(data)
    except DecodeError as exc:
        raise InputError(
            f"{where}: the {column} is not usable ({exc}). Drop that cell, or make the store "
            "again with `dinoclust embed`."
        ) from None


def _vectors(
    column: pa.Array, path: Path, offset: int, dim: int | None
) -> tuple[np.ndarray, list[bool], int | None]:
    """(rows, D) float32 from any list of floats; checks one dimension and finite values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = column.is_valid().to_pylist()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    for i, (ok, length) in enumerate(zip(valid, lengths, strict=True)):
        if not ok:
            continue
        if length == 0:
            raise InputError(f"{path}, row {offset + i}: the embedding is empty.")
        if dim is None:
            dim = int(length)
        if length != dim:
            raise InputError(
                f"{path}, row {offset + i}: the embedding has {length} values, but earlier ones "
                f"have {dim}. All embeddings must have the same dimension."
            )
    vectors = np.zeros((len(column), dim or 0), dtype=np.float32)
    mask = np.asarray(valid, dtype=bool)
    if mask.any():
        if pa.types.is_fixed_size_list(column.type):
            size = column.type.list_size
            flat = column.values.slice(column.offset * size, len(column) * size)
            raw = flat.to_numpy(zero_copy_only=False).reshape(len(column), size)[mask]
        else:
            raw = pc.list_flatten(column).to_numpy(zero_copy_only=False).reshape(-1, dim)
        raw = np.asarray(raw, dtype=np.float64)
        with np.errstate(over="ignore"):
            vectors[mask] = raw.astype(np.float32)
        _check_finite(raw, vectors[mask], np.flatnonzero(mask), path, offset)
    return vectors, valid, dim


def _check_finite(
    raw: np.ndarray, converted: np.ndarray, rows: np.ndarray, path: Path, offset: int
) -> None:
    """NaN or infinity as given, or a float64 beyond float32's range (infinite once converted)."""
    for values, what in ((raw, "NaN or infinity"), (converted, "a value too large for float32")):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            row = int(rows[np.argmax(bad)])
            raise InputError(
                f"{path}, row {offset + row}: the embedding holds {what}. Fix or drop that row."
            )


def _relative(rel: Any, where: str) -> str:
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{where}: the path is empty. Every row needs its image's path.")
    if "\x00" in rel:
        raise InputError(
            f"{where}: the path {printable(rel)} holds a NUL character, which no file name can. "
            "Fix that cell."
        )
    posix = rel.replace("\\", "/")
    pure = PurePosixPath(posix)
    if pure.is_absolute() or (len(posix) > 1 and posix[1] == ":") or ".." in pure.parts:
        raise InputError(
            f"{where}: the path {rel} is not relative. Paths must be relative (as the page "
            "shows them), e.g. holidays/beach.jpg; they never reach the page as absolute paths."
        )
    return posix


def _with_thumb(row: Row, images_root: Path | None, thumb_size: int, previews: bool) -> Row:
    """The row as the site stage takes it: sizes of its stored images, a thumbnail made when the
    store has none (from `images_root / path` when given, else a tile with the file name), and
    its preview left out when `previews` is False (--preview-size 0)."""
    from generator.ingest.imaging import DecodeError, decode, name_tile

    if not previews and row.preview is not None:
        row = replace(row, preview=None)
    if row.vector is None:
        return row
    if row.preview:
        row = replace(row, preview_size=image_size(row.preview))
    if row.thumb:
        return replace(row, thumb_size=image_size(row.thumb))
    if images_root is not None:
        try:
            decoded = decode(images_root / row.rel, PREPROCESS.size, thumb_size)
        except DecodeError as exc:
            log.warning("%s: no thumbnail (%s); showing its name", images_root / row.rel, exc)
        else:
            size = row.size or decoded.size
            return replace(row, thumb=decoded.thumb, thumb_size=decoded.thumb_size, size=size)
    tile = name_tile(PurePosixPath(row.rel).name, thumb_size)
    return replace(row, thumb=tile, thumb_size=(thumb_size, thumb_size))


INDEX_BATCH = 4096  # rows a part is indexed by


def image_size(data: bytes) -> tuple[int, int]:
    """A stored thumbnail's or preview's (width, height): from the WebP header when it is one
    (0.7 µs; Pillow's open took 120 µs, a third of a warm build of 2,000 photos), else Pillow."""
    from generator.ingest.imaging import thumb_dimensions

    return _webp_size(data) or thumb_dimensions(data)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP's first chunk states (lossy VP8, lossless VP8L, extended VP8X)."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = int.from_bytes(data[26:28], "little"), int.from_bytes(data[28:30], "little")
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


SERVE_BATCH = 32  # rows a part is read by when a rerun serves them: bounds the bytes held (at
# 128, a warm build of 2,000 photos with 800 px previews peaked 56 MB higher: bench_rerun.py)
NOWHERE = -1


class StoredRows:
    """What a rerun can keep of earlier stores, by content hash. One validating pass (the checks
    of `read_rows_raw`) keeps only where each vector, thumbnail and preview is; the data are read
    a chunk at a time when they are served, so a store of millions of rows costs only this index.
    Later rows and stores win. A store made with previews has one for every image (empty where
    the original needed none)."""

    def __init__(self, stores: Sequence[Store], folder: Path) -> None:
        self.folder = folder  # named in the advice when a part cannot be read
        self.parts: list[Path] = []
        self.where: dict[str, tuple[int, int, int]] = {}  # digest → vector, thumb, preview
        self._cursors: dict[int, _PartCursor] = {}
        for store in stores:
            self.add(store)

    def __len__(self) -> int:
        return len(self.where)

    def has(self, digests: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
        """The digests with a vector, with a thumbnail, with a preview."""
        where = self.where
        found = [d for d in set(digests) if d in where]
        return (
            set(found),
            {d for d in found if where[d][1] != NOWHERE},
            {d for d in found if where[d][2] != NOWHERE},
        )

    def vector(self, digest: str) -> np.ndarray | None:
        return self.fetch([digest])[0].get(digest)

    def fetch(self, digests: Sequence[str]) -> Served:
        """Vectors, thumbnails and previews of a chunk of digests, read part by part in row
        order: consecutive rows of a part cost one sequential read."""
        found = {d: self.where[d] for d in digests if d in self.where}
        read = self._read({at for where in found.values() for at in where if at != NOWHERE})
        vectors: dict[str, np.ndarray] = {}
        thumbs: dict[str, CachedThumb] = {}
        previews: dict[str, CachedThumb] = {}
        for digest, (at_vector, at_thumb, at_preview) in found.items():
            vectors[digest] = read[at_vector][0]
            if at_thumb != NOWHERE:
                _, size, thumb, _ = read[at_thumb]
                thumb = _served_image(thumb)
                if thumb:  # else none: the engine decodes the original again
                    thumbs[digest] = CachedThumb(thumb, image_size(thumb), size)
            if at_preview != NOWHERE:
                _, size, _, data = read[at_preview]
                data = _served_image(data)
                if data is not None:
                    preview_size = image_size(data) if data else (0, 0)
                    previews[digest] = CachedThumb(data, preview_size, size)
        return vectors, thumbs, previews

    def _read(self, locations: set[int]) -> dict[int, tuple[Any, Any, Any, Any]]:
        out: dict[int, tuple[Any, Any, Any, Any]] = {}
        by_part: dict[int, list[int]] = {}
        for at in sorted(locations):
            by_part.setdefault(at >> 32, []).append(at & 0xFFFFFFFF)
        for part, rows in by_part.items():
            cursor = self._cursors.get(part)
            if cursor is None:
                if len(self._cursors) >= 2:  # the parts being served now: one, or two at a seam
                    self._cursors.pop(next(iter(self._cursors)))
                cursor = self._cursors[part] = _PartCursor(self.parts[part], self.folder)
            for row, values in cursor.rows(rows).items():
                out[part << 32 | row] = values
        return out

    def add(self, store: Store) -> None:
        """Index a store's parts, each whole or not at all: a part that fails its checks
        (InputError) or its read adds nothing, so a caller may go on without it (the cache)."""
        import pyarrow as pa

        seen: dict[str, tuple[Path, int]] = {}
        dim = store.dim or None
        with_previews = store.preview_size > 0
        for path in store.files:
            number = len(self.parts)
            self.parts.append(path)
            entries, dim = self._part_entries(path, number, dim, seen)
            for digest, at, thumbed, sized in entries:
                _, thumb, preview = self.where.get(digest, (NOWHERE, NOWHERE, NOWHERE))
                if sized:
                    thumb = at if thumbed else thumb
                    preview = at if with_previews else preview
                self.where[digest] = (at, thumb, preview)
        # Arrow's allocator keeps what the index's batches freed: 20,000 rows left 220 MB held
        pa.default_memory_pool().release_unused()

    def _part_entries(
        self, path: Path, number: int, dim: int | None, seen: dict[str, tuple[Path, int]]
    ) -> tuple[list[tuple[str, int, bool, bool]], int | None]:
        """(digest, location, has a thumbnail, has sizes) of each served row of one part."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        meta, _ = _check_part(path, pq)
        errors = json.loads(meta.get(META_ERRORS_I18N) or "{}")
        names = set(pq.read_schema(readable(path)).names)
        columns = [c for c in COLUMNS if c in names and c != "preview"]
        entries: list[tuple[str, int, bool, bool]] = []
        offset = 0
        reader = pq.ParquetFile(readable(path), buffer_size=1 << 20, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=INDEX_BATCH, columns=columns):
            thumbed = [False] * batch.num_rows
            if "thumb" in names:
                lengths = pc.binary_length(batch.column("thumb")).fill_null(0)
                thumbed = pc.greater(lengths, 0).to_pylist()
                batch = batch.drop_columns(["thumb"])
            rows, dim = _batch_rows(batch, path, offset, dim, errors, seen)
            for i, row in enumerate(rows):
                if row.sha256 and row.vector is not None:
                    at = number << 32 | (offset + i)
                    entries.append((row.sha256, at, thumbed[i], bool(row.size)))
            offset += batch.num_rows
        return entries, dim


def _served_image(data: bytes | None) -> bytes | None:
    """A kept thumbnail or preview, pixels only; None where it is not an image (b"": none)."""
    from generator.ingest.imaging import DecodeError, site_image

    if not data:
        return b""
    try:
        return site_image(data)
    except DecodeError:
        return None


class _PartCursor:
    """One part read forward in batches of SERVE_BATCH rows; an earlier row starts it again."""

    def __init__(self, path: Path, folder: Path) -> None:
        import pyarrow.parquet as pq

        self.path, self.folder = path, folder
        self.columns = [c for c in SERVE_COLUMNS if c in pq.read_schema(readable(path)).names]
        self.batches: Iterator[Any] = iter(())
        self.start, self.count = 0, 0
        self.batch: Any = None
        self.vectors: np.ndarray | None = None

    def rows(self, wanted: Sequence[int]) -> dict[int, tuple[Any, Any, Any, Any]]:
        """(vector, size, thumb, preview) of each wanted row (sorted)."""
        import pyarrow as pa

        out = {}
        try:
            for row in wanted:
                if self.batch is None or row < self.start:
                    self._restart()
                while row >= self.start + self.count:
                    self._next()
                out[row] = self._values(row - self.start)
        except (pa.ArrowException, OSError, StopIteration) as exc:
            why = "it ended early" if isinstance(exc, StopIteration) else first_line(exc)
            raise OutputError(
                f"{self.path}: cannot be read ({why}). The previous embeddings in {self.folder} "
                "cannot be kept: use --overwrite to make them again."
            ) from exc
        return out

    def _restart(self) -> None:
        import pyarrow.parquet as pq

        # streamed a page at a time, not whole column chunks (pre_buffer reads those)
        reader = pq.ParquetFile(readable(self.path), buffer_size=1 << 20, pre_buffer=False)
        self.batches = reader.iter_batches(
            batch_size=SERVE_BATCH, columns=self.columns, use_threads=False
        )
        self.start, self.count, self.batch = 0, 0, None
        self._next()

    def _next(self) -> None:
        self.start += self.count
        self.batch = next(self.batches)
        self.count = self.batch.num_rows
        self.vectors = None

    def _values(self, i: int) -> tuple[Any, Any, Any, Any]:
        batch = self.batch
        if self.vectors is None:
            self.vectors, _, _ = _vectors(batch.column("embedding"), self.path, self.start, None)
        width, height, thumb, preview = (
            batch.column(name)[i].as_py() if name in batch.schema.names else None
            for name in ("width", "height", "thumb", "preview")
        )
        size = (int(width), int(height)) if width is not None and height is not None else None
        return self.vectors[i].copy(), size, thumb, preview


def read_rows_raw(store: Store) -> Iterator[Row]:
    """Every row as stored, validated, in order (read_rows makes the missing thumbnails)."""
    import pyarrow.parquet as pq

    seen: dict[str, tuple[Path, int]] = {}
    dim = store.dim or None
    for path in store.files:
        meta, _ = _check_part(path, pq)
        errors = json.loads(meta.get(META_ERRORS_I18N) or "{}")
        offset = 0
        for batch in pq.ParquetFile(readable(path)).iter_batches(batch_size=4096):
            rows, dim = _batch_rows(batch, path, offset, dim, errors, seen)
            offset += batch.num_rows
            yield from rows
