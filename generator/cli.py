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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from generator.api import DEMO_IMAGES
from generator.config import (
    BUILD_OPTIONS,
    EMBED_OPTIONS,
    PRETRAINED,
    QUERY_OPTIONS,
    RANDOM,
    SORT_OPTIONS,
    STORE_OPTIONS,
    Option,
)
from generator.errors import ConfigError, GeneratorError, printable
from generator.options import (
    build_config,
    embed_config,
    log_level,
    parse_points,
    query_config,
    sort_config,
)
from generator.sizes import format_size, parse_size
from generator.types import PHASE_LOGGER
from generator.version import __version__

if TYPE_CHECKING:
    from generator.commands.deliver import Delivery
    from generator.config import EmbedConfig

log = logging.getLogger("generator")

_Config = TypeVar("_Config")


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


TYPES = {"int": int, "float": float, "size": _Size(), "points": _Points()}  # by Option.kind


@contextmanager
def _logging(verbose: int, quiet: bool) -> Iterator[None]:
    """-v/-q for one command: its messages go to stderr as one-liners, then the `generator`
    loggers are as they were (a second command in the same process, a test after a CliRunner
    run, or a notebook cell after `main()` sees no level or handler this one set)."""
    phase = logging.getLogger(PHASE_LOGGER)
    before = (log.handlers[:], log.level, log.propagate, phase.level)
    log.handlers[:] = [_ClickHandler()]
    log.setLevel(log_level(verbose, quiet))
    log.propagate = False
    # what the build is doing between progress bars ("loading model…"): on a terminal, as the
    # bars are; in a log only with -v
    shown = not quiet and sys.stderr.isatty()
    phase.setLevel(logging.INFO if shown else logging.NOTSET)
    try:
        yield
    finally:
        log.handlers[:], level, log.propagate, phase_level = before
        log.setLevel(level)
        phase.setLevel(phase_level)


def _configured(make: Callable[..., _Config], *args: Any, **kwargs: Any) -> _Config:
    """A command's config from its options; one out of range or at odds: a usage error (2)."""
    try:
        return make(*args, **kwargs)
    except ConfigError as exc:
        raise click.UsageError(printable(str(exc))) from exc


@contextmanager
def _reported(interrupted: Callable[[], str]) -> Iterator[None]:
    """The library's errors become one `Error:` line (exit 1), never a traceback. Ctrl-C: the
    line `interrupted()` says (what was kept), and exit 130 (128 + SIGINT, as shells report
    it) instead of click's bare "Aborted!"."""
    PROGRESS.clear()
    try:
        yield
    except GeneratorError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    except KeyboardInterrupt:
        click.echo(printable(interrupted()), err=True)
        raise SystemExit(130) from None


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


def click_options(*options: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click options of a command, from generator.config's table (in --help order)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = click.option(*option.flags, option.name, **_click_kwargs(option))(func)
        return func

    return decorate


def _click_kwargs(option: Option) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"help": option.help, "metavar": option.metavar}
    if option.kind == "flag":
        return {**kwargs, "is_flag": True}
    if option.kind == "count":
        return {**kwargs, "count": True}
    if option.kind == "choice":
        kwargs["type"] = click.Choice(option.choices)
    elif option.kind == "path":
        ok = {"file_okay": option.file_okay, "dir_okay": option.dir_okay}
        kwargs["type"] = click.Path(path_type=Path, **ok)
    elif option.kind in TYPES:
        kwargs["type"] = TYPES[option.kind]
    if option.required:
        kwargs["required"] = True
    if option.default is not None:  # as the CLI reads it (2GB), where it reads text
        kwargs["default"] = option.default if option.typed is None else option.typed
    if option.show_default:
        kwargs["show_default"] = True
    return kwargs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dinoclust")
def cli() -> None:
    """Turn a folder of images into a static website showing how they cluster.

    Images are embedded with DINO ViT-S/16, reduced with PCA and clustered with K-means for every
    k from 2 to 10; the site opens straight from disk (no server needed).
    """


