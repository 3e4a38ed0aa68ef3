"""`dinoclust sort`: the collection written as one folder per cluster, for people who want folders
rather than a page. Runs the build's stages (discover → embed, from the cache → analyse), then
hard-links (or copies, or symlinks) each image to DIR/cluster_<id>/<its relative path>.

The inputs are only read. DIR follows the output-folder rules of a build (empty, or carrying our
marker) and is written beside itself and swapped in when complete. A new sort carries over what
someone added at DIR's top, and refuses to start while the cluster folders hold a file it did
not place there.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from generator.analysis.analyse import Analysis
from generator.analysis.cached import cached_analysis
from generator.analysis.metrics import suggest_k
from generator.commands.stages import (
    check_enough,
    check_skipped,
    discover_images,
    embed_images,
    open_run,
)
from generator.config import SortConfig
from generator.errors import NO_ROOM, InputError, OutputError, as_it_was, room_for
from generator.ingest.discover import nfc
from generator.ingest.labels import assign_labels, read_labels
from generator.site.exports import csv_text, spreadsheet_plain
from generator.site.payload import DECIMALS
from generator.site.sitedir import carry_foreign, files_below, output_lock, publish
from generator.types import Embedder, Progress, SkippedImage, SourceImage, no_progress

log = logging.getLogger(__name__)

CLUSTERS_CSV = "clusters.csv"
CLUSTER_FOLDER = re.compile(r"cluster_[0-9]+")
# a hard link cannot be made here: another file system, or one without hard links
NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass(frozen=True)
class SortResult:
    output: Path
    k: int
    suggested: bool  # k is the suggested k (no --k given)
    sizes: tuple[int, ...]
    images: int
    skipped: tuple[SkippedImage, ...]
    copied: int  # files copied because a hard link could not be made
    mode: str
    embedded: int
    seconds: float


def sort_collection(
    config: SortConfig, progress: Progress = no_progress, embedder: Embedder | None = None
) -> SortResult:
    """Sort the inputs into DIR by cluster; raises GeneratorError subclasses with messages."""
    output = config.build.output
    with output_lock(output), room_for(output, "-o", as_it_was(output, "sorted folder")):
        return _sort(config, progress, embedder)


def _sort(config: SortConfig, progress: Progress, embedder: Embedder | None) -> SortResult:
    start = time.perf_counter()
    build = config.build
    if config.k is not None and config.k > build.k_max:
        build = replace(build, k_max=config.k)
    found = discover_images(build)
    check_placed(build.output)
    labelling = assign_labels(read_labels(build.labels), found) if build.labels else None
    with open_run(build, embedder) as run:
        embedded = embed_images(found.images, run.embedder, run.cache, None, build, progress)
        skipped = check_skipped(build.strict, found.skipped + embedded.skipped, "sort")
        check_enough(len(embedded.records), skipped)  # as build says it
        analysis = cached_analysis(embedded.features, build, run.cache)
        k, suggested = _choose_k(analysis, config.k)
        clustering = analysis.clusterings[k]
        rels = [record.rel for record in embedded.records]
        names = [labelling.by_rel[rel] for rel in rels] if labelling else None
        sources = {image.rel: image for image in found.images}
        files = [(sources[rel], int(c)) for rel, c in zip(rels, clustering.labels, strict=True)]
        copied = _place(files, run.staging, config.mode, build.output, progress)
        rows = zip(rels, clustering.labels.tolist(), clustering.distances.tolist(), strict=True)
        _write_csv(run.staging / CLUSTERS_CSV, rows, names)
        check_placed(build.output)  # nothing added while this run worked
        carry_foreign(build.output, run.staging, ours=_sorted_name)
        publish(run.staging, build.output)
    seconds = time.perf_counter() - start
    return SortResult(
        build.output,
        k,
        suggested,
        clustering.sizes,
        len(rels),
        skipped,
        copied,
        config.mode,
        embedded.embedded,
        seconds,
    )


def check_placed(output: Path) -> None:
    """A new sort replaces the cluster folders: refuse, before any work, when they hold a file
    the last sort did not place there (its clusters.csv lists what it placed). Other files at
    the top (a README, notes) are carried over, as a rebuilt site carries them."""
    if not output.is_dir() or output.is_symlink():
        return
    folders = sorted(p.name for p in output.iterdir() if CLUSTER_FOLDER.fullmatch(p.name))
    if not folders:
        return
    placed = _placed(output)
    if placed is None:
        raise OutputError(
            f"{output} has cluster folders but no clusters.csv that dinoclust can read, so which "
            "files in them it placed cannot be told, and a new sort would remove them all. Move "
            f"{output} away, or choose another folder with -o."
        )
    foreign = [
        name for name in folders if not (output / name).is_dir() or (output / name).is_symlink()
    ]
    for name in folders:
        if name not in foreign:
            below = files_below(output / name, name)  # symlinked folders listed, not followed
            foreign += [rel for rel in below if nfc(rel) not in placed]
    if foreign:
        more = f" and {len(foreign) - 1:,} more files were" if len(foreign) > 1 else " was"
        raise OutputError(
            f"{output / foreign[0]}{more} not placed there by dinoclust sort, and a new sort "
            f"replaces the cluster folders. Move them out of {output}, then sort again."
        )


def _sorted_name(name: str) -> bool:
    """The names dinoclust sort writes at the top of DIR."""
    return name == CLUSTERS_CSV or CLUSTER_FOLDER.fullmatch(name) is not None


def _placed(output: Path) -> set[str] | None:
    """cluster_<id>/<path> for every row of the last sort's clusters.csv (NFC), or None when it
    is missing or not ours (no path,cluster header)."""
    try:
        with (output / CLUSTERS_CSV).open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or rows[0][:2] != ["path", "cluster"]:
        return None
    return {nfc(f"cluster_{row[1]}/{spreadsheet_plain(row[0])}") for row in rows[1:] if row[1:]}


def _choose_k(analysis: Analysis, k: int | None) -> tuple[int, bool]:
    """The k asked for, else the suggested k (else the smallest, when none can be suggested)."""
    if k is not None:
        if k not in analysis.clusterings:
            n = len(analysis.coords)
            raise InputError(f"--k {k}: only {n} images could be used; choose a k of at most {n}.")
        return k, False
    suggestion = suggest_k({k: c.metrics for k, c in analysis.clusterings.items()})
    if suggestion is None:
        smallest = min(analysis.clusterings)
        log.warning("no k can be suggested (the images are all alike): using k = %d", smallest)
        return smallest, False
    return suggestion, True


def _place(
    files: list[tuple[SourceImage, int]], staging: Path, mode: str, output: Path, progress: Progress
) -> int:
    """Each image into cluster_<id>/<its relative path>; returns how many were copied because a
    hard link could not be made (announced once, with the space they take)."""
    copied, copied_bytes = 0, 0
    with progress("Sorting files", len(files)) as advance:
        for image, cluster in files:
            target = staging / f"cluster_{cluster}" / _safe(image.rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if _put(image.path, target, mode):
                    copied, copied_bytes = copied + 1, copied_bytes + target.stat().st_size
            except OSError as exc:
                if exc.errno in NO_ROOM:
                    raise  # sort_collection says so
                raise OutputError(
                    f"Cannot write {output / target.relative_to(staging)} from {image.path} "
                    f"({exc.strerror or exc}); check the space and permissions of {output}."
                ) from exc
            advance(1)
    if copied:
        log.warning(
            "%s: %d file(s) (%.1f MB) were copied, not hard-linked: a hard link cannot cross "
            "file systems (and some file systems or permissions allow none). Use --mode symlink "
            "to save the space.",
            output,
            copied,
            copied_bytes / 1e6,
        )
    return copied


def _put(source: Path, target: Path, mode: str) -> bool:
    """Link, copy or symlink one file; True when a hard link had to become a copy."""
    if mode == "symlink":
        os.symlink(os.path.abspath(source), target)
        return False
    if mode == "link":
        try:
            os.link(source, target)
            return False
        except OSError as exc:
            if exc.errno not in NO_LINK:
                raise
    shutil.copy2(source, target)
    return mode == "link"


def _safe(rel: str) -> Path:
    """A discovered path is relative and stays below its cluster folder; checked all the same."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise InputError(f"{rel}: not a relative path below the inputs; cannot sort it.")
    return Path(*parts)


def _write_csv(path: Path, rows: Iterable[tuple[str, int, float]], names: list[str] | None) -> None:
    """path,cluster,distance_to_centre (and label with --labels), in the build's image order."""
    header = ["path", "cluster", "distance_to_centre", *(["label"] if names else [])]
    table: list[list[Any]] = [header]
    for i, (rel, cluster, distance) in enumerate(rows):
        table.append([rel, cluster, round(distance, DECIMALS), *([names[i]] if names else [])])
    path.write_text(csv_text(table), encoding="utf-8", newline="\n")  # the one guarded writer
