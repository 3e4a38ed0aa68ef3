"""Known labels for the images (`--labels folders` or `--labels FILE.csv`), read before embedding.

Labels are user strings: the page shows them as text only. A CSV holds `path,label` rows (an
optional `path,label` header first); paths are matched against the image paths the site shows.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from generator.errors import InputError

log = logging.getLogger(__name__)

FOLDERS = "folders"
TOP_LEVEL = "(top level)"  # the label of images not inside any sub-folder


@dataclass(frozen=True)
class LabelSource:
    """Where labels come from: `folders`, or a CSV mapping image path → label."""

    kind: str  # "folders" or "csv"
    name: str  # shown in the provenance: "folders" or the CSV's file name
    rows: dict[str, str]  # csv only: normalised path → label


def read_labels(spec: str) -> LabelSource:
    """Parse `--labels`: errors name the file and line, and say what to fix."""
    if spec == FOLDERS:
        return LabelSource(FOLDERS, FOLDERS, {})
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"--labels {spec}: no such file. Give a CSV of path,label rows, or 'folders'."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--labels {spec}: cannot read it as UTF-8 text ({exc}).") from None
    return LabelSource("csv", path.name, _parse_csv(text, path))


def _parse_csv(text: str, path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    lines: dict[str, int] = {}
    reader = csv.reader(text.splitlines())
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
            key, label = _normalise(row[0]), row[1].strip()
            if not key or not label:
                what = "path" if not key else "label"
                raise InputError(f"{path}, line {line}: empty {what}. Every row needs both.")
            if key in rows and rows[key] != label:
                raise InputError(
                    f"{path}, line {line}: {key} already has the label {rows[key]!r} "
                    f"(line {lines[key]}). Keep one row per image."
                )
            rows[key], lines[key] = label, line
    except csv.Error as exc:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV ({exc}).") from None
    if not rows:
        raise InputError(f"{path}: no path,label rows found.")
    return rows


def labels_for(source: LabelSource, rels: Sequence[str], prefixed: bool) -> list[str]:
    """One label per image path. `prefixed`: paths start with their input folder's name (several
    inputs were given), so the first-level sub-folder is the second part."""
    if source.kind == FOLDERS:
        return [_folder_label(rel, prefixed) for rel in rels]
    missing = [rel for rel in rels if rel not in source.rows]
    if missing:
        raise InputError(
            f"--labels {source.name}: {len(missing)} image(s) have no row, first {missing[0]}. "
            "Add a path,label row for every image (paths as listed on the page)."
        )
    unused = len(set(source.rows) - set(rels))
    if unused:
        log.warning("--labels %s: %d row(s) name no image of this build", source.name, unused)
    return [source.rows[rel] for rel in rels]


def _folder_label(rel: str, prefixed: bool) -> str:
    parts = PurePosixPath(rel).parts
    depth = 1 if prefixed else 0
    return parts[depth] if len(parts) > depth + 1 else TOP_LEVEL


def _normalise(path: str) -> str:
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path