@cli.command(short_help="Build the site from folders of images, or from --embeddings.")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click_options(*BUILD_OPTIONS, *STORE_OPTIONS)
def build(inputs: tuple[Path, ...], **options: Any) -> None:
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
    _run(inputs, **options)


@cli.command(short_help="Embed images into Parquet files, locally or on Ray.")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click_options(*EMBED_OPTIONS)
def embed(inputs: tuple[Path, ...], verbose: int, quiet: bool, **options: Any) -> None:
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
    with _logging(verbose, quiet):
        from generator.commands.embed import embed_collection

        config = _configured(embed_config, inputs, **options)
        existed = config.output.exists()
        with _reported(lambda: _embed_interrupted(config, existed)):
            result = embed_collection(config, progress=_progress_for(quiet))
        if quiet:
            return
        source = "kept from the last run or the cache" if result.resumed else "from the cache"
        click.echo(
            printable(
                f"Wrote {result.rows:,} rows to {result.output}/ ({result.images:,} images, "
                f"{len(result.skipped):,} skipped, {result.embedded:,} newly embedded, "
                f"{result.kept:,} {source}) in {result.seconds:.1f} s. Build the site with: "
                f"dinoclust build --embeddings {result.output} -o site/"
            ),
            err=True,
        )
        if config.model.weights == RANDOM:
            _warn_random("embeddings")


@cli.command(short_help="Build a site from the 30 bundled sample images.")
@click_options(*BUILD_OPTIONS)
def demo(**options: Any) -> None:
    """Build a site from the bundled sample images (animals, food, transportation).

    Without --weights it uses the pretrained weights when they are cached or the model hub
    answers; otherwise random weights (the clusters are then meaningless), and says why.
    """
    source = click.get_current_context().get_parameter_source("weights")
    if source is click.core.ParameterSource.DEFAULT:
        options["weights"] = _demo_weights(options["quiet"])
    _run((DEMO_IMAGES,), title_key="demo_title", **options)


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
@click_options(*SORT_OPTIONS)
def sort_command(inputs: tuple[Path, ...], verbose: int, quiet: bool, **options: Any) -> None:
    """Sort INPUTS into one folder per cluster: DIR/cluster_<id>/<relative path>.

    The inputs are never moved or changed. DIR/clusters.csv lists path,cluster,distance_to_centre.
    With the options of an earlier build it only reads the cache.

    \b
    Examples:
      dinoclust sort ~/Pictures/trip -o trip-sorted/
      dinoclust sort photos/ -o sorted/ --k 6 --mode copy
    """
    with _logging(verbose, quiet):
        from generator.commands.sort import sort_collection

        config = _configured(sort_config, inputs, **options)
        with _replacing(config.build.output, config.build.cache_dir is not None):
            result = sort_collection(config, progress=_progress_for(quiet))
        if quiet:
            return
        how = {"link": "hard links, no extra space", "copy": "copies", "symlink": "symbolic links"}
        which = "the suggested k" if result.suggested else "as asked"
        copied = f"; {result.copied:,} copied instead of linked" if result.copied else ""
        click.echo(
            printable(
                f"Sorted {result.images:,} images into {len(result.sizes)} folders in "
                f"{result.output}/ (k = {result.k}, {which}; {how[result.mode]}{copied}; "
                f"{len(result.skipped):,} skipped, {result.embedded:,} newly embedded) in "
                f"{result.seconds:.1f} s. {result.output / 'clusters.csv'} lists "
                "path,cluster,distance_to_centre."
            ),
            err=True,
        )
        if config.build.random_weights:
            _warn_random()


