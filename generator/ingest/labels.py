"""Known labels for the images (`--labels folders` or `--labels FILE.csv`), read before embedding.

Labels are user strings: the page shows them as text only. A CSV holds `path,label` rows (an
optional `path,label` header first); paths are matched against the image paths the site shows, in
NFC. With several inputs, `folders` gives each image its first folder below its input root, or
the input's name when it sits directly in the root.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import InputError, check_regular
from generator.i18n import Message
from generator.ingest.discover import Discovery, nfc
from generator.types import SourceImage

log = logging.getLogger(__name__)

FOLDERS = "folders"
SPACES = " "  # trimmed around cells; a tab or line break may be part of a name
TOP_LEVEL = "(top level)"  # the label of images directly in a single input's root
TOP_LEVEL_TAKEN = "./"  # ... where a folder is named "(top level)": no folder can be named this


@dataclass(frozen=True)
class LabelSource:
    """Where labels come from: `folders`, or a CSV mapping image path → label."""

    kind: str  # "folders" or "csv"
    name: str  # shown in the provenance: "folders" or the CSV's file name
    rows: dict[str, str]  # csv only: normalised path → label
    # csv only: a path cell as written (NFC) → its normalised key, where the two differ: a file
    # whose name has a backslash or a leading space is matched by its exact name first
    exact: dict[str, str] = field(default_factory=dict)


def read_labels(spec: str) -> LabelSource:
    """Parse `--labels`: errors name the file and line, and say what to fix."""
    if spec == FOLDERS:
        return LabelSource(FOLDERS, FOLDERS, {})
    path = Path(spec)
    check_regular(path, f"--labels {spec}", "Give a CSV file of path,label rows, or 'folders'.")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # as written: no newline translation
    except FileNotFoundError:
        raise InputError(
            f"--labels {spec}: no such file. Give a CSV of path,label rows, or 'folders'."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--labels {spec}: cannot read it as UTF-8 text ({exc}).") from None
    rows, exact = _parse_csv(text, path)
    return LabelSource("csv", path.name, rows, exact)


def _parse_csv(text: str, path: Path) -> tuple[dict[str, str], dict[str, str]]:
    rows: dict[str, str] = {}
    exact: dict[str, str] = {}
    lines: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))  # a quoted name may hold \r or \n
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if line == 1 and [c.strip().lower() for c in row] == ["path", "label"]:
                continue
            if len(row) != 2:
                raise InputError(
                    f"{path}, line {line}: expected 2 columns (path,label), found {len(row)}. "
                    "Quote fields that contain commas."
                )
            key, label = _normalise(row[0]), nfc(row[1].strip(SPACES))
            if not key or not label:
                what = "path" if not key else "label"
                raise InputError(f"{path}, line {line}: empty {what}. Every row needs both.")
            if key in rows and rows[key] != label:
                raise InputError(
                    f"{path}, line {line}: {key} already has the label {rows[key]!r} "
                    f"(line {lines[key]}). Keep one row per image."
                )
            rows[key], lines[key] = label, line
            if nfc(row[0]) != key:
                exact[nfc(row[0])] = key
    except csv.Error as exc:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV ({exc}).") from None
    if not rows:
        raise InputError(f"{path}: no path,label rows found.")
    return rows, exact


@dataclass(frozen=True)
class Labelling:
    """The known label of each image (by its path), found right after discovery, before any
    image is embedded."""

    name: str  # the source, for the provenance: "folders" or the CSV's file name
    by_rel: dict[str, str]  # image path → label
    mixed: int = 0  # images whose paths carry different labels: the first in sorted order wins

    def notes(self) -> tuple[Message, ...]:
        return (Message.of("note_labels_mixed", n=self.mixed),) if self.mixed else ()


def assign_labels(source: LabelSource, found: Discovery) -> Labelling:
    """One label per image. An image reached by several paths (aliases) takes the label of its
    first path in sorted order that has one; how many had paths with different labels is kept."""
    paths: dict[str, list[tuple[str, str]]] = {i.rel: [(i.rel, i.folder)] for i in found.images}
    for alias in found.aliases:
        paths[alias.same_as].append((alias.rel, alias.folder))
    by_rel: dict[str, str] = {}
    missing: list[str] = []
    mixed = 0
    folders = {folder for candidates in paths.values() for _, folder in candidates}
    top = TOP_LEVEL if TOP_LEVEL not in folders else TOP_LEVEL_TAKEN
    for rel, candidates in paths.items():
        labels = [_label(source, path, folder, top) for path, folder in candidates]
        known = [label for label in labels if label is not None]
        if not known:
            missing.append(rel)
            continue
        by_rel[rel] = known[0]
        mixed += len(set(known)) > 1
    _check(source, missing, [p for c in paths.values() for p, _ in c], by_rel)
    return Labelling(source.name, by_rel, mixed)


def labels_for_store(
    source: LabelSource, rels: list[str], prefixed: bool, prefixes: Sequence[str] | None
) -> Labelling:
    """Labels for the paths of a Parquet store (`build --embeddings`), by the rule discovery
    follows: a path's first folder below its input, or, with several inputs (`prefixed`: each
    path starts with its input's name), the input's name for an image directly in it. The folder
    inputs' `prefixes`, where the store records them (None: an older store), tell an image
    directly in the input trip1/photos from one in the folder photos of the input trip1 (the same
    path); a path under none of them came from a file given as an input."""
    longest_first = sorted(prefixes, key=len, reverse=True) if prefixes is not None else None

    def folder(rel: str) -> str:
        parts = rel.split("/")
        if longest_first is not None:
            prefix = next((p for p in longest_first if rel.startswith(p + "/")), None)
            if prefix is None:
                return ""
            below = rel[len(prefix) + 1 :].split("/")
            return below[0] if len(below) > 1 else prefix
        if prefixed:
            return parts[1] if len(parts) > 2 else parts[0]
        return parts[0] if len(parts) > 1 else ""

    images = tuple(SourceImage(Path(rel), rel, folder(rel)) for rel in rels)
    return assign_labels(source, Discovery(images, ()))


def _label(source: LabelSource, rel: str, folder: str, top: str) -> str | None:
    if source.kind == FOLDERS:
        return folder or top
    key = _key(source, rel)
    return source.rows[key] if key is not None else None


def _key(source: LabelSource, rel: str) -> str | None:
    """The row naming `rel`: by its exact name first, then as `_normalise` reads a cell."""
    for name in (rel, nfc(rel)):
        if name in source.exact:
            return source.exact[name]
    for name in (rel, nfc(rel)):
        if name in source.rows:
            return name
    return None


def _check(
    source: LabelSource, missing: list[str], paths: list[str], by_rel: dict[str, str]
) -> None:
    if missing:
        raise InputError(
            f"--labels {source.name}: {len(missing)} image(s) have no row, first {missing[0]}. "
            "Add a path,label row for every image (paths as listed on the page)."
        )
    unused = len(set(source.rows) - {_key(source, p) for p in paths})
    if unused:
        log.warning("--labels %s: %d row(s) name no image of this build", source.name, unused)
    distinct = set(by_rel.values())
    if len(by_rel) > 1 and len(distinct) == 1:
        log.warning(
            "--labels %s: every image has the same label %r, so purity, ARI and NMI say nothing. "
            "Put the images in one sub-folder per label, or give a CSV.",
            source.name,
            next(iter(distinct)),
        )


def _normalise(path: str) -> str:
    """As the page shows paths: POSIX separators, no leading `./`, NFC (macOS writes NFD)."""
    path = path.strip(SPACES).replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return nfc(path)
