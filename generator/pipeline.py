"""The build, stage by stage: discover → decode → embed → analyse → render.

`build_site` is the library's entry point; the CLI only fills in a BuildConfig and shows progress.
Each stage is its own module and can be tested alone (e.g. with a fake embedder).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from generator.analyse import analyse
from generator.config import BuildConfig
from generator.discover import IMAGE_SUFFIXES, discover
from generator.embed import PREPROCESS, Embedder, load_embedder
from generator.errors import InputError
from generator.imaging import THUMB_FORMAT, Decoded, DecodeError, decode
from generator.payload import ImageRecord, build_report
from generator.render import render_site
from generator.sitedir import check_output, discard, open_staging, publish, staging_exclusions
from generator.structure import SkippedImage, SourceImage

log = logging.getLogger(__name__)

DECODE_THREADS = 2
LOOKAHEAD = 64  # decoded images waiting for the model: bounds memory whatever N is


class Progress(Protocol):
    """`with progress(label, total) as advance: advance(n)` — the CLI draws a bar, tests don't."""

    def __call__(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...


@contextmanager
def no_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class BuildResult:
    output: Path
    images: int
    skipped: tuple[SkippedImage, ...]
    seconds: float
    report: dict[str, Any]


@dataclass(frozen=True)
class Embedded:
    records: tuple[ImageRecord, ...]
    features: np.ndarray
    skipped: tuple[SkippedImage, ...]


def build_site(
    config: BuildConfig,
    progress: Progress = no_progress,
    embedder: Embedder | None = None,
) -> BuildResult:
    """Build the site for `config`; raises GeneratorError subclasses with actionable messages."""
    start = time.perf_counter()
    check_output(config.output, config.inputs)
    exclude = [*staging_exclusions(config.output), *config.extra_excludes]
    found = discover(config.inputs, exclude=exclude)
    if not found.images:
        raise InputError(
            f"No images found in {', '.join(map(str, config.inputs))} (looked for "
            f"{' '.join(sorted(IMAGE_SUFFIXES))}, in any letter case, in all sub-folders)."
        )
    log.info("found %d images", len(found.images))
    embedder = embedder or load_embedder(config.weights, config.device, config.seed)
    staging = open_staging(config.output)
    try:
        embedded = decode_and_embed(found.images, embedder, staging, config, progress)
        skipped = found.skipped + embedded.skipped
        if config.strict and skipped:
            raise InputError(
                f"--strict: {len(skipped)} file(s) could not be used, first {skipped[0].rel}: "
                f"{skipped[0].reason}. Fix or remove them, or build without --strict."
            )
        analysis = analyse(embedded.features, config.k_max, config.seed)
        report = build_report(
            config.title, embedded.records, skipped, analysis, embedder.info, config.seed
        )
        render_site(report, staging)
        publish(staging, config.output)
    except BaseException:
        discard(staging)
        raise
    seconds = time.perf_counter() - start
    return BuildResult(config.output, len(embedded.records), skipped, seconds, report)


def decode_and_embed(
    images: Sequence[SourceImage],
    embedder: Embedder,
    site: Path,
    config: BuildConfig,
    progress: Progress,
) -> Embedded:
    """Decode in worker threads while the model embeds batches; thumbnails go straight to disk."""
    thumbs = site / "thumbs"
    thumbs.mkdir(exist_ok=True)
    records: list[ImageRecord] = []
    skipped: list[SkippedImage] = []
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    with progress("Embedding images", len(images)) as advance:
        for image, result in _decoded(images, config.thumb_size):
            advance(1)
            if isinstance(result, DecodeError):
                log.warning("skipped %s: %s", image.rel, result)
                skipped.append(SkippedImage(image.rel, str(result)))
                continue
            records.append(_save_thumb(image, result, site))
            batch.append(result.pixels)
            if len(batch) == config.batch_size:
                chunks.append(embedder(np.stack(batch)))
                batch = []
        if batch:
            chunks.append(embedder(np.stack(batch)))
    features = np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)
    return Embedded(tuple(records), features, tuple(skipped))


def _decoded(
    images: Sequence[SourceImage], thumb_size: int
) -> Iterator[tuple[SourceImage, Decoded | DecodeError]]:
    """Results in input order, with at most LOOKAHEAD decodes in flight."""
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        pending: deque[tuple[SourceImage, Future[Decoded | DecodeError]]] = deque()
        todo = iter(images)
        for image in islice(todo, LOOKAHEAD):
            pending.append((image, pool.submit(_try_decode, image.path, thumb_size)))
        while pending:
            image, future = pending.popleft()
            for following in islice(todo, 1):
                pending.append((following, pool.submit(_try_decode, following.path, thumb_size)))
            yield image, future.result()


def _try_decode(path: Path, thumb_size: int) -> Decoded | DecodeError:
    try:
        return decode(path, PREPROCESS.size, thumb_size)
    except DecodeError as exc:
        return exc


def _save_thumb(image: SourceImage, decoded: Decoded, site: Path) -> ImageRecord:
    """Thumbnails are named by content hash: no file name leaks, duplicates share one file."""
    rel = f"thumbs/{decoded.sha256[:20]}.{THUMB_FORMAT}"
    target = site / rel
    if not target.exists():
        target.write_bytes(decoded.thumb)
    return ImageRecord(image.rel, rel, decoded.thumb_size, decoded.size)
