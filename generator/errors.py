"""Library errors. Each message names the file involved and says what to do next.

Only the CLI turns these into click exceptions, so the library stays usable without click.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class GeneratorError(Exception):
    """Base class: a build cannot go on, for a reason the user can act on."""


class ConfigError(GeneratorError):
    """An option is out of range or inconsistent with another."""


class InputError(GeneratorError):
    """The inputs hold nothing usable, or are unsafe to use (e.g. inside the output folder)."""


class OutputError(GeneratorError):
    """The output folder cannot be written or replaced safely."""


class ModelError(GeneratorError):
    """The model or its weights cannot be loaded."""


class BudgetError(GeneratorError):
    """What is to be sent cannot fit the size asked for with --max-size."""


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
}


@contextlib.contextmanager
def room_for(target: Path, option: str, kept: str) -> Iterator[None]:
    """A write that fails for want of room (full disk, quota, file too large, read-only) becomes
    one OutputError that names `target`, the remedy and what was `kept`; others pass through."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        raise OutputError(no_room(exc, target, option, kept)) from exc


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
    """The message; a failing file outside `target`'s folder (a temporary folder, say) is named.
    A failed copy names its source first and its destination second (shutil)."""
    code = exc.errno or 0
    reason = os.strerror(code)
    named = exc.filename2 if exc.filename2 is not None else exc.filename
    where = os.fsdecode(named) if isinstance(named, (str, bytes)) else None
    parent = Path(os.path.realpath(target)).parent
    if where is not None and parent not in Path(os.path.realpath(where)).parents:
        return f"Cannot write {where}: {reason}. Make room there and try again. {kept}"
    return f"Cannot write {target}: {reason}. {NO_ROOM[code].format(option=option)} {kept}"
