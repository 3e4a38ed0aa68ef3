"""Stage 1 — discover: walk the inputs into a sorted list of image files.

Sorted order makes the site reproducible; hidden files, macOS junk and the output folder are left
out; symlinked folders are followed, but never back into a folder being walked, so a symlink loop
cannot hang the walk. Every image path met is accounted for: an image, skipped, or an alias.
"""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from generator.errors import InputError, printable
from generator.i18n import Message
from generator.types import Alias, SkippedImage, SourceImage

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
NO_EXTENSION = "extension-less"  # how messages count files without an extension
JUNK_DIRS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True)
class Discovery:
    images: tuple[SourceImage, ...]
    skipped: tuple[SkippedImage, ...]
    aliases: tuple[Alias, ...] = ()  # further paths to images already included
    # files the walk met that are not images it reads, by extension (".svg", 53), most first
    unsupported: tuple[tuple[str, int], ...] = ()

    @property
    def paths_found(self) -> int:
        """Every image path the walk met: each one is an image, skipped or an alias."""
        return len(self.images) + len(self.skipped) + len(self.aliases)


@dataclass(frozen=True)
class _Found:
    """One path met by the walk, before paths to the same file are told apart."""

    path: Path
    rel: str  # as on disk (the name's own Unicode normalisation)
    folder: str
    identity: tuple[int, int] | str  # (device, inode): symlinks and hard links share it


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def is_hidden(name: str) -> bool:
    """Dot-files (which covers macOS `._*` resource forks) and well-known junk folders."""
    return name.startswith(".") or name in JUNK_DIRS


def discover(inputs: Sequence[Path], exclude: Iterable[Path] = ()) -> Discovery:
    """Every image under `inputs` (folders and/or files), in a deterministic order. Paths that
    reach the same file (symlinks, hard links) give one image, under its first path in sorted
    order; the others are aliases. Names are compared and sorted in NFC, so a name macOS wrote
    decomposed sorts and matches like the one typed; the file is opened by its own name."""
    excluded = {os.path.realpath(p) for p in exclude}
    skipped: list[SkippedImage] = []
    found: list[_Found] = []
    others: Counter[str] = Counter()
    for root, prefix in zip(inputs, input_prefixes(inputs), strict=True):
        if not root.exists():
            raise InputError(f"{root}: no such file or folder. Check the path and try again.")
        if root.is_dir():
            walked = _walk(root, PurePosixPath(), excluded, (), skipped, prefix, others)
        else:
            walked = iter([(root, PurePosixPath(root.name))])
        for path, rel in walked:
            shown = readable(str(prefix / rel))
            if not is_image_name(path.name):
                skipped.append(SkippedImage(shown, Message.of("skip_unsupported")))
                others[_extension(path.name)] += 1
                continue
            folder = _folder(prefix, rel, len(inputs) > 1 and root.is_dir())
            found.append(_Found(path, shown, folder, _identity(path)))
    images, aliases = _split_aliases(found)
    if aliases:
        log.info("%s links to images already included (listed on the page)", f"{len(aliases):,}")
    unsupported = tuple(sorted(others.items(), key=lambda item: (-item[1], item[0])))
    if images and unsupported:
        log.warning(
            "%s in %s %s not used: dinoclust does not read that format (the formats it reads: "
            "docs/guides/photos.md, Formats).",
            file_counts(unsupported),
            ", ".join(map(str, inputs)),
            "is" if sum(n for _, n in unsupported) == 1 else "are",
        )
    return Discovery(images, tuple(skipped), aliases, unsupported)


def file_counts(counts: Sequence[tuple[str, int]]) -> str:
    """("53 .svg files and 2 .pdf files"): what the walk saw but cannot read, for a message (an
    extension is part of a name: escaped, as the summary line is printed as it is)."""
    words = [f"{n:,} {printable(ext)} file{'' if n == 1 else 's'}" for ext, n in counts]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


UNSUPPORTED_NOTES = 3  # extensions the page names one by one; the rest share one note


