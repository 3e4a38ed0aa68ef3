"""The Python API: `generator.build(...)` and `generator.show(...)`, for notebooks and scripts.

`build` takes the CLI's options by their Python names, with the CLI's defaults, and goes through
the same option → BuildConfig mapping (generator.options), so it gives the same site and raises
the same GeneratorErrors, whose messages name the options as the caller did (`k_max`, not
`--k-max`). `show` puts the one-file page in an `<iframe srcdoc>`: it needs no server and no
file:// (Colab has neither) and keeps the page's own Content-Security-Policy working inside it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator import config as opt
from generator.config import RANDOM
from generator.errors import ConfigError, GeneratorError
from generator.options import StrPath, build_config, log_level, query_config

if TYPE_CHECKING:
    from generator.commands.build import BuildResult

log = logging.getLogger("generator")

SHOW_HEIGHT = 900  # pixels: the slider, the 3D plot and the first row of thumbnails
DEMO_IMAGES = Path(__file__).resolve().parent / "demo_images"  # the 30 bundled sample pictures


def build(
    inputs: StrPath | Sequence[StrPath] = (),
    output: StrPath | None = None,
    *,
    title: str | None = opt.TITLE.default,
    weights: str = opt.WEIGHTS.default,
    device: str = opt.DEVICE.default,
    precision: str = opt.PRECISION.default,
    cache_dir: StrPath | None = opt.CACHE_DIR.default,
    no_cache: bool = opt.NO_CACHE.default,
    batch_size: int = opt.BATCH_SIZE.default,
    k_max: int = opt.K_MAX.default,
    seed: int = opt.SEED.default,
    thumb_size: int = opt.THUMB_SIZE.default,
    preview_size: int = opt.PREVIEW_SIZE.default,
    display_points: int | str | None = opt.DISPLAY.default,
    strict: bool = opt.STRICT.default,
    labels: StrPath | None = opt.LABELS.default,
    export_embeddings: bool = opt.EXPORT_EMBEDDINGS.default,
    query: bool = opt.QUERY.default,
    zip_file: StrPath | None = opt.ZIP.default,
    single_file: bool = opt.SINGLE_FILE.default,
    max_size: int | str | None = opt.MAX_SIZE.default,
    lang: str = opt.LANG.default,
    embeddings: StrPath | None = opt.EMBEDDINGS.default,
    images_root: StrPath | None = opt.IMAGES_ROOT.default,
    backend: str = opt.BACKEND.default,
    workers: int | None = opt.WORKERS.default,
    max_file_size: int | str = opt.FILE_SIZE.default,
    open: bool = opt.OPEN.default,
    verbose: int = opt.VERBOSE.default,
    quiet: bool = opt.QUIET.default,
) -> BuildResult:
    """Build the site from `inputs` (a folder or image file, or a list of them), as
    `dinoclust build` does; `output` defaults to site/ (report.html with `single_file=True`).
    The parameters are `dinoclust build`'s options, with their defaults (generator.config).

    Raises GeneratorError (ConfigError for a bad option), its message naming these parameters.
    """
    options = dict(locals())  # every parameter, by name: what build_config maps for the CLI
    del options["inputs"], options["open"], options["verbose"], options["quiet"]
    from generator.commands.deliver import deliver  # heavy: numpy; torch only if something is new

    one = isinstance(inputs, str | os.PathLike)
    with _log_level(log_level(verbose, quiet)), _in_api_words():
        config = build_config([inputs] if one else inputs, **options)  # type: ignore[list-item]
        result = deliver(config, progress=progress_bar(quiet)).result
        if config.weights == RANDOM:
            log.warning("weights='random': the clusters are meaningless (smoke test only).")
    if open:
        open_report(result.output)
    return result


def query(
    photos: StrPath | Sequence[StrPath],
    site: StrPath,
    *,
    weights: str = opt.WEIGHTS.default,
    device: str = opt.DEVICE.default,
    precision: str = opt.PRECISION.default,
    backend: str = opt.BACKEND.default,
    seed: int = opt.SEED.default,
    cache_dir: StrPath | None = opt.CACHE_DIR.default,
    no_cache: bool = opt.NO_CACHE.default,
) -> list[dict[str, Any]]:
    """Where each photo belongs in `site` (built with `query=True`), as `dinoclust query --json`
    prints it: per photo its PCA coordinates, for every k its cluster, distance and the
    cluster's typical range, and the 12 most similar images.

    Raises GeneratorError (ConfigError for a bad option), its message naming these parameters.
    """
    options = dict(locals())  # every parameter but the photos: what query_config maps
    del options["photos"]
    from generator.commands.query import query_photos

    one = isinstance(photos, str | os.PathLike)
    with _in_api_words():
        config = query_config([photos] if one else photos, **options)  # type: ignore[list-item]
        return [answer.to_json() for answer in query_photos(config)]


@contextmanager
def _in_api_words() -> Iterator[None]:
    """One short error under the cell, naming the API's parameters: a refused option as its
    message was written for the API (config.option_error), any other remedy by api_words."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(exc.api or api_words(str(exc))) from None
    except GeneratorError as exc:
        raise type(exc)(api_words(str(exc))) from None


FLAGS = {option.name for option in opt.BUILD_OPTIONS if option.kind == "flag"}  # name=True
API_NAMES = {option.flags[-1][2:]: option.name for option in opt.BUILD_OPTIONS}  # zip: zip_file


