"""The `dinoclust` command: parse options into a BuildConfig, run the pipeline, report.

The only module that imports click. Heavy modules are imported inside the commands so that
`dinoclust --help` is instant; library errors become click errors only here.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from generator.api import DEMO_IMAGES
from generator.config import (
    BACKENDS,
    DEVICES,
    DISPLAY_POINTS,
    LANGS,
    PRECISIONS,
    PRETRAINED,
    RANDOM,
)
from generator.errors import ConfigError, GeneratorError, printable
from generator.options import build_config, log_level, parse_points
from generator.sizes import format_size, parse_size
from generator.types import PHASE_LOGGER
from generator.version import __version__

if TYPE_CHECKING:
    from generator.commands.deliver import Delivery

log = logging.getLogger("generator")

DEMO_DIR = DEMO_IMAGES


BARS: list[object] = []  # the progress bars on the terminal now (at most one)
PROGRESS: dict[str, int] = {}  # how far each stage of this command got (for Ctrl-C's message)
EMBEDDING = "Embedding images"  # the engine's progress label
CLEAR_LINE = "\r\x1b[K"  # back to the line's start and erase it: the bar redraws below


class _ClickHandler(logging.Handler):
    """Warnings and info as plain one-liners on stderr ("warning: skipped a.png: empty file").
    While a progress bar is drawn, its line is cleared first: a warning never shares it."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        prefix = "" if record.levelno == logging.INFO else f"{level}: "
        if BARS:  # color=True: click would strip the escape, though a bar means a terminal
            click.echo(CLEAR_LINE, nl=False, err=True, color=True)
        click.echo(f"{prefix}{printable(record.getMessage())}", err=True)


