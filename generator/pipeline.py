"""The build, stage by stage: discover → decode → embed → analyse → render.

`build_site` is the library's entry point; the CLI only fills in a BuildConfig and shows progress.
Each stage is its own module and can be tested alone (e.g. with a fake embedder).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from generator.analyse import Analysis, analyse, compare_labels
from generator.cache import CachedThumb, EmbeddingCache, analysis_key, namespace, thumb_spec
from generator.config import BuildConfig
from generator.discover import IMAGE_SUFFIXES, discover
from generator.duplicates import find_duplicates
from generator.embed import PREPROCESS, Embedder, ModelInfo, load_embedder, plan_model
from generator.errors import InputError
from generator.exports import write_arrays, write_exports
from generator.i18n import Message
from generator.imaging import THUMB_FORMAT, Decoded, DecodeError, decode
from generator.labels import LabelSource, labels_for, read_labels
from generator.payload import ImageRecord, ReportExtras, build_report
from generator.render import render_site
from generator.sitedir import check_output, discard, open_staging, publish, staging_exclusions
from generator.structure import SkippedImage, SourceImage

log = logging.getLogger(__name__)

DECODE_THREADS = 2
LOOKAHEAD = 64  # decoded images waiting for the model: bounds memory whatever N is


class Progress(Protocol):
    """`with progress(label, total) as advance: advance(n)` — the CLI draws a bar, tests don't."""

    def __call__(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...


Finish = Callable[[dict[str, Any], Path], dict[str, Any]]  # (report, staged site) → report


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
    embedded: int  # images that went through the model; 0 when all came from the cache


@dataclass(frozen=True)
class Embedded:
    records: tuple[ImageRecord, ...]
    features: np.ndarray
    skipped: tuple[SkippedImage, ...]
    info: ModelInfo
    embedded: int  # how many images went through the model (the rest came from the cache)


class LazyEmbedder:
    """Loads the model on first use, so a build served from the cache never imports torch.

    `prefetch()` starts loading in a background thread, so that importing torch and timm (about
    three seconds) overlaps with decoding the first batch.
    """

    def __init__(self, info: ModelInfo, load: Callable[[], Embedder]) -> None:
        self.info = info
        self._load = load
        self._model: Embedder | None = None
        self._loading: Future[Embedder] | None = None

    def prefetch(self) -> None:
        if self._model is None and self._loading is None:
            self._loading = ThreadPoolExecutor(1, thread_name_prefix="load-model").submit(
                self._load
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._model = self._loading.result() if self._loading else self._load()
            self.info = self._model.info
        return self._model(pixels)


def build_site(
    config: BuildConfig,
    progress: Progress = no_progress,
    embedder: Embedder | None = None,
    finish: Finish | None = None,
) -> BuildResult:
    """Build the site for `config`; raises GeneratorError subclasses with actionable messages.

    `finish` is a last step on the complete staged site before it is published (deliver.py fits
    the size budget there), so a failure in it leaves the previous site untouched.
    """
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
    label_source = read_labels(config.labels) if config.labels else None  # fail before embedding
    if embedder is None:
        info = plan_model(config.weights, config.device, config.precision, config.seed)
        embedder = LazyEmbedder(info, lambda: load_embedder(config.weights, info, config.seed))
    cache = EmbeddingCache(config.cache_dir) if config.cache_dir else None
    staging = open_staging(config.output)
    try:
        embedded = embed_images(found.images, embedder, cache, staging, config, progress)
        skipped = found.skipped + embedded.skipped
        if config.strict and skipped:
            raise InputError(
                f"--strict: {len(skipped)} file(s) could not be used, first {skipped[0].rel}: "
                f"{skipped[0].reason}. Fix or remove them, or build without --strict."
            )
        analysis, extras = analyse_all(embedded, config, label_source, cache)
        title = config.title or Message.of(config.title_key)
        report = build_report(
            title,
            embedded.records,
            skipped,
            analysis,
            embedded.info,
            config.seed,
            extras,
            lang=config.lang,
        )
        render_site(report, staging, lang=config.lang)
        write_exports(staging, report)
        if config.export_embeddings:
            write_arrays(staging, embedded.features, analysis.coords)
        if finish is not None:
            report = finish(report, staging)
        publish(staging, config.output)
    except BaseException:
        discard(staging)
        raise
    finally:
        if cache is not None:
            cache.close()
    seconds = time.perf_counter() - start
    return BuildResult(
        config.output, len(embedded.records), skipped, seconds, report, embedded.embedded
    )


def analyse_all(
    embedded: Embedded,
    config: BuildConfig,
    label_source: LabelSource | None,
    cache: EmbeddingCache | None = None,
) -> tuple[Analysis, ReportExtras]:
    """PCA and K-means (from the cache when nothing changed), then what the report adds: known
    labels and duplicates."""
    analysis = _cached_analysis(embedded.features, config, cache)
    comparison = None
    if label_source is not None:
        rels = [r.rel for r in embedded.records]
        names = labels_for(label_source, rels, prefixed=len(config.inputs) > 1)
        comparison = compare_labels(analysis, names)
    digests = [r.digest for r in embedded.records]
    duplicates = find_duplicates(digests, embedded.features)
    source = label_source.name if label_source else None
    return analysis, ReportExtras(comparison, source, duplicates)


def _cached_analysis(
    features: np.ndarray, config: BuildConfig, cache: EmbeddingCache | None
) -> Analysis:
    """A rebuild with the same features and options reuses the result: no scikit-learn import."""
    if cache is None:
        return analyse(features, config.k_max, config.seed)
    key = analysis_key(features, config.k_max, config.seed)
    analysis = cache.analysis(key)
    if analysis is None:
        analysis = analyse(features, config.k_max, config.seed)
        cache.put_analysis(key, analysis)
    return analysis


def embed_images(
    images: Sequence[SourceImage],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    site: Path,
    config: BuildConfig,
    progress: Progress,
) -> Embedded:
    """Features and thumbnails for every image: from the cache where possible, else decoded in
    worker threads while the model embeds full batches. Thumbnails go straight to disk."""
    (site / "thumbs").mkdir(exist_ok=True)
    spec = thumb_spec(config.thumb_size)
    work = _Work(images, embedder, cache, site, spec, config.batch_size)
    todo = work.from_cache()
    if todo:
        with progress("Embedding images", len(todo)) as advance:
            for index, result in _decoded([images[i] for i in todo], todo, config.thumb_size):
                advance(work.take(index, result))
            advance(work.flush())
    log.info(
        "%d images embedded, %d from the cache", work.embedded, len(work.features) - work.embedded
    )
    return work.result()


class _Work:
    """The per-image results of embed_images, in input order whatever order they arrive in."""

    def __init__(
        self,
        images: Sequence[SourceImage],
        embedder: Embedder,
        cache: EmbeddingCache | None,
        site: Path,
        spec: str,
        batch_size: int,
    ) -> None:
        self.images, self.embedder, self.cache = images, embedder, cache
        self.site, self.spec, self.batch_size = site, spec, batch_size
        self.records: dict[int, ImageRecord] = {}
        self.features: dict[int, np.ndarray] = {}
        self.skipped: dict[int, SkippedImage] = {}
        self.batch: list[tuple[int, str, np.ndarray]] = []
        self.new_thumbs: list[tuple[str, CachedThumb]] = []
        self.vectors: dict[str, np.ndarray] = {}
        self.embedded = 0

    def from_cache(self) -> list[int]:
        """Serve what the cache has; return the indices that must be decoded."""
        if self.cache is None:
            self._prefetch()
            return list(range(len(self.images)))
        digests = self.cache.digests([image.path for image in self.images])
        known = [d for d in digests if isinstance(d, str)]
        self.vectors = self.cache.vectors(namespace(self.embedder.info), known)
        thumbs = self.cache.thumbs(self.spec, known)
        todo = []
        for index, digest in enumerate(digests):
            if isinstance(digest, OSError):
                self._skip(index, Message.of("skip_unreadable", error=digest.strerror or digest))
            elif digest in self.vectors and digest in thumbs:
                self.records[index] = self._save_thumb(index, digest, thumbs[digest])
                self.features[index] = self.vectors[digest]
            else:
                todo.append(index)
        if any(not isinstance(digests[i], str) or digests[i] not in self.vectors for i in todo):
            self._prefetch()
        return todo

    def _prefetch(self) -> None:
        prefetch = getattr(self.embedder, "prefetch", None)
        if prefetch is not None:
            prefetch()

    def take(self, index: int, result: Decoded | DecodeError) -> int:
        """Add one decoded image; returns how many images are now finished (for progress)."""
        if isinstance(result, DecodeError):
            self._skip(index, result.why)
            return 1
        thumb = CachedThumb(result.thumb, result.thumb_size, result.size)
        self.records[index] = self._save_thumb(index, result.sha256, thumb)
        if self.cache is not None:
            self.new_thumbs.append((result.sha256, thumb))
        if result.sha256 in self.vectors:
            self.features[index] = self.vectors[result.sha256]
            return 1
        self.batch.append((index, result.sha256, result.pixels))
        return self.flush() if len(self.batch) >= self.batch_size else 0

    def flush(self) -> int:
        """Embed the pending batch and store new results in the cache; returns the batch size."""
        done = len(self.batch)
        if self.batch:
            vectors = self.embedder(np.stack([pixels for _, _, pixels in self.batch]))
            for (index, _, _), vector in zip(self.batch, vectors, strict=True):
                self.features[index] = vector
            self.embedded += len(self.batch)
            if self.cache is not None:
                space = namespace(self.embedder.info)
                self.cache.put_vectors(
                    space, [(d, v) for (_, d, _), v in zip(self.batch, vectors, strict=True)]
                )
            self.batch = []
            release_freed_memory()
        if self.cache is not None and self.new_thumbs:
            self.cache.put_thumbs(self.spec, self.new_thumbs)
        self.new_thumbs = []
        return done

    def result(self) -> Embedded:
        order = sorted(self.records)
        features = (
            np.stack([self.features[i] for i in order]).astype(np.float32)
            if order
            else np.empty((0, 0), dtype=np.float32)
        )
        return Embedded(
            tuple(self.records[i] for i in order),
            features,
            tuple(self.skipped[i] for i in sorted(self.skipped)),
            self.embedder.info,
            self.embedded,
        )

    def _skip(self, index: int, why: Message) -> None:
        rel = self.images[index].rel
        log.warning("skipped %s: %s", rel, why)
        self.skipped[index] = SkippedImage(rel, why)

    def _save_thumb(self, index: int, digest: str, thumb: CachedThumb) -> ImageRecord:
        """Thumbnails are named by content hash: no file name leaks, duplicates share one file."""
        rel = f"thumbs/{digest[:20]}.{THUMB_FORMAT}"
        target = self.site / rel
        if not target.exists():
            target.write_bytes(thumb.data)
        return ImageRecord(self.images[index].rel, rel, thumb.thumb_size, thumb.size, digest)


def _decoded(
    images: Sequence[SourceImage], indices: Sequence[int], thumb_size: int
) -> Iterator[tuple[int, Decoded | DecodeError]]:
    """Results in input order, with at most LOOKAHEAD decodes in flight."""
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        pending: deque[tuple[int, Future[Decoded | DecodeError]]] = deque()
        todo = iter(zip(indices, images, strict=True))
        for index, image in islice(todo, LOOKAHEAD):
            pending.append((index, pool.submit(_try_decode, image.path, thumb_size)))
        while pending:
            index, future = pending.popleft()
            for following, image in islice(todo, 1):
                pending.append((following, pool.submit(_try_decode, image.path, thumb_size)))
            yield index, future.result()


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Give the memory freed by the last batch back to the OS. Under glibc, the model's freed
    temporaries and the decoded pixels otherwise stay in a fragmented heap: a 10,000-image build
    grew by about 90 KB per image. Returns whether anything could be asked of the C library."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def _try_decode(path: Path, thumb_size: int) -> Decoded | DecodeError:
    try:
        return decode(path, PREPROCESS.size, thumb_size)
    except DecodeError as exc:
        return exc
