"""Issue 28 on the page, in real Chromium: the files the walk saw but cannot read are counted near
the top, in English and Japanese; and the Japanese page has no English left in what a reader sees
or hears (text, labels, tooltips, Plotly's mode bar and hover)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.i18n import Message
from generator.ingest.discover import unsupported_notes
from generator.ingest.labels import TOP_LEVEL
from tests.browser import open_page
from tests.helpers import COLOURS, FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

# what the walk meets beside the images: most first, then by name (discover.Discovery)
BESIDE = {".svg": 53, ".pdf": 2, "": 1, ".txt": 1, ".docx": 1}
NOTES_EN = [
    "53 .svg files are not supported, so they were not read.",
    "2 .pdf files are not supported, so they were not read.",
    "1 .docx file is not supported, so it was not read.",
    "2 more files, of 2 other types, are not supported, so they were not read.",
]
NOTES_JA = [
    ".svgファイル 53 件は対応していない形式のため、読み込んでいません。",
    ".pdfファイル 2 件は対応していない形式のため、読み込んでいません。",
    ".docxファイル 1 件は対応していない形式のため、読み込んでいません。",
    "ほかの 2 種類のファイル 2 件も対応していない形式のため、読み込んでいません。",
]
# the header's notes on what was not read (a small collection also has PCA's note)
NOTES_JS = """() => [...document.querySelectorAll('header > p.note')]
  .filter(p => p.querySelector('[data-i18n^="note_unsupported"]')).map(p => p.innerText)"""


def photos(root: Path, beside: dict[str, int]) -> Path:
    for name, colour in COLOURS.items():
        for i in range(3):
            make_image(root / name / f"{name}_{i}.png", colour, noise=8 + 9 * i, seed=i)
    (root / "broken.png").write_bytes(b"not an image")  # skipped: decoded, and failed
    for ext, n in beside.items():
        for i in range(n):
            (root / "other" / f"file{i}{ext}").parent.mkdir(exist_ok=True)
            (root / "other" / f"file{i}{ext}").write_text("not an image\n")
    return root


def build(root: Path, lang: str = "en", beside: dict[str, int] = BESIDE) -> Path:
    config = BuildConfig(inputs=(photos(root / "photos", beside),), output=root / "site", lang=lang)
    build_site(config, embedder=FakeEmbedder())
    return root / "site" / "index.html"


@pytest.mark.parametrize(("lang", "notes"), [("en", NOTES_EN), ("ja", NOTES_JA)])
def test_the_page_counts_the_files_it_could_not_read(browser: Browser, tmp_path, lang, notes):
    index = build(tmp_path, lang)
    with open_page(browser, index) as opened:
        page = opened.page
        assert page.evaluate(NOTES_JS) == notes
        skipped = page.locator("header .meta a[href='#skipped']").inner_text()
        assert skipped == {"en": "1 skipped", "ja": "1 件をスキップ"}[lang]  # broken.png
        top = page.locator("header > p.note:has([data-i18n^='note_unsupported'])").first
        box = top.bounding_box()
        assert box is not None and box["y"] < 300  # read before the slider and the pictures
        other = "ja" if lang == "en" else "en"
        page.locator(f".lang-switch button[data-lang='{other}']").click()
        assert page.evaluate(NOTES_JS) == (NOTES_JA if other == "ja" else NOTES_EN)
        assert opened.errors == []


def test_without_such_files_the_header_has_no_note(tmp_path: Path) -> None:
    html = build(tmp_path, beside={}).read_text(encoding="utf-8")
    assert 'data-i18n="note_unsupported' not in html


def test_notes_name_at_most_three_types_and_sum_up_the_rest() -> None:
    counts = ((".svg", 53), (".pdf", 1), ("extension-less", 2))
    assert [str(n) for n in unsupported_notes(counts)] == [
        "53 .svg files are not supported, so they were not read.",
        "1 .pdf file is not supported, so it was not read.",
        "2 extension-less files are not supported, so they were not read.",
    ]
    ja = [n.text("ja") for n in unsupported_notes(counts)]
    assert ja[2] == "拡張子のないファイル 2 件は対応していない形式のため、読み込んでいません。"
    assert unsupported_notes(()) == ()


# --- the Japanese page, audited for English ------------------------------------------------------

# ASCII words a Japanese page may show: names (methods, metrics, formats, packages, the model), a
# key's name, the language button, a CLI metavar and a CSV's column names. Anything else is an
# English fragment. File names, --flags and the build's own data (paths, labels, the model's
# name) are taken out before the words are counted.
ALLOWED = {
    *(
        "k",
        "L",
        "D",
        "PC",
        "PC1",
        "PC2",
        "PC3",
        "PCA",
        "K-means",
        "DINO",
        "CLS",
        "ARI",
        "NMI",
        "inertia",
    ),
    *("Calinski", "Harabasz", "Davies", "Bouldin", "fp32", "px"),
    *("CSV", "PNG", "RAW", "Markdown", "Parquet", "Pillow", "LibRaw"),
    *("dinoclust", "sort", "jinja2", "numpy", "pillow", "plotly", "scikit-learn", "scipy"),
    *("timm", "torch"),
    "Enter",  # the key (grid_hint)
    "EN",  # the button that switches to English
    "PATH",  # --weights PATH (the banner)
    *("path", "cluster", "distance_to_centre"),  # a cluster's CSV columns (cluster_csv_tip)
}
# file and folder names (report.json, tables/) and extensions (.svg)
FILE_NAME = re.compile(
    r"[\w./-]*\w\.(?:json|csv|md|png|jpe?g|svg|parquet|js|pth)(?![A-Za-z0-9])|[\w.-]+/(?!\w)"
    r"|(?<!\w)\.[a-z]+(?![A-Za-z0-9])"  # Japanese writes .svgファイル: no \b after the extension
)
FLAG = re.compile(r"--[a-z][a-z-]*")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]*")
# what a reader sees: visible text, and the words a screen reader or a tooltip says
SEEN_JS = """() => {
  const out = [];
  const shown = el => { const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden' && el.getClientRects().length > 0; };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (text && el && !el.closest('script, style') && shown(el)) { out.push(['text', text]); }
  }
  const named = '[aria-label], [title], [alt], [placeholder], [data-title]';
  document.querySelectorAll(named).forEach(el => {
    ['aria-label', 'title', 'alt', 'placeholder', 'data-title'].forEach(a => {
      if (el.getAttribute(a)) { out.push([a, el.getAttribute(a)]); } }); });
  document.querySelectorAll('.js-plotly-plot').forEach(gd => (gd.data || []).forEach(trace =>
    (Array.isArray(trace.text) ? trace.text : []).forEach(t => out.push(['hover', String(t)]))));
  out.push(['title', document.title]);
  return out;
}"""

# the Sankey's hover box, line by line (its lines are <tspan>s with no space between them)
HOVER_JS = """() => [...document.querySelectorAll('#sankey .hoverlayer text')].flatMap(t => {
  const lines = t.querySelectorAll('tspan.line');
  return lines.length ? [...lines].map(l => l.textContent) : [t.textContent]; })"""


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One collection with every kind of text: labels (folders, and the top level), a duplicate,
    a link, a skipped and an unsupported file, previews, random weights; built in Japanese, and
    in English to be switched to Japanese on the page."""
    root = tmp_path_factory.mktemp("audit")
    photos = root / "photos"
    for name, colour in COLOURS.items():
        for i in range(6):
            make_image(photos / name / f"{name}_{i}.png", colour, noise=4 + 9 * i, seed=i)
    make_image(photos / "red" / "copy.png", COLOURS["red"], noise=4, seed=0)  # = red_0.png
    (photos / "broken.png").write_bytes(b"not an image")
    (photos / "drawing.svg").write_text("<svg/>")
    os.symlink(photos / "red" / "red_1.png", photos / "link.png")  # at the top level
    weights = Message.of("weights_random", seed=0)
    embedder = FakeEmbedder()
    embedder.info = replace(embedder.info, weights_i18n=weights, random_weights=True)
    sites = {}
    for lang in ("ja", "en"):
        output = root / f"site-{lang}"
        config = BuildConfig(
            inputs=(photos,), output=output, lang=lang, labels="folders", preview_size=256
        )
        build_site(config, embedder=embedder)
        sites[lang] = output
    return sites


