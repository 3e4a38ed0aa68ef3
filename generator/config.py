"""The build's options as one frozen, validated object (the CLI only fills it in)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import ConfigError
from generator.i18n import LANGS

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("auto", "torch", "openvino")
PRETRAINED = "pretrained"
RANDOM = "random"
K_MIN = 2
MAX_SEED = 2**32 - 1
MAX_FILE_SIZE = 2 * 10**9  # --max-file-size's default (imaging.MAX_FILE_SIZE says why)
ENGINES = ("local", "ray")
DISPLAY_POINTS = 5_000  # --display-points: chosen with benchmarks/bench_page.py (README)
MIN_DISPLAY_POINTS = 1_000  # so that each cluster of each k (≤ 50) can keep its own point


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build produces; same config + same inputs → same site."""

    inputs: tuple[Path, ...] = ()  # folders and/or image files; empty with `embeddings`
    output: Path = Path("site")
    title: str | None = None  # None: the UI string `title_key`, in the page's language
    title_key: str = "default_title"
    weights: str = PRETRAINED
    device: str = "auto"
    batch_size: int = 32
    k_max: int = 10
    seed: int = 0
    thumb_size: int = 192
    preview_size: int = 800  # longest side of the larger image the preview shows; 0: none
    strict: bool = False
    precision: str = "auto"
    cache_dir: Path | None = None  # None: no embedding cache (--no-cache)
    extra_excludes: tuple[Path, ...] = field(default=())
    zip_file: Path | None = None  # also write the site as one deterministic zip (--zip)
    single_file: bool = False  # write one self-contained HTML file at `output` instead
    max_size: int | None = None  # bytes the zip or single file must fit in (--max-size)
    labels: str | None = None  # "folders" or the path of a path,label CSV
    export_embeddings: bool = False  # also write embeddings.npy and pca.npy
    lang: str = "en"  # the page's language at first opening (the reader can switch)
    embeddings: Path | None = None  # build from this Parquet store instead of images
    images_root: Path | None = None  # with `embeddings`: where originals are, for thumbnails
    display_points: int | None = DISPLAY_POINTS  # the most points the 3D view draws; None: all
    backend: str = "auto"  # what runs the model: auto, torch or openvino (the accel extra)
    workers: int | None = None  # decode processes (None: every CPU this process may use)
    max_file_size: int = MAX_FILE_SIZE  # --max-file-size: larger images are skipped, never read

    def __post_init__(self) -> None:
        check_utf8(
            ("-o", self.output),
            ("--zip", self.zip_file),
            ("--embeddings", self.embeddings),
            ("--images-root", self.images_root),
            ("--cache-dir", self.cache_dir),
        )
        if self.embeddings is not None and self.inputs:
            raise ConfigError(
                "Give either image INPUTS or --embeddings DIR, not both: --embeddings builds the "
                "site from the Parquet files alone."
            )
        if self.images_root is not None and self.embeddings is None:
            raise ConfigError("--images-root only applies with --embeddings DIR.")
        if not self.inputs and self.embeddings is None:
            raise ConfigError("No input given: name at least one folder or image file.")
        _check_model(self.device, self.precision, self.batch_size, self.thumb_size, self.seed)
        _check_backend(self.backend, self.workers)
        if self.k_max < K_MIN:
            raise ConfigError(f"--k-max must be at least {K_MIN} (got {self.k_max}).")
        if self.k_max > 50:
            raise ConfigError(f"--k-max must be at most 50 (got {self.k_max}).")
        _check_preview(self.thumb_size, self.preview_size)
        if self.display_points is not None and self.display_points < MIN_DISPLAY_POINTS:
            raise ConfigError(
                f"--display-points must be 'all' or at least {MIN_DISPLAY_POINTS:,} "
                f"(got {self.display_points})."
            )
        if self.title is not None and not self.title.strip():
            raise ConfigError("--title must not be empty.")
        if self.lang not in LANGS:
            raise ConfigError(f"Unknown language {self.lang!r}: use one of {', '.join(LANGS)}.")
        self._check_delivery()
        if self.labels is not None and not self.labels.strip():
            raise ConfigError("--labels must be 'folders' or the path of a CSV file.")

    def _check_delivery(self) -> None:
        if self.single_file and self.zip_file is not None:
            raise ConfigError("--zip and --single-file are two ways to share the site; choose one.")
        if self.single_file and self.output.suffix.lower() not in (".html", ".htm"):
            raise ConfigError(
                f"--single-file writes one HTML file: name it with -o, e.g. -o report.html "
                f"(got {self.output})."
            )
        if self.max_size is not None and self.zip_file is None and not self.single_file:
            raise ConfigError(
                "--max-size limits what you send: use it with --zip or --single-file."
            )
        if self.max_size is not None and self.max_size < 1:
            raise ConfigError(f"--max-size must be more than 0 bytes (got {self.max_size}).")

    @property
    def random_weights(self) -> bool:
        return self.weights == RANDOM

    # The stages' own views of the flat options: each stage takes only what it needs.

    @property
    def model(self) -> ModelConfig:
        return ModelConfig(self.weights, self.device, self.precision, self.seed, self.backend)

    @property
    def embedding(self) -> EmbedConfig:
        return EmbedConfig(
            self.inputs,
            self.output,
            self.model,
            self.cache_dir,
            self.batch_size,
            self.thumb_size,
            self.strict,
            self.extra_excludes,
        )

    @property
    def analysis(self) -> AnalysisConfig:
        return AnalysisConfig(self.k_max, self.seed, self.labels)

    @property
    def site(self) -> SiteConfig:
        return SiteConfig(
            self.output,
            self.title,
            self.title_key,
            self.lang,
            self.export_embeddings,
            self.display_points,
        )

    @property
    def delivery(self) -> DeliveryConfig:
        return DeliveryConfig(self.zip_file, self.single_file, self.max_size)