@cli.command("query", short_help="Find where photos belong in a site built with --query.")
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click_options(*QUERY_OPTIONS)
def query_command(
    photos: tuple[Path, ...], as_json: bool, verbose: int, quiet: bool, **options: Any
) -> None:
    """Where each PHOTO belongs in SITE: for every k its cluster and its distance to the centre
    against the cluster's typical range, and the site's 12 most similar images (cosine), as the
    page's "Find where a photo belongs" shows them. The model options must name the site's
    weights; left at auto, --precision and --backend are the site's where they run here.

    \b
    Examples:
      dinoclust build photos/ --query -o site/
      dinoclust query new.jpg --site site/
      dinoclust query a.jpg b.png --site site/ --json
    """
    with _logging(verbose, quiet):
        import json

        from generator.commands.query import answers_text, query_photos

        config = _configured(query_config, photos, **options)
        with _reported(lambda: "Interrupted: nothing was written (query only reads)."):
            answers = query_photos(config)
        if as_json:
            data = [answer.to_json() for answer in answers]
            click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        else:
            click.echo(answers_text(answers))


@cli.command(short_help="Print the JSON Schema of report.json.")
def schema() -> None:
    """Print the JSON Schema of report.json (draft 2020-12), derived from the report's types.

    The wheel ships the same text as generator/report.schema.json. Validate a site's report with
    any JSON Schema tool, e.g. `dinoclust schema > report.schema.json`.
    """
    from generator.report import schema_text

    click.echo(schema_text(), nl=False)


def _run(inputs: tuple[Path, ...], verbose: int, quiet: bool, open: bool, **options: Any) -> None:
    with _logging(verbose, quiet):
        # heavy: numpy; torch only if something is new
        from generator.commands.deliver import deliver

        source = click.get_current_context().get_parameter_source("output")
        if source is click.core.ParameterSource.DEFAULT:
            options["output"] = None  # site/, or report.html with --single-file
        config = _configured(build_config, inputs, **options)
        with _replacing(config.output, config.cache_dir is not None):
            delivery = deliver(config, progress=_progress_for(quiet))
        if not quiet:
            _summary(delivery)
            source = click.get_current_context().get_parameter_source("weights")
            # a store made with random weights warns too; demo's own fallback has said it already
            fell_back = config.weights == RANDOM and source is click.core.ParameterSource.DEFAULT
            if delivery.result.typed_report.model.random_weights and not fell_back:
                _warn_random()
        if open:
            _open(delivery.result.output, quiet)


def _replacing(output: Path, cached: bool) -> AbstractContextManager[None]:
    """_reported for a command that replaces `output` only when complete: Ctrl-C says what it
    left there (whether it existed is checked before the command starts)."""
    where = f"{output} is as it was" if output.exists() else f"nothing was written to {output}"
    return _reported(lambda: _interrupted(where, cached))


def _interrupted(where: str, cached: bool, kept: bool = False) -> str:
    """Ctrl-C: what was kept (the old output, `kept` finished parts, the embeddings) and how
    to go on."""
    done = PROGRESS.get(EMBEDDING, 0)
    said = f"Interrupted: {where}."
    go_on = "run the same command again to go on from there"
    if not done:
        return f"{said} Run the same command again to go on from there." if kept else said
    images = f"{done:,} image{'' if done == 1 else 's'}"
    if cached:
        return f"{said} {images} had been embedded and are cached: {go_on}."
    again = go_on if kept else "a new run embeds them again"
    return f"{said} {images} had been embedded, but not cached (--no-cache): {again}."


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


def _embed_interrupted(config: EmbedConfig, existed: bool) -> str:
    """Ctrl-C in `embed`: the store's current rows stay, and so do the parts this run (or an
    earlier interrupted one) finished, for the next run to keep."""
    from generator.commands.embed import finished_rows

    output, rows = config.output, finished_rows(config.output)
    if rows:
        held = f"{output} is as it was, plus" if existed else f"{output} holds"
        where = f"{held} {rows:,} finished rows that the next run keeps"
    else:
        where = f"{output} is as it was" if existed else f"no part of {output} was finished"
    cached = config.cache_dir is not None and config.engine == "local"  # Ray's actors: none
    return _interrupted(where, cached, kept=rows > 0)


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


def _warn_random(what: str = "clusters") -> None:
    click.echo(
        f"warning: --weights random: the {what} are meaningless (smoke test only).", err=True
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
