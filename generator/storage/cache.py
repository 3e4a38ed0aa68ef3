"""The embedding cache: embed each image once, ever.

The user's cache folder holds:
- one SQLite file with two tables: `files`, (absolute path, size, mtime) → content hash, so a warm
  rebuild only stats files; `analyses`, recent PCA/K-means results;
- the rows of the images it decoded (content hash → feature vector, thumbnail, preview, sizes) as
  Parquet parts of the store's schema (cachestore.py), in one folder per namespace (model, weights
  identity, preprocessing, precision, decoder: renamed or moved files are still hits) and
  thumbnail/preview spec.
SQLite makes every write atomic (in WAL mode, so readers never wait for a writer), parts are
renamed into place when complete. The cache never loses data it could keep: a locked, read-only or
failing file means "build without the cache this time" and a warning; only a file that SQLite
itself verifies is not a sound database (or a part Parquet rejects) is discarded. The cache lives
only on the user's machine: absolute paths in it never reach the site. An earlier layout's file
(cache-v1.sqlite, which also held vectors and thumbnails) is never read, written or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from generator.config import option_error
from generator.ingest.imaging import THUMB_FORMAT, THUMB_QUALITY, decode_version
from generator.model.vit import PREPROCESS
from generator.storage.cachestore import CacheSpace, space_folder
from generator.types import ModelInfo

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DB_NAME = "cache-v2.sqlite"  # files and analyses only; the rows are Parquet parts (cachestore)
OLD_DB_NAME = "cache-v1.sqlite"  # also held embeddings and thumbs: left alone (README: reclaim)
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analyses (key TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
CHUNK = 500  # SQLite's limit on bound variables is 999 in old builds
ANALYSES_KEPT = 20  # recent PCA/K-means results; older ones are dropped
LOCK_TIMEOUT_S = 10.0  # how long to wait for another build holding the cache before going without


def default_cache_dir() -> Path:
    """$DINOCLUST_CACHE_DIR, else the platform's per-user cache folder."""
    if os.environ.get("DINOCLUST_CACHE_DIR"):
        return Path(os.environ["DINOCLUST_CACHE_DIR"]).expanduser()
    return platform_cache_dir()


def platform_cache_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dinoclust"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "dinoclust" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dinoclust"