def unsupported_notes(counts: Sequence[tuple[str, int]]) -> tuple[Message, ...]:
    """The page's notes on what the walk saw but cannot read ("53 .svg files are not
    supported"), most first: one per extension, the rarest summed up in one note."""
    notes = []
    for ext, n in counts[:UNSUPPORTED_NOTES]:
        word = {"ext_key": "ext_none"} if ext == NO_EXTENSION else {"ext": ext}
        key = "note_unsupported_one" if n == 1 else "note_unsupported"
        notes.append(Message.of(key, n=f"{n:,}", **word))
    rest = counts[UNSUPPORTED_NOTES:]
    if rest:
        n = f"{sum(n for _, n in rest):,}"
        notes.append(Message.of("note_unsupported_more", n=n, m=len(rest)))
    return tuple(notes)


def no_images(inputs: Sequence[Path], found: Discovery) -> InputError:
    """The error for inputs without one image: what was looked for, and what was there instead."""
    looked = f"{' '.join(sorted(IMAGE_SUFFIXES))}, in any letter case"
    if inputs and all(not root.is_dir() for root in inputs):
        names = ", ".join(str(root) for root in inputs)
        verb = "is not an image" if len(inputs) == 1 else "are not images"
        return InputError(
            f"{names} {verb} dinoclust reads (it reads {looked}). Give image files, or a "
            "folder of them."
        )
    where = ", ".join(map(str, inputs))
    seen = ""
    if found.unsupported:
        seen = f" It holds {file_counts(found.unsupported)}, which dinoclust does not read."
    return InputError(
        f"No images found in {where} (looked for {looked}, in all sub-folders).{seen}"
    )


def _extension(name: str) -> str:
    return os.path.splitext(name)[1].lower() or NO_EXTENSION


def input_prefixes(inputs: Sequence[Path]) -> list[PurePosixPath]:
    """What each input's paths start with. One input: nothing. Several: the folder's name, or,
    where two inputs share it, the shortest parent path that tells them apart (`trip1/photos`).
    A file input keeps its own name, with such a parent path only when names clash."""
    if len(inputs) < 2:
        return [PurePosixPath() for _ in inputs]
    named = [_named_parts(root) for root in inputs]
    distinct = set(named)
    out = []
    for root, parts in zip(inputs, named, strict=True):
        n = 1
        while n < len(parts) and any(o[-n:] == parts[-n:] for o in distinct if o != parts):
            n += 1
        prefix = PurePosixPath(*parts[-n:])
        out.append(prefix if root.is_dir() else prefix.parent)
    return out


def folder_prefixes(inputs: Sequence[Path]) -> list[str] | None:
    """The folder inputs' prefixes as their paths show them; None for one input (no prefixes)."""
    if len(inputs) < 2:
        return None
    prefixes = zip(inputs, input_prefixes(inputs), strict=True)
    return [nfc(readable(str(prefix))) for root, prefix in prefixes if root.is_dir()]


def _named_parts(root: Path) -> tuple[str, ...]:
    """The input's path without its anchor: a folder by its real path, a file as given."""
    full = root.resolve() if root.is_dir() else Path(os.path.abspath(root))
    return tuple(nfc(readable(part)) for part in full.parts[1:]) or (nfc(full.anchor),)


def _folder(prefix: PurePosixPath, rel: PurePosixPath, several: bool) -> str:
    """`--labels folders`: the first folder below the input root; directly in the root of one of
    several inputs, that input's name; directly in a single input's root, nothing."""
    if len(rel.parts) > 1:
        return nfc(readable(rel.parts[0]))
    return nfc(readable(str(prefix))) if several else ""


def _identity(path: Path) -> tuple[int, int] | str:
    try:
        st = path.stat()
    except OSError:
        return os.path.realpath(path)  # unreadable: decoding will skip it and say why
    return (st.st_dev, st.st_ino)


def _split_aliases(found: list[_Found]) -> tuple[tuple[SourceImage, ...], tuple[Alias, ...]]:
    """One image per file, under its first path in sorted order; the other paths are aliases."""
    found = sorted(found, key=lambda f: _sort_key(f.rel))
    kept: dict[object, _Found] = {}
    later: list[_Found] = []
    for item in found:
        if item.identity in kept:
            later.append(item)
        else:
            kept[item.identity] = item
    shown = _shown_names([f.rel for f in kept.values()])
    images = _unique([SourceImage(f.path, shown[f.rel], f.folder) for f in kept.values()])
    names = {f.identity: image.rel for f, image in zip(kept.values(), images, strict=True)}
    aliases = []
    for item in later:
        log.debug("%s: already found as %s", item.rel, names[item.identity])
        aliases.append(Alias(nfc(item.rel), names[item.identity], item.folder))
    return images, tuple(aliases)


