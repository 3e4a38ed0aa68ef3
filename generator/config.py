"""The commands' options, each written once, and the configs they fill in.

An `Option` holds an option's flags, default, values and help: cli.py makes the click options
from it, api.py's `build` takes its defaults from it, and BuildConfig, EmbedConfig and
SortConfig take their defaults and their list of values from it; so `dinoclust build` and
`generator.build` cannot drift apart. Each config checks what it is given in __post_init__,
with the CLI's words, once for every way in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import ConfigError
from generator.i18n import LANGS

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("auto", "torch", "openvino")
ENGINES = ("local", "ray")
MODES = ("link", "copy", "symlink")  # dinoclust sort
PRETRAINED = "pretrained"
RANDOM = "random"
K_MIN = 2
K_LIMIT = 50  # the most clusters --k-max and sort's --k allow
MAX_SEED = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit
MAX_FILE_SIZE = 2 * 10**9  # --max-file-size's default (imaging._MAX_FILE_BYTES says why)
DISPLAY_POINTS = 5_000  # --display-points: chosen with benchmarks/bench_page.py (README)
MIN_DISPLAY_POINTS = 1_000  # so that each cluster of each k (≤ 50) can keep its own point


@dataclass(frozen=True)
class Option:
    """One command-line option: `--flag` in the CLI, `name=` in the API and the configs.

    `kind` says how the CLI reads it: text, int, float, flag, count, choice, path, size (20MB)
    or points (N|all); `file_okay`/`dir_okay` narrow a path."""

    name: str
    flags: tuple[str, ...]
    help: str
    default: Any = None
    kind: str = "text"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    show_default: bool = False
    required: bool = False
    file_okay: bool = True
    dir_okay: bool = True
    typed: str | None = None  # the default as one types it, where that reads better (2GB)

    def check(self, value: Any) -> None:
        """A value outside `choices`, refused in the words click uses for the CLI."""
        if self.choices and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            said = "Invalid value for '{" + self.name + "}': {value} is not one of {allowed}."
            raise option_error(said, value=repr(value), allowed=allowed)


# --- the options, in the order `--help` lists them --------------------------------------------

OUTPUT = Option(
    "output",
    ("-o", "--output"),
    "Folder to write the site into (replaced only if empty or made by dinoclust).",
    Path("site"),
    "path",
    show_default=True,
)
SINGLE_OUTPUT = Path("report.html")  # --single-file without -o
TITLE = Option("title", ("--title",), "Title shown on the page.")
WEIGHTS = Option(
    "weights",
    ("--weights",),
    "'pretrained': DINO weights from the model hub (downloaded once, then cached); PATH: a "
    "local checkpoint (timm .safetensors/.pth or Facebook's dino_deitsmall16_pretrain.pth); "
    "'random': untrained weights, smoke tests only.",
    PRETRAINED,
    metavar="pretrained|random|PATH",
    show_default=True,
)
DEVICE = Option(
    "device",
    ("--device",),
    "Where the model runs; auto prefers cuda, then mps, then cpu.",
    "auto",
    "choice",
    DEVICES,
    show_default=True,
)
PRECISION = Option(
    "precision",
    ("--precision",),
    "Model precision; auto picks bf16 where the hardware does it natively (CUDA, CPUs with AMX "
    "or AVX512-BF16); on CPUs with int8 (VNNI) units int8 (OpenVINO + NNCF, the accel extra) "
    "if it holds the accuracy floors on a bundled check set; else fp32.",
    "auto",
    "choice",
    PRECISIONS,
    show_default=True,
)
BACKEND = Option(
    "backend",
    ("--backend",),
    "What runs the model: auto picks OpenVINO on the CPU when it is installed (pip install "
    "'dinoclust[accel]'; about 1.3x faster with bf16 units), else torch.",
    "auto",
    "choice",
    BACKENDS,
    show_default=True,
)
WORKERS = Option(
    "workers",
    ("--workers",),
    "Processes that decode images and make thumbnails [default: every CPU this process may use].",
    kind="int",
    metavar="N",
)
CACHE_DIR = Option(
    "cache_dir",
    ("--cache-dir",),
    "Where embeddings and thumbnails are cached [default: $DINOCLUST_CACHE_DIR or the user "
    "cache folder].",
    kind="path",
    file_okay=False,
)
NO_CACHE = Option("no_cache", ("--no-cache",), "Neither read nor write the cache.", False, "flag")
BATCH_SIZE = Option(
    "batch_size", ("--batch-size",), "Images per model batch.", 32, "int", show_default=True
)
K_MAX = Option(
    "k_max",
    ("--k-max",),
    "Largest number of clusters; K-means runs for k = 2 … min(k-max, N).",
    10,
    "int",
    show_default=True,
)
SEED = Option(
    "seed",
    ("--seed",),
    "Random seed for K-means (and for --weights random).",
    0,
    "int",
    show_default=True,
)
THUMB_SIZE = Option(
    "thumb_size",
    ("--thumb-size",),
    "Longest side of the thumbnails, in pixels.",
    192,
    "int",
    show_default=True,
)
PREVIEW_SIZE = Option(
    "preview_size",
    ("--preview-size",),
    "Longest side of the larger image the preview shows, in pixels (0: none; the preview then "
    "shows the thumbnail).",
    800,
    "int",
    show_default=True,
)
FILE_SIZE = Option(
    "max_file_size",
    ("--max-file-size",),
    "Skip (with a reason) image files larger than this, without reading them; decoded images "
    "are also limited to 179 megapixels (decompression bombs).",
    MAX_FILE_SIZE,
    "size",
    metavar="SIZE",
    show_default=True,
    typed="2GB",
)
DISPLAY = Option(
    "display_points",
    ("--display-points",),
    "Above N images the 3D view draws a fixed sample of N (every cluster in it); sizes, grid "
    "and downloads still count every image. 'all': draw every image.",
    DISPLAY_POINTS,
    "points",
    metavar="N|all",
    show_default=True,
)
STRICT = Option("strict", ("--strict",), "Fail (exit 1) if any file cannot be used.", False, "flag")
LABELS = Option(
    "labels",
    ("--labels",),
    "Known labels to compare the clusters with: 'folders' (each image's first folder below its "
    "input) or a CSV of path,label rows.",
    metavar="folders|FILE.csv",
)
EXPORT_EMBEDDINGS = Option(
    "export_embeddings",
    ("--export-embeddings",),
    "Also write embeddings.npy (N x 384) and pca.npy beside report.json.",
    False,
    "flag",
)
QUERY = Option(
    "query",
    ("--query",),
    'Add "Find where a photo belongs" to the page: a reader drops a new photo and sees its '
    "cluster for every k and the 12 most similar images, computed in the browser, offline (the "
    "model and its runtime go into the site: about 77 MB more; docs: Query by photo).",
    False,
    "flag",
)
ZIP = Option(
    "zip_file",
    ("--zip",),
    "Also write the site as one zip FILE to e-mail (same inputs, same bytes).",
    kind="path",
    metavar="FILE",
    dir_okay=False,
)
SINGLE_FILE = Option(
    "single_file",
    ("--single-file",),
    "Write one self-contained HTML file instead of a folder (-o names it; default report.html).",
    False,
    "flag",
)
MAX_SIZE = Option(
    "max_size",
    ("--max-size",),
    "Shrink the thumbnails until the zip or single file fits SIZE (e.g. 20MB); exit 1 saying "
    "what would fit if nothing does.",
    kind="size",
    metavar="SIZE",
)
LANG = Option(
    "lang",
    ("--lang",),
    "Language of the page when first opened (readers can switch: EN / 日本語).",
    "en",
    "choice",
    LANGS,
    show_default=True,
)
OPEN = Option(
    "open",
    ("--open",),
    "Open the finished site (or the single file) in the default browser.",
    False,
    "flag",
)
VERBOSE = Option("verbose", ("-v", "--verbose"), "Say more (-vv for debug output).", 0, "count")
QUIET = Option("quiet", ("-q", "--quiet"), "Only errors; no progress bar.", False, "flag")
EMBEDDINGS = Option(
    "embeddings",
    ("--embeddings",),
    "Build from the Parquet files in DIR (written by `dinoclust embed`, or any Parquet with path "
    "and embedding columns) instead of from images: no model, no originals.",
    kind="path",
    metavar="DIR",
)
IMAGES_ROOT = Option(
    "images_root",
    ("--images-root",),
    "With --embeddings: where the originals are (DIR/path), for thumbnails the Parquet files "
    "lack; without it such images show their file name.",
    kind="path",
    metavar="DIR",
    file_okay=False,
)

# dinoclust embed's own
STORE = Option(
    "output",
    ("-o", "--output"),
    "Folder for the Parquet files (must be empty or made by `dinoclust embed`).",
    Path("embeddings"),
    "path",
    show_default=True,
    file_okay=False,
)
OVERWRITE = Option(
    "overwrite",
    ("--overwrite",),
    "Make every embedding again instead of keeping the rows of unchanged files.",
    False,
    "flag",
)
MANIFEST = Option(
    "manifest",
    ("--manifest",),
    "Embed the images listed in FILE (one path a line, or Parquet with a 'path' column) instead "
    "of walking INPUTS.",
    kind="path",
    metavar="FILE",
    dir_okay=False,
)
ENGINE = Option(
    "engine",
    ("--engine",),
    "Who schedules the batches: this machine, or a Ray cluster (pip install 'dinoclust[ray]').",
    "local",
    "choice",
    ENGINES,
    show_default=True,
)
RAY_ADDRESS = Option(
    "ray_address",
    ("--ray-address",),
    "With --engine ray: the cluster to join (host:6379, ray://host:10001, auto). Default: the "
    "one `ray start` made on this machine, else a new local one.",
    metavar="ADDR",
)
ACTORS = Option(
    "workers",
    ("--workers",),
    "Processes that decode images [default: every CPU this process may use]; with --engine "
    "ray: model actors, each loading the model once [default: every CPU of the cluster but "
    "one].",
    kind="int",
    metavar="N",
)
GPUS_PER_WORKER = Option(
    "gpus_per_worker",
    ("--gpus-per-worker",),
    "With --engine ray: GPUs each actor asks for (0.5: two actors share one GPU).",
    0.0,
    "float",
    metavar="F",
)

# dinoclust sort's own
SORTED = Option(
    "output",
    ("-o", "--output"),
    "Folder to write the clusters into (new, empty, or written by dinoclust).",
    kind="path",
    metavar="DIR",
    required=True,
    file_okay=False,
)
K = Option("k", ("--k",), "Number of clusters [default: the suggested k].", kind="int")
MODE = Option(
    "mode",
    ("--mode",),
    "Hard links (no extra space; a copy where a link cannot be made, which is said), copies, or "
    "symbolic links.",
    "link",
    "choice",
    MODES,
    show_default=True,
)

# dinoclust query's own
SITE = Option(
    "site",
    ("--site",),
    "The site to search: a folder built with `dinoclust build --query`.",
    kind="path",
    metavar="SITE",
    required=True,
    file_okay=False,
)
AS_JSON = Option("as_json", ("--json",), "Print the answers as JSON (6 decimals).", False, "flag")

# Each command's options, in the order of its --help (demo takes build's but the store's two).
# The model, cache and thumbnail options are build's own, so the same option means the same
# thing, with the same default, everywhere.
MODEL_OPTIONS = (WEIGHTS, DEVICE, PRECISION, BACKEND)
BUILD_OPTIONS = (
    *(OUTPUT, TITLE, *MODEL_OPTIONS, WORKERS, CACHE_DIR, NO_CACHE, BATCH_SIZE, K_MAX, SEED),
    *(THUMB_SIZE, PREVIEW_SIZE, FILE_SIZE, DISPLAY, STRICT, LABELS, EXPORT_EMBEDDINGS, QUERY),
    ZIP,
    *(SINGLE_FILE, MAX_SIZE, LANG, OPEN, VERBOSE, QUIET),
)
STORE_OPTIONS = (EMBEDDINGS, IMAGES_ROOT)  # build's only
EMBED_OPTIONS = (
    *(STORE, OVERWRITE, MANIFEST, ENGINE, RAY_ADDRESS, ACTORS, GPUS_PER_WORKER, *MODEL_OPTIONS),
    *(CACHE_DIR, NO_CACHE, BATCH_SIZE, SEED, THUMB_SIZE, PREVIEW_SIZE, FILE_SIZE, STRICT),
    *(VERBOSE, QUIET),
)
QUERY_OPTIONS = (SITE, AS_JSON, *MODEL_OPTIONS, SEED, CACHE_DIR, NO_CACHE, VERBOSE, QUIET)
SORT_OPTIONS = (
    *(SORTED, K, MODE, *MODEL_OPTIONS, WORKERS, CACHE_DIR, NO_CACHE, BATCH_SIZE, K_MAX, SEED),
    *(THUMB_SIZE, FILE_SIZE, STRICT, LABELS, VERBOSE, QUIET),
)

# every option by its name in the API, for the messages that name one (option_error)
NAMED = {o.name: o for o in (*BUILD_OPTIONS, *STORE_OPTIONS, *EMBED_OPTIONS, *SORT_OPTIONS)}
ARGUMENTS = {"inputs": "INPUTS"}  # the commands' argument, as the CLI's help names it
_PLACE = re.compile(r"\{(\w+)(?:([= ])([^{}]*))?\}")


def option_error(template: str, **values: object) -> ConfigError:
    """A refused option, its message written once for both ways in: `{name}` is an option as
    the caller names it (--k-max on the command line, k_max in Python, where a flag is
    `flag=True`); `{name=value}` one given a value (-o report.html; output="report.html"), the
    value being one of `values` or the text itself; `{name META}` one with its metavar
    (--embeddings DIR; embeddings); any other `{name}` is one of `values`."""
    return ConfigError(_said(template, values, api=False), api=_said(template, values, api=True))


def _said(template: str, values: dict[str, object], api: bool) -> str:
    def place(match: re.Match[str]) -> str:
        name, sep, rest = match.groups()
        if sep is None and name in values:
            return str(values[name])
        option = NAMED.get(name)
        flag = option.flags[0] if option is not None else ARGUMENTS[name]
        if sep == "=":
            value = values.get(rest, rest)
            return f'{name}="{value}"' if api else f"{flag} {value}"
        if sep == " ":
            return name if api else f"{flag} {rest}"
        if not api:
            return flag
        return f"{name}=True" if option is not None and option.kind == "flag" else name

    return _PLACE.sub(place, template)


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build produces; same config + same inputs → same site."""

    inputs: tuple[Path, ...] = ()  # folders and/or image files; empty with `embeddings`
    output: Path = OUTPUT.default
    title: str | None = TITLE.default  # None: the UI string `title_key`, in the page's language
    title_key: str = "default_title"
    weights: str = WEIGHTS.default
    device: str = DEVICE.default
    batch_size: int = BATCH_SIZE.default
    k_max: int = K_MAX.default
    seed: int = SEED.default
    thumb_size: int = THUMB_SIZE.default
    preview_size: int = PREVIEW_SIZE.default  # the preview's larger image; 0: none
    strict: bool = STRICT.default
    precision: str = PRECISION.default
    cache_dir: Path | None = None  # None: no embedding cache (--no-cache)
    extra_excludes: tuple[Path, ...] = ()
    zip_file: Path | None = ZIP.default  # also write the site as one deterministic zip
    single_file: bool = SINGLE_FILE.default  # write one self-contained HTML file at `output`
    max_size: int | None = MAX_SIZE.default  # bytes the zip or single file must fit in
    labels: str | None = LABELS.default  # "folders" or the path of a path,label CSV
    export_embeddings: bool = EXPORT_EMBEDDINGS.default  # also embeddings.npy and pca.npy
    lang: str = LANG.default  # the page's language at first opening (the reader can switch)
    embeddings: Path | None = EMBEDDINGS.default  # build from this Parquet store, not images
    images_root: Path | None = IMAGES_ROOT.default  # with `embeddings`: originals, for thumbs
    display_points: int | None = DISPLAY.default  # the most points the 3D view draws; None: all
    backend: str = BACKEND.default  # what runs the model: auto, torch or openvino
    workers: int | None = WORKERS.default  # decode processes (None: every CPU it may use)
    max_file_size: int = FILE_SIZE.default  # larger images are skipped, never read
    query: bool = QUERY.default  # the page's "Find where a photo belongs" (model in the site)

    def __post_init__(self) -> None:
        check_utf8(
            ("output", self.output),
            ("zip_file", self.zip_file),
            ("embeddings", self.embeddings),
            ("images_root", self.images_root),
            ("cache_dir", self.cache_dir),
        )
        for option in (DEVICE, PRECISION, BACKEND, LANG):
            option.check(getattr(self, option.name))
        if self.embeddings is not None and self.inputs:
            raise option_error(
                "Give either image {inputs} or {embeddings DIR}, not both: {embeddings} builds "
                "the site from the Parquet files alone."
            )
        if self.images_root is not None and self.embeddings is None:
            raise option_error("{images_root} only applies with {embeddings DIR}.")
        if not self.inputs and self.embeddings is None:
            raise ConfigError("No input given: name at least one folder or image file.")
        _check_model(self.batch_size, self.thumb_size, self.seed)
        _check_workers(self.workers)
        if self.k_max < K_MIN:
            raise option_error(
                "{k_max} must be at least {least} (got {got}).", least=K_MIN, got=self.k_max
            )
        if self.k_max > K_LIMIT:
            raise option_error(
                "{k_max} must be at most {most} (got {got}).", most=K_LIMIT, got=self.k_max
            )
        _check_preview(self.thumb_size, self.preview_size)
        if self.display_points is not None and self.display_points < MIN_DISPLAY_POINTS:
            raise option_error(
                "{display_points} must be 'all' or at least {least} (got {got}).",
                least=f"{MIN_DISPLAY_POINTS:,}",
                got=self.display_points,
            )
        if self.title is not None and not self.title.strip():
            raise option_error("{title} must not be empty.")
        self._check_delivery()
        if self.labels is not None and not self.labels.strip():
            raise option_error("{labels} must be 'folders' or the path of a CSV file.")

    def _check_delivery(self) -> None:
        if self.single_file and self.zip_file is not None:
            raise option_error(
                "{zip_file} and {single_file} are two ways to share the site; choose one."
            )
        if self.single_file and self.output.suffix.lower() not in (".html", ".htm"):
            raise option_error(
                "{single_file} writes one HTML file: name it with {output}, e.g. "
                "{output=report.html} (got {got}).",
                got=self.output,
            )
        if self.max_size is not None and self.zip_file is None and not self.single_file:
            raise option_error(
                "{max_size} limits what you send: use it with {zip_file} or {single_file}."
            )
        if self.max_size is not None and self.max_size < 1:
            raise option_error(
                "{max_size} must be more than 0 bytes (got {got}).", got=self.max_size
            )

    @property
    def random_weights(self) -> bool:
        return self.weights == RANDOM

    @property
    def model(self) -> ModelConfig:
        """What the embed stage needs to plan and load the model (model.embed.plan_embedder)."""
        return ModelConfig(self.weights, self.device, self.precision, self.seed, self.backend)


