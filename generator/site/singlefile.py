"""One self-contained HTML file: the site's page with Plotly, its scripts, the CSS, the data (every
k's distances and the neighbours too, which a folder site loads later) and every thumbnail
inlined, so that it works opened from an e-mail attachment or copied anywhere alone.

The file carries its own Content-Security-Policy (see index.html): only the inline scripts whose
SHA-256 hashes are listed may run, and it may load nothing but data: images. A --query site's
single file also carries the query files (model, index, runtime) as data blocks that query.js
reads on first use (site/query.py's query_blocks); the notebook's copy leaves them out.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from markupsafe import Markup

from generator.errors import GeneratorError
from generator.i18n import templates_dir
from generator.report import Report
from generator.site.query import query_blocks
from generator.site.render import plotly_js, render_index, site_images

GENERATOR_TAG = b'<meta name="generator" content="dinoclust '  # how we recognise our own files
MIME = {"webp": "image/webp", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
_END_SCRIPT = re.compile(r"</(script)", re.IGNORECASE)
PLOTLY_SRC = "plotly.min.js"  # stands for Plotly's file while the folder page is read
# Scripts of the folder page that a single file without the query files leaves out (the
# notebook's copy: tens of megabytes in a cell); its page says so instead.
FOLDER_ONLY = frozenset({"static/js/query.js"})


@dataclass(frozen=True)
class Inline:
    """What index.html's `single` branches need: the assets' text and the scripts' hashes."""

    styles: tuple[Markup, ...]
    scripts: tuple[Markup, ...]
    # --query: each query file's block id and value (not run; query.js reads them on first use)
    query: tuple[tuple[str, Any], ...] = ()

    @property
    def script_hashes(self) -> str:
        """CSP hash sources, one per inline script, over exactly the text between the tags."""
        digests = (hashlib.sha256(s.encode("utf-8")).digest() for s in self.scripts)
        return " ".join(f"'sha256-{base64.b64encode(d).decode('ascii')}'" for d in digests)


def render_single(report: Report, site: Path, lang: str = "en", query: bool = True) -> str:
    """The one-file page for `report`, thumbnails read from the built `site`. It inlines exactly
    the scripts and stylesheets the folder page loads, in order, so that a script added to
    index.html needs no second list. A --query report's page carries the query files too,
    unless `query` is False (the notebook's copy, whose page says why it has no control)."""
    assets = _Assets()
    assets.feed(render_index(report, PLOTLY_SRC))
    blocks = query_blocks(report, site) if query else ()
    skip = frozenset() if blocks else FOLDER_ONLY
    inline = Inline(
        styles=tuple(_style(_asset(href)) for href in assets.styles),
        scripts=tuple(_script(_asset(src)) for src in assets.scripts if src not in skip),
        query=blocks,
    )
    return render_index(inline_thumbs(report, site), plotly_src="", single=inline, lang=lang)


def inline_thumbs(report: Report, site: Path) -> Report:
    """The report with each thumbnail's and preview's path replaced by a data: URI (duplicates
    encoded once)."""
    uris: dict[str, str] = {}
    for rel in site_images(report):
        mime = MIME.get(rel.rsplit(".", 1)[-1].lower(), "application/octet-stream")
        data = base64.b64encode((site / rel).read_bytes()).decode("ascii")
        uris[rel] = f"data:{mime};base64,{data}"
    images = tuple(
        replace(
            image,
            thumb=uris[image.thumb],
            preview=uris[image.preview] if image.preview else image.preview,
        )
        for image in report.images
    )
    return replace(report, images=images)


class _Assets(HTMLParser):
    """The scripts and stylesheets a page loads, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"] or "")
        if tag == "link" and attributes.get("rel") == "stylesheet" and attributes.get("href"):
            self.styles.append(attributes["href"] or "")


def _asset(ref: str) -> Path:
    """The file behind a reference of the folder page: Plotly's, or one under templates/."""
    if ref == PLOTLY_SRC:
        return plotly_js()[0]
    root = templates_dir().resolve()
    path = (root / ref).resolve()
    if root not in path.parents or not path.is_file():
        raise GeneratorError(f"The page loads {ref}, which is not a file under {root}.")
    return path


def is_single_file(path: Path) -> bool:
    """A file dinoclust wrote: its head carries our generator tag (checked before replacing)."""
    try:
        with path.open("rb") as f:
            return GENERATOR_TAG in f.read(4096)
    except OSError:
        return False


def _text(path: Path) -> str:
    """A vendored asset as the HTML parser will see it: no BOM, LF line ends (hashes must match)."""
    text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _script(path: Path) -> Markup:
    """JS for an inline <script>: `</script` would end the element early, so it is written
    `<\\/script` (the same string to JS); `<!--` changes how HTML parses script text."""
    text = _END_SCRIPT.sub(r"<\\/\1", _text(path))
    if "<!--" in text:
        raise GeneratorError(
            f"{path} contains '<!--' and cannot be inlined safely; build a folder site instead "
            "of --single-file, and report this to the dinoclust developers."
        )
    return Markup(text)  # our own vendored file, made safe above


def _style(path: Path) -> Markup:
    text = _text(path)
    if re.search(r"</style", text, re.IGNORECASE):
        raise GeneratorError(f"{path} contains '</style' and cannot be inlined.")
    return Markup(text)  # our own stylesheet, checked above
