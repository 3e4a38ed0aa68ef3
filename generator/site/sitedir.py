"""The output folder: never delete what dinoclust did not create.

A build writes into a temporary folder beside the output and swaps it in only when complete, so
an interrupted build leaves the previous site intact. An existing output folder is replaced only if
it is empty or carries our marker file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from generator.errors import InputError, OutputError, cannot_write
from generator.ingest.discover import file_sha256

log = logging.getLogger(__name__)

MARKER = ".dinoclust-site"
MARKER_TEXT = (
    "This folder was written by dinoclust. The next `dinoclust build` into it replaces what\n"
    "dinoclust wrote; other files and folders (a CNAME or README at the top, a logo in\n"
    "static/) are kept.\n"
)
WRITTEN_HEADER = "What the last build wrote, besides its thumbnails and previews:"
HASHES_HEADER = "The sha256 of each (a file changed since is someone's edit, and kept):"
HASHED_LIMIT = 64 << 20  # larger files (embeddings.npy of a big site) are not hashed
HASHED_FOLDERS = frozenset({"thumbs", "previews"})
HASHED = re.compile(r"(thumbs|previews)/[0-9a-f]{20}\.[a-z0-9]+")  # named by content hash
# Every name dinoclust writes at the top of a site: all else there was put in by someone else.
SITE_NAMES = frozenset(
    {
        "index.html",
        "report.json",
        "report.md",
        "assignments.csv",
        "assignments.parquet",
        "metrics.csv",
        "tables",
        "data",
        "thumbs",
        "previews",
        "static",
        "embeddings.npy",
        "pca.npy",
        ".nojekyll",
        MARKER,
    }
)
STAGING_TAG = ".dinoclust-tmp-"
RETIRED_TAG = ".dinoclust-old-"
LOCK_TAG = ".dinoclust-lock"


def check_output(output: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before any work is done, an output that would destroy or swallow user files."""
    out = Path(os.path.realpath(output))
    for given in inputs:
        src = Path(os.path.realpath(given))
        if src == out or out in src.parents:
            raise InputError(
                f"{given} is inside the output folder {output}: the build would replace it. "
                "Choose another output folder with -o."
            )
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise OutputError(f"{output} exists and is not a folder; choose another output with -o.")
    if output.is_dir() and not is_ours(output):
        raise OutputError(
            f"{output} already exists, is not empty and was not made by dinoclust (no {MARKER} "
            "file), so it will not be replaced. Choose a new or empty folder with -o."
        )
    written = written_before(output)  # None too where there is no output folder yet
    if written is not None:  # a file someone put at one of our names: the build would replace it
        for entry in sorted(output.iterdir()):
            ours = entry.name in SITE_NAMES and entry.name != MARKER
            if ours and entry.is_file() and entry.name not in written:
                raise OutputError(
                    f"{entry} was not written by dinoclust, but a build writes a file of that "
                    f"name. Move it out of {output}, then build again."
                )


def is_ours(folder: Path) -> bool:
    try:
        return not any(folder.iterdir()) or (folder / MARKER).is_file()
    except OSError:
        return False


def staging_exclusions(output: Path) -> list[Path]:
    """Folders discovery must skip: the output itself and its staging/retired siblings."""
    parent = output.resolve().parent
    return [output, *(_siblings(parent, output.name) if parent.is_dir() else [])]


def open_staging(output: Path) -> Path:
    """A fresh, marked temporary folder beside `output`; leftovers of killed builds are removed."""
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for leftover in _siblings(parent, output.name):
            if not output.exists() and (leftover / "site" / MARKER).is_file():
                log.warning("restoring %s from an interrupted build", output)
                os.replace(leftover / "site", output)
            if (leftover / MARKER).is_file():
                log.info("removing %s, left over from an interrupted build", leftover.name)
            discard(leftover)
        remove_stale_lock(output)
        staging = open_marked(parent, f".{output.name}{STAGING_TAG}")
        staging.chmod(0o777 & ~umask())  # mkdtemp makes it private; a site is for publishing
    except OSError as exc:
        raise _cannot_write_beside(exc, output, "-o", "output folder") from exc
    return staging


def _cannot_write_beside(exc: OSError, target: Path, option: str, place: str) -> OutputError:
    message = f"Cannot write beside {target} ({exc.strerror or exc}); "
    return cannot_write(exc, target, option, f"{message}choose a writable {place} with {option}.")