class _Size(click.ParamType):
    """`20MB`, `1.5GB`, `800KB` or bytes (generator.sizes)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = _Size()


class _Points(click.ParamType):
    """`--display-points N|all`: a number, or None for every image (options.parse_points)."""

    name = "points"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        try:
            return parse_points(value)
        except ConfigError:
            self.fail(f"{value!r} is not a number or 'all'.", param, ctx)


POINTS = _Points()


def _setup_logging(verbose: int, quiet: bool) -> None:
    log.handlers[:] = [_ClickHandler()]
    log.setLevel(log_level(verbose, quiet))
    log.propagate = False
    # what the build is doing between progress bars ("loading model…"): on a terminal, as the
    # bars are; in a log only with -v
    shown = not quiet and sys.stderr.isatty()
    logging.getLogger(PHASE_LOGGER).setLevel(logging.INFO if shown else logging.NOTSET)


def _progress_for(quiet: bool) -> Callable[..., Any]:
    """A click progress bar on a terminal; nothing when quiet or piped (sqlite-utils style)."""
    show = not quiet and sys.stderr.isatty()

    @contextmanager
    def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
        PROGRESS[label] = 0

        def count(n: int) -> None:
            PROGRESS[label] += n

        if not show:
            yield count
            return
        with click.progressbar(
            length=total, label=label, file=sys.stderr, show_eta=True, show_pos=True
        ) as bar:
            BARS.append(bar)

            def update(n: int) -> None:
                count(n)
                bar.update(n)

            try:
                yield update
            finally:
                BARS.remove(bar)

    return progress


def build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `build` and `demo`."""
    options = [
        click.option(
            "-o",
            "--output",
            type=click.Path(path_type=Path),
            default=Path("site"),
            show_default=True,
            help="Folder to write the site into (replaced only if empty or made by dinoclust).",
        ),
        click.option("--title", help="Title shown on the page."),
        click.option(
            "--weights",
            default=PRETRAINED,
            show_default=True,
            metavar="pretrained|random|PATH",
            help="'pretrained': DINO weights from the model hub (downloaded once, then "
            "cached); PATH: a local checkpoint (timm .safetensors/.pth or Facebook's "
            "dino_deitsmall16_pretrain.pth); 'random': untrained weights, smoke tests only.",
        ),
        click.option(
            "--device",
            type=click.Choice(DEVICES),
            default="auto",
            show_default=True,
            help="Where the model runs; auto prefers cuda, then mps, then cpu.",
        ),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            default="auto",
            show_default=True,
            help="Model precision; auto picks bf16 where the hardware does it natively "
            "(CUDA, CPUs with AMX or AVX512-BF16); on other CPUs int8 (OpenVINO + NNCF, "
            "the accel extra) if it holds the accuracy floors on a bundled check set, else fp32.",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            show_default=True,
            help="What runs the model: auto picks OpenVINO on the CPU when it is installed "
            "(pip install 'dinoclust[accel]'; about 1.3x faster with bf16 units), else torch.",
        ),
        click.option(
            "--workers",
            type=int,
            metavar="N",
            help="Processes that decode images and make thumbnails "
            "[default: every CPU this process may use].",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Where embeddings and thumbnails are cached "
            "[default: $DINOCLUST_CACHE_DIR or the user cache folder].",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
        click.option(
            "--batch-size", type=int, default=32, show_default=True, help="Images per model batch."
        ),
        click.option(
            "--k-max",
            type=int,
            default=10,
            show_default=True,
            help="Largest number of clusters; K-means runs for k = 2 … min(k-max, N).",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Random seed for K-means (and for --weights random).",
        ),
        click.option(
            "--thumb-size",
            type=int,
            default=192,
            show_default=True,
            help="Longest side of the thumbnails, in pixels.",
        ),
        click.option(
            "--preview-size",
            type=int,
            default=800,
            show_default=True,
            help="Longest side of the larger image the preview shows, in pixels (0: none; "
            "the preview then shows the thumbnail).",
        ),
        click.option(
            "--max-file-size",
            type=SIZE,
            default="2GB",
            show_default=True,
            metavar="SIZE",
            help="Skip (with a reason) image files larger than this, without reading them; "
            "decoded images are also limited to 179 megapixels (decompression bombs).",
        ),
        click.option(
            "--display-points",
            type=POINTS,
            metavar="N|all",
            default=DISPLAY_POINTS,
            show_default=True,
            help="Above N images the 3D view draws a fixed sample of N (every cluster in it); "
            "sizes, grid and downloads still count every image. 'all': draw every image.",
        ),
        click.option("--strict", is_flag=True, help="Fail (exit 1) if any file cannot be used."),
        click.option(
            "--labels",
            metavar="folders|FILE.csv",
            help="Known labels to compare the clusters with: 'folders' (each image's "
            "first folder below its input) or a CSV of path,label rows.",
        ),
        click.option(
            "--export-embeddings",
            is_flag=True,
            help="Also write embeddings.npy (N x 384) and pca.npy beside report.json.",
        ),
        click.option(
            "--zip",
            "zip_file",
            type=click.Path(path_type=Path, dir_okay=False),
            metavar="FILE",
            help="Also write the site as one zip FILE to e-mail (same inputs, same bytes).",
        ),
        click.option(
            "--single-file",
            is_flag=True,
            help="Write one self-contained HTML file instead of a folder "
            "(-o names it; default report.html).",
        ),
        click.option(
            "--max-size",
            type=SIZE,
            metavar="SIZE",
            help="Shrink the thumbnails until the zip or single file fits SIZE (e.g. 20MB); "
            "exit 1 saying what would fit if nothing does.",
        ),
        click.option(
            "--lang",
            type=click.Choice(LANGS),
            default="en",
            show_default=True,
            help="Language of the page when first opened (readers can switch: EN / 日本語).",
        ),
        click.option(
            "--open",
            is_flag=True,
            help="Open the finished site (or the single file) in the default browser.",
        ),
        click.option("-v", "--verbose", count=True, help="Say more (-vv for debug output)."),
        click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# The options of build that decide the clusters (model, cache, labels, k-means): sort takes these.
MODEL_OPTIONS = frozenset(
    ("weights", "device", "precision", "cache_dir", "no_cache", "batch_size", "k_max", "seed")
    + ("thumb_size", "strict", "labels", "verbose", "quiet", "backend", "workers", "max_file_size")
)


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """build's options that decide the clusters, so that a sort after a build with the same
    options only looks up the cache."""
    func = build_options(func)
    func.__click_params__ = [  # type: ignore[attr-defined]
        p
        for p in func.__click_params__
        if p.name in MODEL_OPTIONS  # type: ignore[attr-defined]
    ]
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dinoclust")
def cli() -> None:
    """Turn a folder of images into a static website showing how they cluster.

    Images are embedded with DINO ViT-S/16, reduced with PCA and clustered with K-means for every
    k from 2 to 10; the site opens straight from disk (no server needed).
    """


# `embed` takes the model, cache, thumbnail and skip options of `build`, and these of its own.
EMBED_SHARED = (
    "weights",
    "device",
    "precision",
    "backend",
    "cache_dir",
    "no_cache",
    "batch_size",
    "seed",
    "thumb_size",
    "preview_size",
    "max_file_size",
    "strict",
    "verbose",
    "quiet",
)


def embed_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options `embed` shares with `build` (same names, same defaults)."""
    shared = build_options(lambda: None).__click_params__  # type: ignore[attr-defined]
    params = [p for p in shared if p.name in EMBED_SHARED]
    func.__click_params__ = [*getattr(func, "__click_params__", []), *params]  # type: ignore[attr-defined]
    return func


@cli.command(short_help="Build the site from folders of images, or from --embeddings.")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@build_options
@click.option(
    "--embeddings",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Build from the Parquet files in DIR (written by `dinoclust embed`, or any Parquet with "
    "path and embedding columns) instead of from images: no model, no originals.",
)
@click.option(
    "--images-root",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="With --embeddings: where the originals are (DIR/path), for thumbnails the Parquet "
    "files lack; without it such images show their file name.",
)
def build(inputs: tuple[Path, ...], title: str | None, **options: Any) -> None:
    """Build the site from INPUTS (folders and/or image files), or from --embeddings DIR.

    \b
    Examples:
      dinoclust build ~/Pictures/trip -o site/
      dinoclust build photos/ --weights dino_deitsmall16_pretrain.pth --k-max 6
      dinoclust build --embeddings emb/ -o site/
    """
    if not inputs and options.get("embeddings") is None:
        ctx = click.get_current_context()
        param = next(p for p in ctx.command.params if p.name == "inputs")
        raise click.MissingParameter(ctx=ctx, param=param, param_hint="'INPUTS...'")
    _run(inputs, title, **options)


@cli.command(short_help="Embed images into Parquet files, locally or on Ray.")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("embeddings"),
    show_default=True,
    help="Folder for the Parquet files (must be empty or made by `dinoclust embed`).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Make every embedding again instead of keeping the rows of unchanged files.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Embed the images listed in FILE (one path a line, or Parquet with a 'path' column) "
    "instead of walking INPUTS.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Who schedules the batches: this machine, or a Ray cluster (pip install "
    "'dinoclust[ray]').",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="With --engine ray: the cluster to join (host:6379, ray://host:10001, auto). Default: "
    "the one `ray start` made on this machine, else a new local one.",
)
@click.option(
    "--workers",
    type=int,
    metavar="N",
    help="Processes that decode images [default: every CPU this process may use]; with "
    "--engine ray: model actors, each loading the model once [default: every CPU of the "
    "cluster but one].",
)
@click.option(
    "--gpus-per-worker",
    type=float,
    default=0.0,
    metavar="F",
    help="With --engine ray: GPUs each actor asks for (0.5: two actors share one GPU).",
)
@embed_options
def embed(inputs: tuple[Path, ...], **options: Any) -> None:
    """Embed INPUTS into a Parquet dataset (part-*.parquet in -o DIR), without a report.

    A rerun brings DIR up to date: unchanged files are kept, new and changed ones are embedded,
    missing ones dropped. Build the site from it with `dinoclust build --embeddings DIR`.

    \b
    Examples:
      dinoclust embed ~/Pictures -o emb/
      dinoclust embed --manifest files.txt --engine ray --gpus-per-worker 1 -o /shared/emb/
      dinoclust build --embeddings emb/ -o site/
    """
    if not inputs and options.get("manifest") is None:
        ctx = click.get_current_context()
        param = next(p for p in ctx.command.params if p.name == "inputs")
        raise click.MissingParameter(ctx=ctx, param=param, param_hint="'INPUTS...'")
    _embed(inputs, **options)


@cli.command(short_help="Build a site from the 30 bundled sample images.")
@build_options
def demo(title: str | None, **options: Any) -> None:
    """Build a site from the bundled sample images (animals, food, transportation).

    Without --weights it uses the pretrained weights when they are cached or the model hub
    answers; otherwise random weights (the clusters are then meaningless), and says why.
    """
    source = click.get_current_context().get_parameter_source("weights")
    if source is click.core.ParameterSource.DEFAULT:
        options["weights"] = _demo_weights(options["quiet"])
    _run((DEMO_DIR,), title, title_key="demo_title", **options)


# demo's --help shows the default as it behaves: it falls back to random weights (build does not)
next(
    p for p in demo.params if p.name == "weights"
).show_default = "pretrained if cached or the hub answers, else random"


def _demo_weights(quiet: bool) -> str:
    """`demo` shows real clusters when it can, and still works offline (`build` never falls
    back: there a missing model is an error)."""
    from generator.model.vit import pretrained_unavailable

    why = pretrained_unavailable()
    if why is None:
        return PRETRAINED
    if not quiet:
        click.echo(
            f"warning: using random weights, so the clusters are meaningless: the pretrained "
            f"weights are not cached and {why}. For real clusters run `dinoclust demo` once "
            "with a network connection, or pass --weights PATH to a downloaded checkpoint.",
            err=True,
        )
    return RANDOM


@cli.command("sort", short_help="Sort images into one folder per cluster.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Folder to write the clusters into (new, empty, or written by dinoclust).",
)
@click.option("--k", type=int, help="Number of clusters [default: the suggested k].")
@click.option(
    "--mode",
    type=click.Choice(("link", "copy", "symlink")),
    default="link",
    show_default=True,
    help="Hard links (no extra space; a copy where a link cannot be made, which is said), "
    "copies, or symbolic links.",
)
@model_options
def sort_command(
    inputs: tuple[Path, ...],
    output: Path,
    k: int | None,
    mode: str,
    verbose: int,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
    **options: Any,
) -> None:
    """Sort INPUTS into one folder per cluster: DIR/cluster_<id>/<relative path>.

    The inputs are never moved or changed. DIR/clusters.csv lists path,cluster,distance_to_centre.
    With the options of an earlier build it only reads the cache.

    \b
    Examples:
      dinoclust sort ~/Pictures/trip -o trip-sorted/
      dinoclust sort photos/ -o sorted/ --k 6 --mode copy
    """
    _setup_logging(verbose, quiet)
    from generator.commands.sort import SortConfig, sort_collection

    try:
        build = build_config(
            inputs, output=output, cache_dir=cache_dir, no_cache=no_cache, **options
        )
        config = SortConfig(build, k=k, mode=mode)
    except ConfigError as exc:
        raise click.UsageError(printable(str(exc))) from exc
    try:
        result = sort_collection(config, progress=_progress_for(quiet))
    except GeneratorError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    if quiet:
        return
    how = {"link": "hard links, no extra space", "copy": "copies", "symlink": "symbolic links"}
    which = "the suggested k" if result.suggested else "as asked"
    copied = f"; {result.copied} copied instead of linked" if result.copied else ""
    click.echo(
        printable(
            f"Sorted {result.images:,} images into {len(result.sizes)} folders in {result.output}/ "
            f"(k = {result.k}, {which}; {how[result.mode]}{copied}; {len(result.skipped)} skipped, "
            f"{result.embedded:,} newly embedded) in {result.seconds:.1f} s. "
            f"{result.output / 'clusters.csv'} lists path,cluster,distance_to_centre."
        ),
        err=True,
    )
    if build.random_weights:
        click.echo(
            "warning: --weights random: the clusters are meaningless (smoke test only).", err=True
        )


@cli.command(short_help="Print the JSON Schema of report.json.")
def schema() -> None:
    """Print the JSON Schema of report.json (draft 2020-12), derived from the report's types.

    The wheel ships the same text as generator/report.schema.json. Validate a site's report with
    any JSON Schema tool, e.g. `dinoclust schema > report.schema.json`.
    """
    from generator.report import schema_text

    click.echo(schema_text(), nl=False)


def _run(
    inputs: tuple[Path, ...],
    title: str | None,
    verbose: int,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
    open: bool,
    **options: Any,
) -> None:
    _setup_logging(verbose, quiet)
    from generator.commands.deliver import deliver  # heavy: numpy; torch only if something is new

    source = click.get_current_context().get_parameter_source("output")
    if source is click.core.ParameterSource.DEFAULT:
        options["output"] = None  # site/, or report.html with --single-file
    try:
        config = build_config(
            inputs, title=title, cache_dir=cache_dir, no_cache=no_cache, **options
        )
    except ConfigError as exc:
        raise click.UsageError(printable(str(exc))) from exc
    existed = config.output.exists()
    PROGRESS.clear()
    try:
        delivery = deliver(config, progress=_progress_for(quiet))
    except GeneratorError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    except KeyboardInterrupt:
        said = _interrupted(config.output, existed, config.cache_dir is not None)
        click.echo(printable(said), err=True)
        raise SystemExit(130) from None  # 128 + SIGINT, as shells report it
    if not quiet:
        _summary(delivery)
        source = click.get_current_context().get_parameter_source("weights")
        # a store made with random weights warns too; demo's own fallback has said it already
        fell_back = config.weights == RANDOM and source is click.core.ParameterSource.DEFAULT
        if delivery.result.typed_report.model.random_weights and not fell_back:
            click.echo(
                "warning: --weights random: the clusters are meaningless (smoke test only).",
                err=True,
            )
    if open:
        _open(delivery.result.output, quiet)


def _interrupted(output: Path, existed: bool, cached: bool) -> str:
    """Ctrl-C: what was kept (the old output, the embeddings) and how to go on."""
    where = f"{output} is as it was" if existed else f"nothing was written to {output}"
    done = PROGRESS.get(EMBEDDING, 0)
    if not done:
        return f"Interrupted: {where}."
    images = f"{done:,} image{'' if done == 1 else 's'}"
    if not cached:
        return (
            f"Interrupted: {where}. {images} had been embedded, but not cached (--no-cache): "
            "a new run embeds them again."
        )
    return (
        f"Interrupted: {where}. {images} had been embedded and are cached: run the same "
        "command again to go on from there."
    )


def _open(output: Path, quiet: bool) -> None:
    """--open: hand the page to the default browser; without one, say how to open it."""
    from generator.api import has_display, open_report, page_of

    url = page_of(output).resolve().as_uri()
    if open_report(output):  # a browser was started: whether a window appeared, none can tell
        message = (
            f"Asked the default browser to open {url}; if no window appears, open that "
            "address yourself."
        )
    else:
        why = "no display" if not has_display() else "no browser found"
        message = f"--open: no browser to open here ({why}); open {url} yourself."
    if not quiet:
        click.echo(message, err=True)


def _embed(
    inputs: tuple[Path, ...],
    verbose: int,
    quiet: bool,
    cache_dir: Path | None,
    no_cache: bool,
    weights: str,
    device: str,
    precision: str,
    seed: int,
    backend: str,
    **options: Any,
) -> None:
    _setup_logging(verbose, quiet)
    from generator.commands.embed import embed_collection
    from generator.config import EmbedConfig, ModelConfig
    from generator.storage.cache import check_cache_dir, default_cache_dir

    cache = None if no_cache else (cache_dir or default_cache_dir())
    try:
        if cache_dir is not None and not no_cache:
            check_cache_dir(cache_dir, inputs)
        model = ModelConfig(weights, device, precision, seed, backend)
        config = EmbedConfig(inputs=inputs, model=model, cache_dir=cache, **options)
    except ConfigError as exc:
        raise click.UsageError(printable(str(exc))) from exc
    try:
        result = embed_collection(config, progress=_progress_for(quiet))
    except GeneratorError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    if quiet:
        return
    source = "kept from the last run or the cache" if result.resumed else "from the cache"
    click.echo(
        printable(
            f"Wrote {result.rows:,} rows to {result.output}/ ({result.images:,} images, "
            f"{len(result.skipped):,} skipped, {result.embedded:,} newly embedded, "
            f"{result.kept:,} {source}) "
            "in "
            f"{result.seconds:.1f} s. Build the site with: dinoclust build --embeddings "
            f"{result.output} -o site/"
        ),
        err=True,
    )
    if weights == RANDOM:
        click.echo(
            "warning: --weights random: the embeddings are meaningless (smoke test only).",
            err=True,
        )


def _summary(delivery: Delivery) -> None:
    """The closing lines: what was built, from what, in how long, and how to open or send it."""
    from generator.commands.deliver import zip_top
    from generator.ingest.discover import file_counts

    result, size = delivery.result, format_size(delivery.size or 0)
    links = f"{len(result.aliases):,} links to images already included, " if result.aliases else ""
    if result.unsupported:  # what the walk saw but cannot read, as the warning counted it
        links += f"{file_counts(result.unsupported)} not read, "
    output, page = _shell(result.output), _shell(result.output / "index.html")
    counts = (
        f"from {result.images:,} images ({len(result.skipped):,} skipped, {links}"
        f"{result.embedded:,} newly embedded) in {result.seconds:.1f} s"
    )
    if delivery.zip_file is None and delivery.size is not None:
        click.echo(
            f"Built {output} ({size}, one self-contained file) {counts}. "
            "Open it in a browser, or attach it to an e-mail as it is.",
            err=True,
        )
    else:
        click.echo(
            f"Built {_shell(f'{result.output}/')} {counts}. Open {page} in a browser, "
            "or publish the folder as it is.",
            err=True,
        )
    if delivery.zip_file is not None:
        click.echo(
            f"Wrote {_shell(delivery.zip_file)} ({size}): e-mail it; unzipped, it opens at "
            f"{_shell(f'{zip_top(delivery.zip_file)}/index.html')}.",
            err=True,
        )
    if delivery.fit is not None and delivery.fit.shrunk:
        fit = delivery.fit
        previews = f"previews {fit.preview_size} px" if fit.preview_size else "no previews"
        click.echo(
            f"--max-size {format_size(fit.budget)}: {previews}, thumbnails {fit.thumb_size} px "
            f"at quality {fit.quality} to fit.",
            err=True,
        )


def _shell(path: Path | str) -> str:
    """A path as it can be pasted into a shell (quoted only when it needs to be)."""
    return printable(shlex.quote(str(path)))


def main() -> None:
    cli(prog_name="dinoclust")


def console() -> None:
    """The `dinoclust` command: `main`, then exit right after its last line. With torch loaded,
    the interpreter's own teardown (thousands of modules, libtorch's static destructors) took
    2–5 s more; everything is written and closed by then, so the exit handlers run and the
    process ends at once."""
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        click.echo(code, err=True)
        code = 1
    atexit._run_exitfuncs()  # logging.shutdown, thread pools joined: what a normal exit runs
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