@dataclass(frozen=True)
class ModelConfig:
    """Which model makes the vectors (the embed stage; `dinoclust embed` and `build`)."""

    weights: str = WEIGHTS.default
    device: str = DEVICE.default
    precision: str = PRECISION.default
    seed: int = SEED.default  # seeds --weights random
    backend: str = BACKEND.default

    def __post_init__(self) -> None:
        for option in (DEVICE, PRECISION, BACKEND):
            option.check(getattr(self, option.name))


@dataclass(frozen=True)
class EmbedConfig:
    """`dinoclust embed`: images in, a Parquet store out (no analysis, no site)."""

    inputs: tuple[Path, ...]
    output: Path = STORE.default
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: Path | None = None
    batch_size: int = BATCH_SIZE.default
    thumb_size: int = THUMB_SIZE.default
    preview_size: int = PREVIEW_SIZE.default  # stored in the `preview` column; 0: none
    strict: bool = STRICT.default
    overwrite: bool = OVERWRITE.default  # start the store again, not keeping unchanged rows
    manifest: Path | None = MANIFEST.default  # a text file of paths, or Parquet with `path`
    engine: str = ENGINE.default  # who schedules the batches: "local" or "ray"
    ray_address: str | None = RAY_ADDRESS.default  # None: Ray's `auto`, else a local cluster
    workers: int | None = ACTORS.default  # decode processes; --engine ray: actors
    max_file_size: int = FILE_SIZE.default
    gpus_per_worker: float = GPUS_PER_WORKER.default

    def __post_init__(self) -> None:
        check_utf8(
            ("output", self.output), ("manifest", self.manifest), ("cache_dir", self.cache_dir)
        )
        ENGINE.check(self.engine)
        if not self.inputs and self.manifest is None:
            raise option_error(
                "No input given: name at least one folder or image file, or {manifest FILE}."
            )
        if self.inputs and self.manifest is not None:
            raise option_error("Give either image {inputs} or {manifest FILE}, not both.")
        if self.engine != "ray" and (self.ray_address is not None or self.gpus_per_worker != 0):
            given = "ray_address" if self.ray_address is not None else "gpus_per_worker"
            raise option_error("{" + given + "} only applies with {engine=ray}.")
        _check_workers(self.workers)
        if self.gpus_per_worker < 0:
            raise option_error(
                "{gpus_per_worker} must be 0 or more (got {got}).", got=self.gpus_per_worker
            )
        _check_model(self.batch_size, self.thumb_size, self.model.seed)
        _check_preview(self.thumb_size, self.preview_size)