@dataclass(frozen=True)
class ModelConfig:
    """Which model makes the vectors (the embed stage; `dinoclust embed` and `build`)."""

    weights: str = PRETRAINED
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0  # seeds --weights random
    backend: str = "auto"


@dataclass(frozen=True)
class EmbedConfig:
    """`dinoclust embed`: images in, a Parquet store out (no analysis, no site)."""

    inputs: tuple[Path, ...]
    output: Path
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: Path | None = None
    batch_size: int = 32
    thumb_size: int = 192
    preview_size: int = 800  # stored in the `preview` column, as `build` makes them; 0: none
    strict: bool = False
    extra_excludes: tuple[Path, ...] = field(default=())
    overwrite: bool = False  # start the store again instead of keeping unchanged rows
    manifest: Path | None = None  # a text file of paths, or Parquet with a `path` column
    engine: str = "local"  # who schedules the batches: "local" or "ray"
    ray_address: str | None = None  # --engine ray: None is Ray's `auto`, else a local cluster
    workers: int | None = None  # decode processes; --engine ray: actors (every CPU but one)
    max_file_size: int = MAX_FILE_SIZE  # --max-file-size
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        check_utf8(
            ("-o", self.output), ("--manifest", self.manifest), ("--cache-dir", self.cache_dir)
        )
        if not self.inputs and self.manifest is None:
            raise ConfigError(
                "No input given: name at least one folder or image file, or --manifest FILE."
            )
        if self.inputs and self.manifest is not None:
            raise ConfigError("Give either image INPUTS or --manifest FILE, not both.")
        if self.engine not in ENGINES:
            raise ConfigError(f"Unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}.")
        ray_only = {
            "--ray-address": self.ray_address is not None,
            "--gpus-per-worker": self.gpus_per_worker != 0,
        }
        given = [name for name, set_ in ray_only.items() if set_]
        if self.engine != "ray" and given:
            raise ConfigError(f"{given[0]} only applies with --engine ray.")
        _check_backend(self.model.backend, self.workers)
        if self.gpus_per_worker < 0:
            raise ConfigError(f"--gpus-per-worker must be 0 or more (got {self.gpus_per_worker}).")
        m = self.model
        _check_model(m.device, m.precision, self.batch_size, self.thumb_size, m.seed)
        _check_preview(self.thumb_size, self.preview_size)


@dataclass(frozen=True)
class AnalysisConfig:
    k_max: int = 10
    seed: int = 0
    labels: str | None = None


@dataclass(frozen=True)
class SiteConfig:
    output: Path = Path("site")
    title: str | None = None
    title_key: str = "default_title"
    lang: str = "en"
    export_embeddings: bool = False
    display_points: int | None = DISPLAY_POINTS


@dataclass(frozen=True)
class DeliveryConfig:
    zip_file: Path | None = None
    single_file: bool = False
    max_size: int | None = None


def _check_preview(thumb_size: int, preview_size: int) -> None:
    if preview_size != 0 and not thumb_size < preview_size <= 4096:
        raise ConfigError(
            f"--preview-size must be 0 (no previews) or between --thumb-size "
            f"({thumb_size}) and 4096 (got {preview_size})."
        )


def _check_backend(backend: str, workers: int | None) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers}).")


def _check_model(device: str, precision: str, batch_size: int, thumb_size: int, seed: int) -> None:
    if device not in DEVICES:
        raise ConfigError(f"Unknown device {device!r}: use one of {', '.join(DEVICES)}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"Unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}.")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 (got {batch_size}).")
    if not 32 <= thumb_size <= 1024:
        raise ConfigError(f"--thumb-size must be between 32 and 1024 (got {thumb_size}).")
    if seed < 0:
        raise ConfigError(f"--seed must be zero or positive (got {seed}).")
    if seed > MAX_SEED:  # NumPy's and scikit-learn's seeds are 32-bit
        raise ConfigError(f"--seed must be at most {MAX_SEED} (got {seed}).")


def check_utf8(*paths: tuple[str, object]) -> None:
    """A path the output is written to (or a store read from) must be UTF-8 text: Arrow's file
    system and the zip's names hold nothing else. A terminal's other bytes are refused here."""
    for option, path in paths:
        if path is None:
            continue
        try:
            os.fspath(path).encode("utf-8")  # type: ignore[call-overload]
        except UnicodeEncodeError:
            raise ConfigError(
                f"{option} {path}: the name is not UTF-8 text, which the files dinoclust writes "
                "and reads need. Choose a name in UTF-8."
            ) from None
