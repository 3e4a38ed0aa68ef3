"""Stage 1 — discover: walk the inputs into a sorted list of image files.

Sorted order makes the site reproducible; hidden files, macOS junk and the output folder are left
out; symlinked folders are followed once each, so a symlink loop cannot hang the walk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from generator.errors import InputError
from generator.i18n import Message
from generator.structure import SkippedImage, SourceImage

log = logging.getLogger(__name__)

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})  # iPhones; .hif: Canon and Fujifilm cameras
AVIF_SUFFIXES = frozenset({".avif"})
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"})
IMAGE_SUFFIXES = (
    frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
    | HEIF_SUFFIXES
    | AVIF_SUFFIXES
    | RAW_SUFFIXES
)
JUNK_DIRS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True)
class Discovery:
    images: tuple[SourceImage, ...]
    skipped: tuple[SkippedImage, ...]


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def is_hidden(name: str) -> bool:
    """Dot-files (which covers macOS `._*` resource forks) and well-known junk folders."""
    return name.startswith(".") or name in JUNK_DIRS


def discover(inputs: Sequence[Path], exclude: Iterable[Path] = ()) -> Discovery:
    """Find every image under `inputs` (folders and/or files), in a deterministic order."""
    excluded = {_real(p) for p in exclude}
    seen_files: set[str] = set()
    images: list[SourceImage] = []
    skipped: list[SkippedImage] = []
    prefix_roots = len(inputs) > 1
    for root in inputs:
        if not root.exists():
            raise InputError(f"{root}: no such file or folder. Check the path and try again.")
        is_dir = root.is_dir()
        prefix = PurePosixPath(root.resolve().name) if prefix_roots and is_dir else PurePosixPath()
        if is_dir:
            found = _walk(root, PurePosixPath(), excluded, set(), skipped, prefix)
        else:
            found = iter([(root, PurePosixPath(root.name))])
        for path, rel in found:
            if not is_image_name(path.name):
                skipped.append(SkippedImage(str(prefix / rel), Message.of("skip_unsupported")))
                continue
            real = _real(path)
            if real in seen_files:
                log.debug("%s: already found through another path", path)
                continue
            seen_files.add(real)
            images.append(SourceImage(path, str(prefix / rel)))
    return Discovery(_unique(sorted(images, key=_sort_key)), tuple(skipped))


def _walk(
    folder: Path,
    rel: PurePosixPath,
    excluded: set[str],
    visited: set[str],
    skipped: list[SkippedImage],
    prefix: PurePosixPath,
) -> Iterator[tuple[Path, PurePosixPath]]:
    real = _real(folder)
    if real in visited or real in excluded:
        return
    visited.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (e.name.casefold(), e.name))
    except OSError as exc:
        why = Message.of("skip_folder_unreadable", error=exc.strerror)
        skipped.append(SkippedImage(str(prefix / rel) or ".", why))
        return
    for entry in entries:
        if is_hidden(entry.name):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are stopped by `visited`
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, rel / entry.name, excluded, visited, skipped, prefix)
        elif is_image_name(entry.name):
            yield path, rel / entry.name


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _sort_key(image: SourceImage) -> tuple[tuple[str, str], ...]:
    return tuple((part.casefold(), part) for part in image.rel.split("/"))


def _unique(images: list[SourceImage]) -> tuple[SourceImage, ...]:
    """Two inputs with the same folder name can give equal relative paths: number later ones."""
    taken: set[str] = set()
    out = []
    for image in images:
        rel, n = image.rel, 1
        while rel in taken:
            n += 1
            stem, dot, suffix = image.rel.rpartition(".")
            rel = f"{stem}~{n}.{suffix}" if dot else f"{image.rel}~{n}"
        taken.add(rel)
        out.append(image if rel == image.rel else SourceImage(image.path, rel))
    return tuple(out)
