"""`--manifest FILE`: the list of images to embed, for trees too large to walk.

A text file (one path a line; blank lines and lines starting with # are ignored) or a Parquet file
with a `path` column. Relative paths are relative to the manifest's folder and are kept, as
written, as the path the store and the page show; absolute paths are shown relative to the folder
they all share, so no absolute path ever reaches the store. The manifest's order is kept.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from generator.errors import InputError, check_regular
from generator.ingest.discover import Discovery
from generator.types import SourceImage


def read_manifest(manifest: Path) -> Discovery:
    """The manifest's images, in its order, each once (a repeated path is named)."""
    check_regular(
        manifest,
        f"--manifest {manifest}",
        "Give a text file of one path a line, or a Parquet file with a 'path' column.",
    )
    entries = _parquet_paths(manifest) if _is_parquet(manifest) else _text_paths(manifest)
    if not entries:
        raise InputError(f"{manifest}: the manifest lists no images. Put one path a line in it.")
    base = manifest.parent
    absolute = [Path(e) for e in entries if os.path.isabs(e)]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute])) if absolute else base
    images, seen = [], {}
    for line, entry in enumerate(entries, start=1):
        path = Path(entry) if os.path.isabs(entry) else base / entry
        rel = _relative(entry, path, common, manifest, line)
        if rel in seen:
            raise InputError(
                f"{manifest}, entry {line}: {entry} is listed twice (first at entry "
                f"{seen[rel]}). List each image once."
            )
        seen[rel] = line
        images.append(SourceImage(path, rel))
    return Discovery(tuple(images), ())


def _relative(entry: str, path: Path, common: Path, manifest: Path, line: int) -> str:
    if os.path.isabs(entry):
        return PurePosixPath(*path.relative_to(common).parts).as_posix()
    pure = PurePosixPath(entry.replace("\\", "/"))
    if ".." in pure.parts:
        raise InputError(
            f"{manifest}, entry {line}: {entry} leaves the manifest's folder (..). Give it as an "
            "absolute path, or move the manifest up."
        )
    return pure.as_posix()


def _is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError as exc:
        raise InputError(
            f"{path}: cannot read the manifest ({exc.strerror or exc}). Check the path."
        ) from exc


def _text_paths(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: cannot read the manifest as UTF-8 text ({exc}). Give a text file with "
            "one path a line, or a Parquet file with a 'path' column."
        ) from exc
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _parquet_paths(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path, columns=["path"]).column("path")
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise InputError(
            f"{path}: no readable 'path' column ({exc}). A Parquet manifest needs a 'path' "
            "column of strings."
        ) from exc
    return [p for p in column.to_pylist() if p]