def namespace(info: ModelInfo, decode_side: int = 0) -> str:
    """Everything that changes a feature vector: the backend does (OpenVINO's kernels round
    differently), the device does not. `decode_side`: the long side a decode with previews must
    keep, which changes the JPEG draft scale and so, slightly, the model input (0: no previews,
    as before)."""
    key = {
        "version": CACHE_VERSION,
        "model": info.name,
        "weights": info.weights_id,
        "preprocess": asdict(PREPROCESS),
        "precision": info.precision,
        "decode": decode_version(),
        **({"decode_side": decode_side} if decode_side else {}),
        **({"backend": info.backend} if info.backend != "torch" else {}),  # torch: as before
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def thumb_spec(thumb_size: int, decode_side: int = 0) -> str:
    """Everything that changes a cached thumbnail (`decode_side`: as for `namespace`)."""
    side = f"-d{decode_side}" if decode_side else ""
    return f"{THUMB_FORMAT}-q{THUMB_QUALITY}-{thumb_size}{side}-{decode_version()}"


def preview_spec(preview_size: int) -> str:
    """Everything that changes a cached preview (empty data: the source needs none)."""
    return f"{THUMB_FORMAT}-q{THUMB_QUALITY}-preview{preview_size}-{decode_version()}"


class EmbeddingCache:
    """The SQLite index and memo plus the Parquet rows, never costing the build: when the file
    cannot be used (locked by another build, read-only, failing disk) the build goes on without
    it (`db` is None); the rows' parts are used apart from it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / DB_NAME
        _check_folder(folder)
        self.db: sqlite3.Connection | None = None
        self.spaces: dict[Path, CacheSpace] = {}
        try:
            self.db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._trouble(exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM files").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _verified_damaged(self) -> bool:
        """Damaged if quick_check fails (not merely locked) or reports a problem."""
        try:
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S)
        except sqlite3.Error:
            return False
        try:
            return db.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        except sqlite3.OperationalError:
            return False
        except sqlite3.DatabaseError:
            return True
        finally:
            db.close()

    def _give_up(self, exc: Exception) -> None:
        log.warning(
            "cannot use the embedding cache %s (%s); building without it this time (it is kept "
            "as it is). If another build is using it, let it finish; else check the folder's "
            "permissions, or choose another with --cache-dir.",
            self.path,
            exc,
        )

    def _trouble(self, exc: sqlite3.Error) -> None:
        """Give up, or start afresh (at the start or mid-build): the file is discarded only when
        SQLite verifies it is not a sound database."""
        self.close()
        # misused (InterfaceError), locked, read-only, I/O, or not verified damaged: keep it
        suspect = isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.OperationalError
        )
        if not suspect or not self._verified_damaged():
            self._give_up(exc)
            return
        log.warning("embedding cache %s is damaged (%s); starting a new one", self.path, exc)
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        try:
            self.db = self._connect()
        except sqlite3.DatabaseError as again:
            self._give_up(again)

    def close(self) -> None:
        """Also completes the parts being written (what was added is kept)."""
        for space in self.spaces.values():
            space.close()
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
        self.db = None

    # --- content hashes, memoised by (path, size, mtime) -------------------------------------

    def digests(self, paths: Sequence[Path]) -> list[str | OSError | None]:
        """Content hash per path from the (path, size, mtime) memo, the OSError that stopped
        reading it, or None: not known, the decode workers hash it (`remember` keeps it)."""
        keys = [_path_key(p) for p in paths]
        known = self._select("SELECT path, size, mtime_ns, sha256 FROM files WHERE path IN", keys)
        memo = {row[0]: row[1:] for row in known}
        out: list[str | OSError | None] = []
        for path, key in zip(paths, keys, strict=True):
            try:
                st = path.stat()
            except OSError as exc:
                out.append(exc)
                continue
            hit = memo.get(key)
            fresh = hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns
            out.append(hit[2] if fresh else None)
        return out

    def remember(self, items: Iterable[tuple[Path, tuple[int, int], str]]) -> None:
        """Memoise content hashes the workers found: (path, (size, mtime_ns) read, sha256)."""
        rows = [(_path_key(p), size, mtime, digest) for p, (size, mtime), digest in items]
        self._write("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)

    # --- vectors, thumbnails and previews ------------------------------------------------------

    def space(
        self, space: str, thumbs: str, previews: str | None, metadata: dict[str, str]
    ) -> CacheSpace:
        """The rows of one namespace and thumbnail/preview spec (`metadata`: the parts' file
        metadata, store.model_metadata)."""
        folder = space_folder(self.folder, space, thumbs, previews)
        if folder not in self.spaces:
            self.spaces[folder] = CacheSpace(folder, metadata)
        return self.spaces[folder]

    # --- PCA / K-means results ----------------------------------------------------------------

    def analysis(self, key: str) -> bytes | None:
        """A packed analysis (analysis/cached.py), or None."""
        rows = self._select("SELECT data FROM analyses WHERE key IN", [key])
        return bytes(rows[0][0]) if rows else None

    def put_analysis(self, key: str, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO analyses VALUES (?, ?)", [(key, data)])
        self._write(
            "DELETE FROM analyses WHERE rowid NOT IN "
            "(SELECT rowid FROM analyses ORDER BY rowid DESC LIMIT ?)",
            [(ANALYSES_KEPT,)],
        )

    # --- plumbing -----------------------------------------------------------------------------

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple]:
        """`sql … IN (keys)` in chunks; a damaged database yields no rows (and starts afresh)."""
        rows: list[tuple] = []
        if self.db is None:
            return rows
        try:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += self.db.execute(f"{sql} ({marks})", chunk).fetchall()
        except sqlite3.Error as exc:
            self._trouble(exc)
            return []
        return rows

    def _write(self, sql: str, rows: list[tuple]) -> None:
        if not rows or self.db is None:
            return
        try:
            with self.db:
                self.db.executemany(sql, rows)
        except sqlite3.Error as exc:  # locked, disk full, read-only: not fatal
            self._trouble(exc)


CACHE_MARKER = ".dinoclust-cache"
CACHE_MARKER_TEXT = (
    "This folder is dinoclust's embedding cache (--cache-dir). Deleting it costs only time: the\n"
    "next build embeds the images again.\n"
)
# What an unmarked cache of an earlier dinoclust holds: a folder of only these is taken for one.
CACHE_NAMES = frozenset(
    {CACHE_MARKER, DB_NAME, OLD_DB_NAME, "rows", "openvino"}
    | {
        f"{name}{suffix}"
        for name in (DB_NAME, OLD_DB_NAME)
        for suffix in ("-wal", "-shm", "-journal")
    }
)


def check_cache_dir(
    folder: Path, inputs: Sequence[Path] = (), named: str = "{cache_dir=folder}"
) -> None:
    """Refuse, before any work, a cache folder inside the inputs (the cache would be written into
    the user's photos) or one that holds other files (a damaged-looking `cache-v2.sqlite` of
    someone else's would be replaced). Each refusal says why, naming the folder as `named`
    (--cache-dir, or the variable that set it)."""
    real = Path(os.path.realpath(folder))
    if real == Path(os.path.realpath(platform_cache_dir())):
        inputs = ()  # the platform's own cache folder, even for `dinoclust build ~`
    for given in inputs:
        src = Path(os.path.realpath(given))
        if real == src or src in real.parents:
            raise option_error(
                named + " is inside the input {given}: the cache would be written "
                "among your images. Choose a cache folder outside the inputs.",
                folder=folder,
                given=given,
            )
    if not folder.is_dir() or (folder / CACHE_MARKER).is_file():
        return
    try:
        names = {entry.name for entry in folder.iterdir()}
    except OSError:
        return  # _check_folder says what is wrong with it
    others = sorted(names - CACHE_NAMES)
    if others:
        raise option_error(
            named + " is not empty and is not a dinoclust cache (it holds {other}; "
            "a cache holds {marker}). Choose a new or empty folder, or build without the cache "
            "with {no_cache}.",
            folder=folder,
            other=others[0],
            marker=CACHE_MARKER,
        )
    if DB_NAME in names and not _our_database(folder / DB_NAME):
        raise option_error(
            named + " holds a {db} that dinoclust did not write (no {marker} beside "
            "it, and not its tables). Choose a new or empty folder, or build without the cache "
            "with {no_cache}.",
            folder=folder,
            db=DB_NAME,
            marker=CACHE_MARKER,
        )


def _our_database(path: Path) -> bool:
    """Whether `path` is a SQLite file with the cache's `files` table (opened read-only)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1)) as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    except sqlite3.Error:
        return False
    return ("files",) in found


def _check_folder(folder: Path) -> None:
    """The cache folder must be a folder we can write in; else say which and what to do."""
    check_cache_dir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / CACHE_MARKER).is_file():
            (folder / CACHE_MARKER).write_text(CACHE_MARKER_TEXT, encoding="utf-8")
        usable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
        why = "not writable"
    except OSError as exc:
        usable, why = False, exc.strerror or str(exc)
    if not usable:
        raise option_error(
            "Cannot use the cache folder {folder} ({why}). Choose a writable folder with "
            "{cache_dir DIR}, or build without the cache with {no_cache}.",
            folder=folder,
            why=why,
        )


def _path_key(path: Path) -> str:
    """The memo's key for a file: its real path, as UTF-8 text. A name that is not UTF-8 (its
    bytes reach Python as surrogates, which SQLite's text cannot hold) is keyed by its bytes in
    hex after a NUL, which no path can contain, so no two files share a key."""
    real = str(path.resolve())
    try:
        real.encode("utf-8")
    except UnicodeEncodeError:
        return "\0" + os.fsencode(real).hex()
    return real
