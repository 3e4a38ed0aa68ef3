"""Stage 5 — render: write the static site through the Jinja templates.

The page gets its data as one inline JSON block (no fetch(): it must work from file://); JS and CSS
are real files under templates/static/, copied verbatim; Plotly's JS comes from the plotly package.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from generator import __version__
from generator.payload import assignments_csv, report_json

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """Inside an installed wheel the templates sit in the package; in a checkout, beside it."""
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError("dinoclust's templates/ folder is missing; reinstall the package.")


def plotly_js() -> tuple[Path, str]:
    """The plotly.min.js that ships in the plotly Python package, and its version."""
    import plotly
    from plotly.offline import get_plotlyjs_version

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path, get_plotlyjs_version()


def render_site(report: dict[str, Any], site: Path) -> None:
    """Write index.html, report.json, assignments.csv and the static assets into `site`."""
    templates = templates_dir()
    plotly_path, plotly_version = plotly_js()
    plotly_name = f"static/js/plotly-{plotly_version}.min.js"
    shutil.copytree(templates / "static", site / "static", dirs_exist_ok=True)
    shutil.copyfile(plotly_path, site / plotly_name)
    _write(site / "index.html", render_index(report, plotly_name))
    _write(site / "report.json", report_json(report))
    _write(site / "assignments.csv", assignments_csv(report))
    _write(site / ".nojekyll", "")


def render_index(report: dict[str, Any], plotly_src: str, single: Any = None) -> str:
    """The page itself; every user string goes through autoescaping or `tojson`.

    `single` (singlefile.Inline) inlines the scripts and styles, for the one-file variant.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("index.html")
    return template.render(report=report, plotly_js=plotly_src, version=__version__, single=single)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")