def api_words(message: str) -> str:
    """A remedy in the CLI's words (`--weights random`, `--no-cache`, `-o`) as a notebook
    writes it (`weights="random"`, `no_cache=True`, `output`)."""
    message = message.replace("--weights random", 'weights="random"')
    message = message.replace("--weights PATH", 'weights="path/to/checkpoint.pth"')

    def name(match: re.Match[str]) -> str:
        flag = match.group(1)
        word = API_NAMES.get(flag, flag.replace("-", "_"))
        return f"{word}=True" if word in FLAGS else word

    message = re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", name, message)
    return re.sub(r"(?<![\w-])-o(?![\w-])", "output", message)


@contextmanager
def _log_level(level: int) -> Iterator[None]:
    """The CLI's -v/-q for one build: messages at `level` reach stderr, then all is as it was."""
    before, handler = log.level, None
    if level < logging.WARNING and not log.handlers:  # Python shows only warnings unhandled
        handler = logging.StreamHandler(sys.stderr)
        log.addHandler(handler)
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)
        if handler is not None:
            log.removeHandler(handler)


# --- progress -------------------------------------------------------------------------------


def progress_bar(quiet: bool = False) -> Callable[..., Any]:
    """tqdm's widget bar in a notebook, its text bar on a terminal; nothing when quiet or piped."""
    bar = None if quiet else _tqdm_class()

    @contextmanager
    def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
        if bar is None:
            yield lambda n: None
            return
        with bar(total=total, desc=label, unit="img", leave=True) as shown:
            yield shown.update

    return progress


def _tqdm_class() -> Any:
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm's notebook bar is an ipywidget)
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm import tqdm  # plain text lines, which every notebook shows
        return tqdm
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm
    return None


def in_notebook() -> bool:
    """Running in a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab), not a terminal IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


# --- show -----------------------------------------------------------------------------------


def show(site_or_html: BuildResult | StrPath, height: int = SHOW_HEIGHT) -> None:
    """Display a built report under the notebook cell (once: returns None, as Plotly's does).

    `site_or_html`: what `build` returned, a site folder, or a single-file report (.html).
    """
    shown = ShownReport(notebook_html(site_or_html, height))
    try:
        from IPython.display import display
    except ImportError as exc:
        raise GeneratorError(
            "generator.show displays the report under a notebook cell (Jupyter, JupyterLab, "
            "VS Code, Colab), and IPython is not installed here. Open the site's index.html in "
            "a browser instead (dinoclust build --open)."
        ) from exc
    display(shown)


@dataclass(frozen=True)
class ShownReport:
    """The cell output; Jupyter, JupyterLab, VS Code and Colab all render `_repr_html_`."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # text/plain, beside the HTML: what a terminal would print
        return f"<dinoclust report: {len(self.html.encode()) / 1e6:.2f} MB of HTML for a notebook>"


def notebook_html(site_or_html: BuildResult | StrPath, height: int = SHOW_HEIGHT) -> str:
    """The cell output: an `<iframe srcdoc>` holding the one-file page (offline, CSP kept)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from generator.i18n import templates_dir

    if not isinstance(height, int) or height < 100:
        raise GeneratorError(f"height must be a number of pixels, at least 100 (got {height!r}).")
    env = Environment(
        loader=FileSystemLoader(templates_dir()), autoescape=True, undefined=StrictUndefined
    )
    # Autoescaped into the attribute (quotes become &#34;). Without the query files: tens of
    # megabytes in a cell; the frame's page says why it has no control.
    page = single_page(site_or_html, query=False)
    return env.get_template("notebook.html").render(page=page, height=height)


def single_page(site_or_html: BuildResult | StrPath, query: bool = True) -> str:
    """The one-file page of a build, a site folder or a single-file report (as it is); from a
    site folder, with its query files unless `query` is False."""
    from generator.report import read_report
    from generator.site.query import MODEL_JS, block_id
    from generator.site.singlefile import is_single_file, render_single

    path = Path(getattr(site_or_html, "output", site_or_html))
    if path.is_file() and is_single_file(path):
        page = path.read_text(encoding="utf-8")
        if not query and f'id="{block_id(MODEL_JS)}"' in page:
            raise GeneratorError(
                f"{path} carries the model of --query ({len(page.encode()) / 1e6:.0f} MB), too "
                "large for a notebook cell. Open it in a browser instead, or show the site "
                "folder of a build without --single-file (its page here leaves the model out)."
            )
        return page
    index, data = path / "index.html", path / "report.json"
    if not (index.is_file() and data.is_file()):
        raise GeneratorError(
            f"{path} is not a dinoclust site (no index.html and report.json) nor a single-file "
            "report. Pass what generator.build returned, its output folder, or its .html file."
        )
    report = getattr(site_or_html, "typed_report", None) or read_report(data)
    return render_single(report, path, _page_lang(index), query=query)


def _page_lang(index: Path) -> str:
    """The language the site's page opens in (`<html lang>`), for its one-file copy."""
    finder = _HtmlLang()
    with index.open(encoding="utf-8") as f:
        finder.feed(f.read(4096))
    return finder.lang or "en"


class _HtmlLang(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html" and self.lang is None:
            self.lang = dict(attrs).get("lang")


# --- open -----------------------------------------------------------------------------------


def page_of(output: Path) -> Path:
    """The file a browser opens: the single file itself, or the site's index.html."""
    return output if output.suffix.lower() in (".html", ".htm") else output / "index.html"


def open_report(output: StrPath) -> bool:
    """Open the built page in the default browser; False (and nothing started) without one.

    On Linux and the BSDs without a display, Python would start a text browser such as lynx
    in the terminal; that is not what `--open` promises, so nothing is started there.
    """
    import webbrowser

    if not has_display():
        return False
    return bool(webbrowser.open(page_of(Path(output)).resolve().as_uri()))


def has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