def seen(page: Page) -> list[tuple[str, str]]:
    """Everything the page shows and says, with its panels open, the preview open and the
    Sankey's node and link hovered."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    said = [tuple(x) for x in page.evaluate(SEEN_JS)]
    page.locator("#grid img").first.click()
    page.locator("dialog[open]").wait_for()
    said += [tuple(x) for x in page.evaluate(SEEN_JS)]
    page.keyboard.press("Escape")
    page.locator("#sankey").scroll_into_view_if_needed()
    for part in ("#sankey .sankey-node", "#sankey .sankey-link"):
        box = page.locator(part).first.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.locator("#sankey .hoverlayer text").first.wait_for()
        said += [("hover", t) for t in page.evaluate(HOVER_JS)]
    return said


def english(said: list[tuple[str, str]], site: Path) -> dict[str, tuple[str, str]]:
    """The ASCII words that are not names: each with where it was seen first."""
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    data = [i["path"] for i in report["images"]] + [s["path"] for s in report["skipped"]]
    labels = [name for name in report["label_names"] if name != TOP_LEVEL]  # that one is words
    data += [*labels, report["model"]["name"], report["provenance"]["weights_id"]]
    data += [a["path"] for a in report["aliases"]]
    ours = {w for text in data for w in WORD.findall(FILE_NAME.sub(" ", text))}
    found: dict[str, tuple[str, str]] = {}
    for kind, text in said:
        for word in WORD.findall(FLAG.sub(" ", FILE_NAME.sub(" ", text))):
            if word not in ALLOWED and word not in ours:
                found.setdefault(word, (kind, text[:100]))
    return found


@pytest.mark.parametrize("built", ["ja", "en"])
def test_the_japanese_page_has_no_english_fragments(browser: Browser, audited, built) -> None:
    """Built in Japanese, or built in English and switched on the page: the same words."""
    site = audited[built]
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        if built == "en":
            page.get_by_role("button", name="日本語").click()
            page.wait_for_function("() => document.documentElement.lang === 'ja'")
        assert page.locator("#plot .modebar-btn").count() > 0  # Plotly's own words are seen
        said = seen(page)
        assert english(said, site) == {}
        assert opened.errors == []
    assert any(kind == "hover" and "流入数" in text for kind, text in said)


def test_the_audit_finds_english(browser: Browser, audited) -> None:
    """The English page, audited the same way, is full of English: the audit can fail."""
    with open_page(browser, audited["en"] / "index.html") as opened:
        found = english(seen(opened.page), audited["en"])
    assert {"Images", "Cluster", "Zoom", "Download", "incoming", "source"} <= set(found)
    assert "blue" not in found and "png" not in found  # data and file names are not words