@dataclass(frozen=True)
class SortConfig:
    """`dinoclust sort`: `build` carries the inputs, DIR as its output and the model, cache and
    label options."""

    build: BuildConfig
    k: int | None = K.default  # None: the suggested k
    mode: str = MODE.default

    def __post_init__(self) -> None:
        MODE.check(self.mode)
        if self.k is not None and not K_MIN <= self.k <= K_LIMIT:
            raise option_error(
                "{k} must be between {least} and {most} (got {got}).",
                least=K_MIN,
                most=K_LIMIT,
                got=self.k,
            )


@dataclass(frozen=True)
class QueryConfig:
    """`dinoclust query`: photos in, where each belongs in a site built with --query."""

    photos: tuple[Path, ...]
    site: Path
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.photos:
            raise ConfigError("No photo given: name at least one image file.")
        _check_model(BATCH_SIZE.default, THUMB_SIZE.default, self.model.seed)


def _check_preview(thumb_size: int, preview_size: int) -> None:
    if preview_size != 0 and not thumb_size < preview_size <= 4096:
        raise option_error(
            "{preview_size} must be 0 (no previews) or between {thumb_size} ({thumb}) and 4096 "
            "(got {got}).",
            thumb=thumb_size,
            got=preview_size,
        )


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise option_error("{workers} must be at least 1 (got {got}).", got=workers)


def _check_model(batch_size: int, thumb_size: int, seed: int) -> None:
    if batch_size < 1:
        raise option_error("{batch_size} must be at least 1 (got {got}).", got=batch_size)
    if not 32 <= thumb_size <= 1024:
        raise option_error("{thumb_size} must be between 32 and 1024 (got {got}).", got=thumb_size)
    if seed < 0:
        raise option_error("{seed} must be zero or positive (got {got}).", got=seed)
    if seed > MAX_SEED:
        raise option_error("{seed} must be at most {most} (got {got}).", most=MAX_SEED, got=seed)


def check_utf8(*paths: tuple[str, object]) -> None:  # (an option's name, its path)
    """A path the output is written to (or a store read from) must be UTF-8 text: Arrow's file
    system and the zip's names hold nothing else. A terminal's other bytes are refused here."""
    for option, path in paths:
        if path is None:
            continue
        try:
            os.fspath(path).encode("utf-8")  # type: ignore[call-overload]
        except UnicodeEncodeError:
            raise option_error(
                "{" + option + "=path}: the name is not UTF-8 text, which the files dinoclust "
                "writes and reads need. Choose a name in UTF-8.",
                path=path,
            ) from None