def open_marked(parent: Path, prefix: str) -> Path:
    """A new temporary folder `parent/prefix…`, marked at once so that a leftover is ours to
    remove."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    return folder


def publish(staging: Path, output: Path) -> None:
    """Swap the finished site in; the old site (ours, checked) is removed only afterwards."""
    check_output(output, [])
    retired = None
    if output.exists():
        retired = open_marked(staging.parent, f".{output.name}{RETIRED_TAG}")
        os.replace(output, retired / "site")
    os.replace(staging, output)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def carry_foreign(
    output: Path, staging: Path, ours: Callable[[str], bool] = SITE_NAMES.__contains__
) -> list[str]:
    """Copy into the new site what someone added to the old one (a CNAME for GitHub Pages, a
    README, notes at the top; a logo in static/): a rebuild must not drop files dinoclust did
    not write. Copied, not moved, so the old site keeps them until the new one is in place.
    `ours`: the names at the top that dinoclust writes (a site's, or a sorted folder's); below
    them, what the last build listed in its marker (`record_written`) and the thumbnails and
    previews are ours, and the rest is carried too. Returns the paths carried."""
    if not output.is_dir() or output.is_symlink():
        return []
    written = written_before(output)
    kept = []
    for entry in sorted(output.iterdir()):
        if entry.name.startswith(".dinoclust"):
            continue
        if not ours(entry.name):
            if written is not None and entry.name in written:
                continue  # the last build's too (report.new.md beside an edited report.md)
            _copy(entry, staging / entry.name)
            kept.append(entry.name)
            continue
        if written is None:  # an older dinoclust's site, or a sorted folder: all ours
            continue
        for rel in foreign_files(output, entry, written):
            if (staging / rel).exists() or (staging / rel).is_symlink():
                raise OutputError(
                    f"{output / rel} was not written by dinoclust, but this build writes a file "
                    f"of that name. Move it out of {output}, then build again."
                )
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            _copy(output / rel, staging / rel)
            kept.append(rel)
    if kept:
        log.warning(
            "kept %s in %s (not written by dinoclust)", ", ".join(kept), output.as_posix() + "/"
        )
    return kept


def _copy(source: Path, target: Path) -> None:
    if target.exists() or target.is_symlink():
        return
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def foreign_files(output: Path, entry: Path, written: set[str]) -> list[str]:
    """The files below one of our names at the top of `output` that the last build did not
    write (nor a thumbnail or preview, named by content hash)."""
    if entry.is_symlink() or not entry.is_dir():
        rels = [entry.name]
    else:
        rels = list(files_below(entry, entry.name))
    return [rel for rel in rels if rel not in written and not HASHED.fullmatch(rel)]


def record_written(staging: Path, carried: Sequence[str], output: Path) -> None:
    """List in the marker what this build wrote (not what `carry_foreign` brought along), so
    that the next build can tell what someone added below the site's own folders; with the
    sha256 of each, so that it can tell a file someone edited (`keep_edits`, run here first:
    the last step before the site is published)."""
    kept = set(keep_edits(output, staging))
    skip = set(carried)
    written = [
        rel
        for rel in files_below(staging, "", prune=HASHED_FOLDERS)
        if rel != MARKER and rel not in skip and rel.split("/")[0] not in skip
    ]
    news = {edited_name(rel) for rel in kept}
    hashes = []
    for rel in written:
        ours = staging / (edited_name(rel) if rel in kept else rel)
        if rel not in news and not ours.is_symlink() and ours.stat().st_size <= HASHED_LIMIT:
            hashes.append(f"{file_sha256(ours)}  {rel}\n")
    text = (
        f"{MARKER_TEXT}\n{WRITTEN_HEADER}\n"
        + "".join(f"{rel}\n" for rel in written)
        + f"\n{HASHES_HEADER}\n"
        + "".join(hashes)
    )
    (staging / MARKER).write_text(text, encoding="utf-8")


def keep_edits(output: Path, staging: Path) -> list[str]:
    """A file the last build wrote and someone has changed since (the report.md a reader was
    asked to complete) is theirs: it is kept as it is, and this build's version goes beside it
    (report.new.md), which the log says. Returns the paths kept."""
    kept = []
    for rel, digest in sorted(_recorded_hashes(output).items()):
        old, new = output / rel, staging / rel
        if old.is_symlink() or not old.is_file() or not new.is_file():
            continue
        if file_sha256(old) == digest:
            continue
        beside = staging / edited_name(rel)
        if beside.exists() or beside.is_symlink():
            raise OutputError(
                f"{old} was changed since the last build, and {output / edited_name(rel)}, where "
                f"this build would write its own {PurePosixPath(rel).name}, is someone else's. "
                f"Move one of them out of {output}, then build again."
            )
        os.replace(new, beside)
        shutil.copy2(old, new)
        kept.append(rel)
        log.warning(
            "%s was changed since the last build wrote it: kept as it is; this build's %s is "
            "beside it as %s",
            old,
            PurePosixPath(rel).name,
            beside.name,
        )
    return kept


def edited_name(rel: str) -> str:
    """Where this build's version of an edited file goes: report.md → report.new.md."""
    path = PurePosixPath(rel)
    return str(path.with_name(f"{path.stem}.new{path.suffix}"))


