"""Stage 5 — render: write the static site through the Jinja templates.

The page gets its data (payload.page_data) as one inline JSON block and a base64 block per typed
column (no fetch(): it must work from file://); what it needs only later, each k's distances and
the neighbours, are .js files that set a global, added when first used. JS and CSS are real files
under templates/static/, copied verbatim; Plotly's JS comes from the plotly package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from generator.analysis.experiment import experiment_markdown
from generator.i18n import LANGS, templates_dir, translate, ui_strings
from generator.model.vit import MODEL_NAME
from generator.report import Report
from generator.site.exports import write_text
from generator.site.payload import (
    assignments_csv,
    page_data,
    page_distances,
    page_neighbours,
    report_json,
)
from generator.version import __version__

NEIGHBOURS_JS = "data/neighbours.js"  # the packed neighbours, loaded by the first preview
DISTANCES_JS = "data/distances-k{k}.js"  # one k's distances, loaded when the page first shows k
REPORT_MD = "report.md"  # the experiment report, in the build's language
QUERY_ASSETS = ("query.js", "query.css")  # static/ files only a --query site carries
QUERY_STRINGS = "query_"  # UI strings only a --query page carries (i18n.json)


def plotly_js() -> tuple[Path, str]:
    """The plotly.min.js that ships in the plotly Python package, and its version."""
    import plotly
    from plotly.offline import get_plotlyjs_version

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path, get_plotlyjs_version()


def render_site(report: Report, site: Path, lang: str = "en") -> None:
    """Write index.html, report.json, assignments.csv and the static assets into `site`. Only a
    report with `query` (whose files site/query.py wrote) adds the control's script and style:
    without it, not one byte of the site changes."""
    templates = templates_dir()
    plotly_path, plotly_version = plotly_js()
    plotly_name = f"static/js/plotly-{plotly_version}.min.js"
    query = report.query is not None
    ignore = None if query else shutil.ignore_patterns(*QUERY_ASSETS)
    shutil.copytree(templates / "static", site / "static", dirs_exist_ok=True, ignore=ignore)
    shutil.copyfile(plotly_path, site / plotly_name)
    write_text(site / "index.html", render_index(report, plotly_name, lang=lang))
    (site / NEIGHBOURS_JS).parent.mkdir(exist_ok=True)
    env = environment(lang)
    write_text(
        site / NEIGHBOURS_JS,
        env.get_template("neighbours.js").render(neighbours=page_neighbours(report)),
    )
    for k in report.k_values:
        write_text(
            site / DISTANCES_JS.format(k=k),
            env.get_template("distances.js").render(k=k, distances=page_distances(report, k)),
        )
    write_text(site / "report.json", report_json(report))
    write_text(site / REPORT_MD, experiment_markdown(report, lang))
    write_text(site / "assignments.csv", assignments_csv(report))
    write_text(site / ".nojekyll", "")


def site_images(report: Report) -> list[str]:
    """The thumbnails and previews in the site, each once, sorted."""
    previews = {image.preview for image in report.images if image.preview}
    return sorted({image.thumb for image in report.images} | previews)


def render_index(report: Report, plotly_src: str, single: Any = None, lang: str = "en") -> str:
    """The page; every user string goes through autoescaping or `tojson`. `single`
    (singlefile.Inline): the one-file variant's inlined assets. Written in `lang`, it carries
    every language's strings so that the reader can switch (the query's only with `query`)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}")
    query = report.query is not None
    strings = {
        code: {k: v for k, v in words.items() if query or not k.startswith(QUERY_STRINGS)}
        for code, words in ui_strings().items()
    }
    ui = {"lang": lang, "langs": list(LANGS), "strings": strings}
    template = environment(lang).get_template("index.html")
    return template.render(
        report=report,
        page=page_data(report),
        neighbours=page_neighbours(report) if single else None,
        distances={k: page_distances(report, k) for k in report.k_values} if single else None,
        experiment={code: experiment_markdown(report, code) for code in LANGS},
        plotly_js=plotly_src,
        version=__version__,
        single=single,
        lang=lang,
        ui=ui,
        query=query,
    )


def environment(lang: str) -> Any:
    """The templates' Jinja environment for `lang`: autoescaping, strict undefined, tr/tx."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.globals["tr"] = lambda key, **args: translate(lang, key, **args)
    env.globals["tx"] = lambda key, **args: _translatable(lang, key, args)
    env.globals["dino_model"] = MODEL_NAME  # another model's features are not called DINO
    env.filters["num"] = "{:,}".format  # a count with thousands separators, as the page's u.num
    return env


def _translatable(lang: str, key: str, args: dict[str, Any]) -> Markup:
    """A span the page can re-translate: its key and arguments ride along as data attributes."""
    text = translate(lang, key, **args)
    if not args:
        return Markup('<span data-i18n="{}">{}</span>').format(key, text)
    encoded = json.dumps({k: str(v) for k, v in args.items()}, ensure_ascii=False, sort_keys=True)
    return Markup('<span data-i18n="{}" data-i18n-args="{}">{}</span>').format(
        key, escape(encoded), text
    )
