"""Deliver the site for sharing: a deterministic zip (to e-mail), or one self-contained HTML file,
optionally fitted to a size budget (--max-size).

Runs around `build_site`: the budget is met on the staged site before it is published, so a build
that cannot fit leaves the previous site untouched. A zip or HTML file that exists is replaced only
if dinoclust wrote it (the zip's comment, the page's generator tag say so); nothing else is.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from generator.commands.build import BuildResult, build_site
from generator.config import BuildConfig
from generator.errors import (
    NO_ROOM,
    BudgetError,
    OutputError,
    as_it_was,
    cannot_write,
    room_for,
    written_in,
)
from generator.i18n import templates_dir
from generator.site.budget import Fit, Fitter
from generator.site.render import plotly_js
from generator.site.singlefile import is_single_file, render_single
from generator.site.sitedir import MARKER, discard, open_marked, output_lock, umask
from generator.sizes import format_size, round_up
from generator.types import Embedder, Progress, no_progress

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build time leaks in
ZIP_COMMENT = b"Written by dinoclust; a later `dinoclust build --zip` to this name replaces it.\n"
FILE_MODE = 0o100644  # a regular file, rw-r--r--, whoever built it
UNIX = 3  # ZipInfo.create_system: makes FILE_MODE apply, on any OS
STORED = frozenset({".webp", ".png", ".jpg", ".jpeg", ".gif"})  # compressed already
WORK_TAG = ".dinoclust-tmp-"
IMAGES_MARGIN = 100_000  # the page, the data and a few dozen small thumbnails above the floor


@dataclass(frozen=True)
class Delivery:
    """The build, and what was written to share it."""

    result: BuildResult  # `output` is the HTML file for --single-file
    zip_file: Path | None = None
    size: int | None = None  # bytes of the zip, or of the single file
    fit: Fit | None = None  # with --max-size: the thumbnails chosen


def deliver(
    config: BuildConfig, progress: Progress = no_progress, embedder: Embedder | None = None
) -> Delivery:
    """Build what `config` asks for: a folder (and a zip of it), or one HTML file. Each target
    is locked for the whole build: one build per output at a time."""
    if config.max_size is not None:
        check_floor(config.max_size, config.single_file)
    targets = [(config.output, "-o")]
    if config.zip_file is not None:  # before the locks: a zip at -o's own path shares its lock
        check_zip_target(config.zip_file, config.output)
        targets.append((config.zip_file, "--zip"))
    with contextlib.ExitStack() as stack:
        for target, option in targets:
            stack.enter_context(output_lock(target, option))
        return _deliver(config, progress, embedder)


def _deliver(config: BuildConfig, progress: Progress, embedder: Embedder | None) -> Delivery:
    """What a full disk stops is left as it was: the unfinished site or file is removed."""
    output, zip_file = config.output, config.zip_file
    if config.single_file:
        with room_for(output, "-o", as_it_was(output, "page")):
            return _deliver_single(config, progress, embedder)
    left = room_for(output, "-o", as_it_was(output))
    if zip_file is None:
        with left:
            return Delivery(build_site(config, progress, embedder))
    top = zip_top(zip_file)
    fitter = _fitter(config, lambda _, site: len(zip_bytes(site_entries(site, top))), "the zip")
    with left:
        result = build_site(config, progress, embedder, finish=fitter)
    built = f"The site in {output} is built. {as_it_was(zip_file, 'zip')}"
    with room_for(zip_file, "--zip", built):
        size = _write_atomic(zip_file, lambda f: zip_entries(site_entries(output, top), f))
    return Delivery(result, zip_file, size, fitter.fit if fitter else None)


def _deliver_single(config: BuildConfig, progress: Progress, embedder: Embedder | None) -> Delivery:
    """Build the site in a marked work folder beside the target, inline it, write one file."""
    target = config.output
    _check_replaceable(target, is_single_file, "-o")
    work = _open_work(target)
    try:
        site = work / "site"
        site_config = replace(
            config,
            output=site,
            single_file=False,
            max_size=None,
            extra_excludes=(*config.extra_excludes, work),
        )
        measure = lambda report, folder: len(render_single(report, folder, config.lang).encode())  # noqa: E731
        fitter = _fitter(config, measure, target.name)
        result = build_site(site_config, progress, embedder, finish=fitter)
        page = render_single(result.typed_report, site, config.lang).encode("utf-8")
        _write_atomic(target, lambda f: f.write(page))
    finally:
        discard(work)
    return Delivery(replace(result, output=target), None, len(page), fitter.fit if fitter else None)


def _fitter(config: BuildConfig, measure: Callable[..., int], what: str) -> Fitter | None:
    if config.max_size is None:
        return None
    return Fitter(
        config.max_size, config.thumb_size, measure, what, config.lang, config.preview_size
    )


# --- the zip --------------------------------------------------------------------------------


def zip_top(target: Path) -> str:
    """The one folder inside the zip, named after it: unzipping never scatters files."""
    return target.stem.lstrip(".") or "site"


def site_files(site: Path) -> list[tuple[str, Path]]:
    """(POSIX path, file) for every file of the site but our marker, sorted by path."""
    files = (p for p in site.rglob("*") if p.is_file() and p.name != MARKER)
    return sorted((p.relative_to(site).as_posix(), p) for p in files)


def zip_entries(entries: Iterable[tuple[str, bytes]], out: IO[bytes]) -> None:
    """A zip whose bytes depend only on the entries: fixed dates, modes, order and levels."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = UNIX
            info.external_attr = FILE_MODE << 16
            stored = Path(name).suffix.lower() in STORED
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=None if stored else 9)
        archive.comment = ZIP_COMMENT