def _recorded_hashes(output: Path) -> dict[str, str]:
    """{path: sha256} from the last build's marker (none from an older dinoclust's)."""
    _, _, hashes = _marker_sections(output)
    found = {}
    for line in hashes:
        digest, _, rel = line.partition("  ")
        if re.fullmatch(r"[0-9a-f]{64}", digest) and rel and ".." not in rel.split("/"):
            found[rel] = digest
    return found


def _marker_sections(output: Path) -> tuple[bool, list[str], list[str]]:
    """(has a listing, the listing, the hash lines) of `output`'s marker."""
    try:
        text = (output / MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False, [], []
    _, header, rest = text.partition(f"{WRITTEN_HEADER}\n")
    listing, _, hashes = rest.partition(f"\n{HASHES_HEADER}\n")
    return bool(header), listing.splitlines(), hashes.splitlines()


def written_before(output: Path) -> set[str] | None:
    """What the last build listed in its marker; None for a site of an older dinoclust."""
    listed, listing, _ = _marker_sections(output)
    return set(listing) if listed else None


def files_below(folder: Path, prefix: str, prune: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every file (and link) below `folder`, as POSIX paths after `prefix`, sorted; symlinked
    folders are listed, not followed; the folders named in `prune` (at the top) are skipped."""
    for root, dirs, files in os.walk(folder):
        here = Path(root).relative_to(folder).as_posix()
        if here == ".":
            dirs[:] = [d for d in dirs if d not in prune]
        dirs.sort()
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in sorted(files + links):
            yield "/".join(part for part in (prefix, here, name) if part and part != ".")


def discard(folder: Path) -> None:
    """Delete `folder` only if it carries our marker."""
    if (folder / MARKER).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _siblings(parent: Path, name: str) -> list[Path]:
    tags = (f".{name}{STAGING_TAG}", f".{name}{RETIRED_TAG}")
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name.startswith(tags))


# --- one build per output at a time ---------------------------------------------------------


@contextlib.contextmanager
def output_lock(target: Path, option: str = "-o") -> Iterator[None]:
    """Hold `.<name>.dinoclust-lock` beside `target` (a site folder, zip or HTML file) for the
    whole build, so that a second build cannot remove this one's staging folder as a leftover.
    The lock is the OS's (flock) on the open file: a killed build's lock dies with it, and its
    file is taken over. The file holds the owner's pid, which a refused build names."""
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path)
    except OSError as exc:
        raise _cannot_write_beside(exc, target, option, "place") from exc
    if fd is None:
        raise OutputError(
            f"{target} is being written by another dinoclust run (process {_owner(path)}). "
            f"Wait for it to finish, or choose another {option}."
        )
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before unlocking: a waiting build then locks a fresh file
        _unlock(fd)


def remove_stale_lock(target: Path) -> None:
    """Remove the lock file a killed build left beside `target`; a held one (by another build,
    or by this one through `output_lock`) stays."""
    path = lock_path(target)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        if _try_lock(fd):
            log.info("removing %s, left by a build that was killed", path.name)
            path.unlink()
    finally:
        _unlock(fd)


def lock_path(target: Path) -> Path:
    return target.resolve().parent / f".{target.name}{LOCK_TAG}"


def _acquire(path: Path) -> int | None:
    """The locked file's descriptor, with our pid written in; None if a live build holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its owner removed while we were opening it
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:  # a full disk, say: the lock is ours, so is its file
                path.unlink(missing_ok=True)
                _unlock(fd)
                raise
            return fd
        _unlock(fd)


def _owner(path: Path) -> str:
    """The pid in the lock file (its owner may be a moment from writing it)."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return text
        time.sleep(0.05)
    return "unknown"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    os.close(fd)  # closing the file releases the lock (flock and msvcrt alike)
