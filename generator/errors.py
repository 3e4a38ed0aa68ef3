"""Library errors. Each message names the file involved and says what to do next.

Only the CLI turns these into click exceptions, so the library stays usable without click.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path


class GeneratorError(Exception):
    """Base class: a build cannot go on, for a reason the user can act on."""


class ConfigError(GeneratorError):
    """An option is out of range or inconsistent with another. `str()` names the options as
    the command line does (--k-max); `api`, where the message was written for both
    (config.option_error), as the Python API does (k_max)."""

    def __init__(self, message: str, api: str | None = None) -> None:
        super().__init__(message)
        self.api = api


class InputError(GeneratorError):
    """The inputs hold nothing usable, or are unsafe to use (e.g. inside the output folder)."""


class OutputError(GeneratorError):
    """The output folder cannot be written or replaced safely."""


class ModelError(GeneratorError):
    """The model or its weights cannot be loaded."""


class BudgetError(GeneratorError):
    """What is to be sent cannot fit the size asked for with --max-size."""


# What a name may hold that a terminal or a log would act on: C0 and C1 controls, DEL, and the
# line and paragraph separators. Each is shown as a Python escape (\x1b, \n), so that a file
# name can neither colour the terminal nor start a forged line of its own.
_CONTROLS = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
    **{ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"},
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    **{0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)},  # bytes not UTF-8 (surrogateescape)
}


def printable(text: str) -> str:
    """`text` with control characters escaped: every name in a message or the log goes through
    here (the CLI's log handler and error lines apply it to the whole line)."""
    return text.translate(_CONTROLS)


def check_regular(path: Path, named: str, advice: str) -> None:
    """Labels, manifests and Parquet parts are read whole, so each must be a regular file: a
    device (/dev/zero) would fill the memory and a named pipe would wait for ever. `named`: how
    the message names the file ("--labels x.csv"); a missing file is left to the reader to say."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISREG(mode):
        return
    kind = {
        stat.S_IFIFO: "a named pipe (FIFO)",
        stat.S_IFCHR: "a device",
        stat.S_IFBLK: "a device",
        stat.S_IFDIR: "a folder",
    }.get(stat.S_IFMT(mode), "a socket or other special file")
    raise InputError(f"{named}: this is {kind}, not a regular file. {advice}")


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters), for a one-line message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# What a destination answers when it cannot take what is written to it, and what to do. EFBIG:
# a file larger than its file system takes (FAT32, on many USB sticks: 4 GB) or this process may
# write.
NO_ROOM = {
    errno.ENOSPC: "Free some space there, or choose another place with {option}.",
    errno.EDQUOT: "Free some space within your disk quota, or choose another place with {option}.",
    errno.EFBIG: "A file is larger than that file system (or this process) may write: choose "
    "another place with {option}.",
    errno.EROFS: "That file system is read-only: choose another place with {option}.",
    errno.EACCES: "Make it writable, or choose another place with {option}.",
    errno.EPERM: "Make it writable, or choose another place with {option}.",
}
DENIED = (errno.EACCES, errno.EPERM)
READ_ONLY = (errno.EROFS, *DENIED)


FULL_BELOW = 16 << 20  # bytes free under which a file system that said ENOSPC is taken as full


@contextlib.contextmanager
def room_for(target: Path, option: str, kept: str) -> Iterator[None]:
    """A write that fails for want of room (full disk, quota, file too large, read-only) becomes
    one OutputError that names `target`, the remedy and what was `kept`; others pass through.
    Around the work whose unfinished files are removed on failure; `written_in` inside it tells
    where a failing write without a file name went."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_ROOM or (exc.errno in DENIED and not _beside(_named(exc), target)):
            raise
        raise OutputError(no_room(exc, target, option, kept)) from exc


def _named(exc: OSError) -> str | None:
    """The file a failed call names (a failed copy names its destination second: shutil)."""
    named = exc.filename2 if exc.filename2 is not None else exc.filename
    return os.fsdecode(named) if isinstance(named, (str, bytes)) else None


def _beside(where: str | None, target: Path) -> bool:
    """Whether a failing file is where the build writes (beside `target`), or unnamed: a refused
    read of an input elsewhere is not the output's to explain."""
    if where is None:
        return True
    parent = Path(os.path.realpath(target)).parent
    real = Path(os.path.realpath(where))
    return real == parent or parent in real.parents


@contextlib.contextmanager
def written_in(folder: Path) -> Iterator[None]:
    """A failing write() names no file: if `folder`'s file system is the one that is full or
    read-only, say so on the error, while the unfinished files that fill it are still there."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_ROOM and exc.filename is None and _says(exc.errno, folder):
            exc.filename = str(folder)
        raise


def _says(code: int, path: Path) -> bool:
    """Whether the file system holding `path` is full (ENOSPC) or read-only (EROFS); for a quota
    or a file too large, or where there is no statvfs, it cannot tell: True."""
    if code not in (errno.ENOSPC, errno.EROFS) or not hasattr(os, "statvfs"):  # not on Windows
        return True
    for place in (path, *path.parents):
        try:
            fs = os.statvfs(place)
        except OSError:
            continue
        if code == errno.EROFS:
            return bool(fs.f_flag & os.ST_RDONLY)
        return fs.f_bavail * fs.f_frsize < FULL_BELOW
    return False


def cannot_write(exc: OSError, target: Path, option: str, message: str) -> OutputError:
    """`message`, or, when the disk has no room, what `room_for` says (nothing written yet)."""
    if exc.errno in NO_ROOM:
        return OutputError(no_room(exc, target, option, "Nothing was written."))
    return OutputError(message)


def as_it_was(target: Path, what: str = "site") -> str:
    """What a build stopped by `room_for` leaves at `target` (its unfinished work is removed)."""
    if target.exists():
        return f"The {what} already at {target} is as it was."
    return f"The unfinished {what} was removed."


def no_room(exc: OSError, target: Path, option: str, kept: str) -> str:
    """The message. A failing file outside `target`'s folder (a temporary folder, say) is named;
    a write that names none is `target`'s only if its file system says so (`written_in`)."""
    code = exc.errno or 0
    reason = os.strerror(code)
    where = _named(exc)
    if where is None and not _says(code, Path(os.path.realpath(target)).parent):
        fine = "is writable" if code == errno.EROFS else "has room"
        return (
            f"Cannot write a file ({reason}), but not into {target}, whose file system {fine}. "
            "A temporary or system folder may be the one (TMPDIR, or /dev/shm, which Python's "
            f"multiprocessing needs): make room there and try again. {kept}"
        )
    if not _beside(where, target):
        remedy = "Make it writable" if code in READ_ONLY else "Make room there"
        return f"Cannot write {where}: {reason}. {remedy} and try again. {kept}"
    return f"Cannot write {target}: {reason}. {NO_ROOM[code].format(option=option)} {kept}"