def _shown_names(rels: list[str]) -> dict[str, str]:
    """Each path in NFC, except where two files' names differ only in normalisation: those keep
    their own names, so both are kept and told apart."""
    by_nfc: dict[str, list[str]] = {}
    for rel in rels:
        by_nfc.setdefault(nfc(rel), []).append(rel)
    out = {}
    for name, group in by_nfc.items():
        if len(group) > 1:
            log.warning(
                "%s: %d files have names that differ only in Unicode normalisation; "
                "each keeps its own name",
                name,
                len(group),
            )
        for rel in group:
            out[rel] = name if len(group) == 1 else rel
    return out


def _walk(
    folder: Path,
    rel: PurePosixPath,
    excluded: set[str],
    above: tuple[str, ...],
    skipped: list[SkippedImage],
    prefix: PurePosixPath,
    others: Counter[str],
) -> Iterator[tuple[Path, PurePosixPath]]:
    """Every image path below `folder`. A link back to a folder being walked (`above`) is not
    followed, so loops cannot hang the walk; any other second path to a folder is walked, so its
    images are found again and listed as aliases."""
    real = os.path.realpath(folder)
    if real in above or real in excluded:
        return
    above = (*above, real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (e.name.casefold(), e.name))
    except OSError as exc:
        why = Message.of("skip_folder_unreadable", error=exc.strerror)
        skipped.append(SkippedImage(readable(str(prefix / rel)) or ".", why))
        return
    for entry in entries:
        if is_hidden(entry.name):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks; loops are stopped by `above`
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, rel / entry.name, excluded, above, skipped, prefix, others)
        elif is_image_name(entry.name):
            yield path, rel / entry.name
        else:
            others[_extension(entry.name)] += 1


def readable(rel: str) -> str:
    """A path as the page, report.json and CSV files can hold it. A name that is not UTF-8 (from
    an old Windows zip, say) reaches Python with its bytes escaped as surrogates, which no UTF-8
    text can hold: each such name is read as Shift-JIS (cp932, old Japanese Windows) when that
    gives Japanese text, else its bytes are shown as \\xNN. The file is opened by its real name."""
    return "/".join(readable_text(name) for name in rel.split("/"))


def readable_text(name: str) -> str:
    """One name (or a --title from a terminal whose bytes are not UTF-8), as `readable` says."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        raw = os.fsencode(name)
    try:
        text = raw.decode("cp932")
    except UnicodeDecodeError:
        text = ""
    if text and all(char.isascii() or _shift_jis_row(char) for char in text):
        return text
    return raw.decode("utf-8", "backslashreplace")


def _shift_jis_row(char: str) -> bool:
    """A two-byte Shift-JIS character led by 0x81-0x9F: kana, punctuation, full-width forms and
    the common kanji. Latin-1 letters read as Shift-JIS land elsewhere (half-width katakana,
    rare kanji, private use), so "crème" is not taken for Japanese."""
    coded = char.encode("cp932")
    return len(coded) == 2 and 0x81 <= coded[0] <= 0x9F


def nfc(text: str) -> str:
    """Names are compared and shown in NFC (macOS writes them decomposed, NFD)."""
    return unicodedata.normalize("NFC", text)


def _sort_key(rel: str) -> tuple[tuple[str, str, str], ...]:
    """Case-insensitive, in NFC; the name's own form breaks the last ties."""
    return tuple((nfc(part).casefold(), nfc(part), part) for part in rel.split("/"))


def _unique(images: list[SourceImage]) -> tuple[SourceImage, ...]:
    """A last resort: input_prefixes tells inputs apart, so two different files shown under one
    path need inputs nested in odd ways. Later ones are numbered, and the log says so."""
    taken: set[str] = set()
    out = []
    for image in images:
        rel, n = image.rel, 1
        while rel in taken:
            n += 1
            stem, dot, suffix = image.rel.rpartition(".")
            rel = f"{stem}~{n}.{suffix}" if dot else f"{image.rel}~{n}"
        taken.add(rel)
        if rel != image.rel:
            log.warning("%s: another file is shown under this path; shown as %s", image.rel, rel)
        out.append(image if rel == image.rel else SourceImage(image.path, rel, image.folder))
    return tuple(out)


def file_sha256(path: Path) -> str:
    """A file's content hash, read in 1 MiB blocks (checkpoints, files a build wrote)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