def site_entries(site: Path, top: str) -> Iterator[tuple[str, bytes]]:
    """The site's files under the one folder `top`."""
    return ((f"{top}/{rel}", path.read_bytes()) for rel, path in site_files(site))


def zip_bytes(entries: Iterable[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    zip_entries(entries, out)
    return out.getvalue()


def is_our_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.comment == ZIP_COMMENT
    except (OSError, zipfile.BadZipFile):
        return False


# --- safety: what may be written where ------------------------------------------------------


def check_zip_target(target: Path, output: Path) -> None:
    """Refuse, before any work, a zip path inside the site or on a file that is not ours."""
    out = Path(os.path.realpath(output))
    dest = Path(os.path.realpath(target))
    if dest == out or out in dest.parents:
        raise OutputError(
            f"--zip {target} is inside the output folder {output}, which every build replaces. "
            "Write the zip somewhere else."
        )
    _check_replaceable(target, is_our_zip, "--zip")


def _check_replaceable(target: Path, ours: Callable[[Path], bool], option: str) -> None:
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise OutputError(f"{target} exists and is not a plain file; choose another {option}.")
    if target.exists() and not ours(target):
        raise OutputError(
            f"{target} already exists and was not written by dinoclust, so it will not be "
            f"replaced. Choose another {option}, or move that file away first."
        )


def check_floor(budget: int, single: bool) -> None:
    """Fail before any work when Plotly and the page's own assets alone exceed the budget."""
    static = templates_dir() / "static"
    assets = [plotly_js()[0], *sorted(p for p in static.rglob("*") if p.is_file())]
    if single:
        floor, what = sum(p.stat().st_size for p in assets), "the single file"
    else:
        floor, what = len(zip_bytes((p.name, p.read_bytes()) for p in assets)), "the zip"
    if budget <= floor:
        raise BudgetError(
            f"--max-size {format_size(budget)} is too small: Plotly and the page's own scripts "
            f"alone take {format_size(floor)} in {what}, before any image. Use --max-size "
            f"{round_up(floor + IMAGES_MARGIN)} or more: if the images do not fit either, the "
            "build says how much they need."
        )


# --- files ----------------------------------------------------------------------------------


def _open_work(target: Path) -> Path:
    """A marked work folder beside `target`; leftovers of killed builds (marked) are removed."""
    parent = target.resolve().parent
    prefix = f".{target.name}{WORK_TAG}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for leftover in sorted(parent.glob(f"{prefix}*")):
            discard(leftover)
        return open_marked(parent, prefix)
    except OSError as exc:
        why = f"Cannot write beside {target} ({exc.strerror or exc})."
        raise cannot_write(exc, target, "-o", why) from exc


def _write_atomic(target: Path, write: Callable[[IO[bytes]], object]) -> int:
    """Write through a temporary file beside `target`, then swap it in; returns the size."""
    try:
        target.resolve().parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise  # the caller's room_for says what was kept
        raise OutputError(f"Cannot write {target} ({exc.strerror or exc}).") from exc
    try:
        with written_in(target.parent), os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; this file is for sharing
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target.stat().st_size
