"""Issue 15 in real Chromium: the phone layout (one column, nothing overflowing), the metrics table
on a desktop, the larger preview, layout papercuts, and an axe-core accessibility check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.browser import TIMEOUT_MS, open_page
from tests.helpers import FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
AXE = Path(os.environ.get("AXE_PATH") or ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js")
PHONE, DESKTOP = (390, 844), (1280, 900)
LANGS = ("en", "ja")
# Plotly's own plot containers nest focusable parts (its mode bar) in an element with a role: not
# ours to fix, and the only violation the page may have.
PLOTLY_CONTAINERS = ("#plot", "#sankey")

# Panels: what the page is made of at the top level; on a phone each takes (nearly) the full width.
# An element inside a horizontal scroller may be wider than the panel: the scroller holds it.
LAYOUT_JS = """() => {
  const vw = document.documentElement.clientWidth;
  const panels = Array.from(document.querySelectorAll(
    'header, .controls, main > section, main > details, .panels > .panel, footer'));
  const name = e => e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className;
  const narrow = panels.filter(p => p.getBoundingClientRect().width < 0.9 * vw).map(name);
  const overflowing = [];
  panels.forEach(panel => {
    const box = panel.getBoundingClientRect();
    panel.querySelectorAll('*').forEach(e => {
      const scroller = e.parentElement && e.parentElement.closest('.table-scroll');
      if (scroller && panel.contains(scroller)) { return; }
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) { return; }
      if (r.left < box.left - 1 || r.right > box.right + 1) {
        overflowing.push(name(panel) + ' > ' + name(e) + ' ' + Math.round(r.left) + '…' +
                         Math.round(r.right) + ' outside ' + Math.round(box.left) + '…' +
                         Math.round(box.right));
      }
    });
  });
  return {vw: vw, panels: panels.length, narrow: narrow, overflowing: overflowing,
          page: document.documentElement.scrollWidth};
}"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labelled folders (one with a Japanese name) of small pictures, and large photos."""
    root = tmp_path_factory.mktemp("newcomer-photos")
    folders = {"red": (200, 40, 40), "緑の写真": (40, 160, 60), "blue": (40, 60, 200)}
    for name, colour in folders.items():
        for i in range(5):
            make_image(root / name / f"{name}_{i:02d}.png", colour, noise=10 + 6 * i, seed=i)
        make_image(root / name / f"{name}_large.jpg", colour, (1600, 1200), noise=40, seed=9)
    return root


@pytest.fixture(scope="module")
def site(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("newcomer-site") / "site"
    config = BuildConfig(inputs=(photos,), output=output, k_max=10, labels="folders")
    build_site(config, embedder=FakeEmbedder())
    return output


@pytest.fixture(scope="module")
def site_without_previews(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("newcomer-nopreview") / "site"
    config = BuildConfig(inputs=(photos,), output=output, k_max=3, preview_size=0)
    build_site(config, embedder=FakeEmbedder())
    return output


def open_details(page: Page) -> None:
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")


def large_index(page: Page) -> int:
    return page.evaluate(
        "() => window.dinoclust.data.images.findIndex(i => i.path.endsWith('_large.jpg'))"
    )


@pytest.mark.parametrize("lang", LANGS)
def test_phone_layout_is_one_column_and_nothing_overflows(browser: Browser, site, lang) -> None:
    with open_page(browser, site / "index.html", f"k=10&lang={lang}", viewport=PHONE) as opened:
        page = opened.page
        open_details(page)
        layout = page.evaluate(LAYOUT_JS)
        assert page.evaluate("() => document.documentElement.lang") == lang
        assert layout["panels"] >= 8
        assert layout["narrow"] == []
        assert layout["overflowing"] == []
        assert layout["page"] <= PHONE[0]  # no sideways scrolling of the page itself
        # "112 (66.3 %)" and the like stay on one line in the sizes list
        lines = page.evaluate(
            """() => Array.from(document.querySelectorAll('#sizes .bar-value')).map(e => {
                 const range = document.createRange(); range.selectNodeContents(e);
                 return range.getClientRects().length; })"""
        )
        assert lines and set(lines) == {1}
        # the sticky bar stays small: at most 12 % of the screen
        bar = page.locator(".controls").bounding_box()
        assert bar is not None and bar["height"] <= 0.12 * PHONE[1]
        # …and opaque: headings scrolling under it do not show through
        background = "() => getComputedStyle(document.querySelector('.controls')).backgroundColor"
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        assert opened.errors == []


def test_desktop_metrics_table_fits_or_scrolls_in_its_panel(browser: Browser, site) -> None:
    for lang in LANGS:
        with open_page(browser, site / "index.html", f"lang={lang}", viewport=DESKTOP) as opened:
            page = opened.page
            open_details(page)
            fit = page.evaluate(
                """() => {
                  const table = document.getElementById('metrics-table');
                  const panel = table.closest('.panel').getBoundingClientRect();
                  const scroller = table.closest('.table-scroll');
                  const edge = (scroller || table).getBoundingClientRect().right;
                  return {inside: table.getBoundingClientRect().right <= panel.right,
                          scrolls: !!scroller && scroller.scrollWidth > scroller.clientWidth
                                   && edge <= panel.right,
                          heads: Array.from(table.querySelectorAll('thead th'))
                                   .map(th => th.textContent),
                          rows: Array.from(table.querySelectorAll('tbody th'))
                                   .map(th => th.getBoundingClientRect().height)};
                }"""
            )
            assert fit["inside"] or fit["scrolls"]
            heads = {"en": ["k", "Inertia", "Silhouette", "Calinski–Harabasz", "Davies–Bouldin"]}
            heads["ja"] = ["k", "クラスタ内平方和", "シルエット", "Calinski–Harabasz"]
            assert fit["heads"][: len(heads[lang])] == heads[lang]
            assert "calinski_harabasz" not in fit["heads"]
            assert len(set(fit["rows"])) == 1  # "10" does not wrap onto two lines
            # the CSV link is not inside the <summary> (axe: nested-interactive)
            assert page.locator("summary a").count() == 0
            assert page.locator("#quality a[href='metrics.csv']").count() == 1
            assert opened.errors == []


def test_preview_shows_the_larger_image(browser: Browser, site, site_without_previews) -> None:
    with open_page(browser, site / "index.html", viewport=DESKTOP) as opened:
        page = opened.page
        index = large_index(page)
        image = page.evaluate("i => window.dinoclust.data.images[i]", index)
        assert image["preview"].startswith("previews/")
        page.evaluate("i => window.dinoclust.openPreview(i)", index)
        page.wait_for_function(
            "() => { const i = document.querySelector('dialog#preview > img'); "
            "return i.complete && i.naturalWidth > 0; }",
            timeout=TIMEOUT_MS,
        )
        shown = page.evaluate(
            "() => { const i = document.querySelector('dialog#preview > img'); "
            "return {src: i.getAttribute('src'), natural: i.naturalWidth, "
            "width: i.getBoundingClientRect().width}; }"
        )
        assert shown["src"] == image["preview"]
        assert shown["natural"] == image["preview_width"] == 800 > image["thumb_width"]
        assert shown["width"] > image["thumb_width"]
        assert opened.errors == []
    with open_page(browser, site_without_previews / "index.html") as opened:
        page = opened.page
        index = large_index(page)
        page.evaluate("i => window.dinoclust.openPreview(i)", index)
        src = page.locator("dialog#preview > img").get_attribute("src")
        assert src == page.evaluate("i => window.dinoclust.data.images[i].thumb", index)
        assert not (site_without_previews / "previews").exists()


def test_hover_shows_our_card_only_and_labels_read_as_words(browser: Browser, site) -> None:
    with open_page(browser, site / "index.html", "k=3&lang=ja") as opened:
        page = opened.page
        traces = page.evaluate(
            "() => document.getElementById('plot').data.map(t => [t.hoverinfo, t.marker.symbol])"
        )
        assert traces[0][0] == "none"  # Plotly's own label would sit under our thumbnail card
        assert traces[1][1] == "diamond-open"  # a one-image cluster's point shows inside
        nodes = page.evaluate("() => document.getElementById('sankey').data[0].node.label")
        assert nodes[0].startswith("k = 3 のクラスタ 0: ")
        title = page.locator("#labels-title").inner_text()
        assert "サブフォルダ" in title and "folders" not in title
        page.locator("#k-slider").fill("5")
        page.wait_for_function("() => document.body.dataset.k === '5'", timeout=TIMEOUT_MS)
        link = page.locator("#labels-table-link")
        assert link.get_attribute("href") == link.inner_text() == "tables/labels_k5.csv"
        assert opened.errors == []


def test_the_top_level_label_is_words_in_the_readers_language(browser, tmp_path) -> None:
    from generator.i18n import ui_strings
    from generator.ingest.labels import TOP_LEVEL

    assert ui_strings()["en"]["label_top_level"] == TOP_LEVEL  # what lang.js compares with
    for i in range(3):
        make_image(tmp_path / "in" / f"top_{i}.png", (200, 40, 40), noise=8, seed=i)
        make_image(tmp_path / "in" / "sub" / f"s_{i}.png", (40, 60, 200), noise=8, seed=i)
    config = BuildConfig(inputs=(tmp_path / "in",), output=tmp_path / "s", labels="folders")
    build_site(config, embedder=FakeEmbedder())
    for lang, shown in (("ja", "（フォルダ直下）"), ("en", TOP_LEVEL)):
        with open_page(browser, tmp_path / "s" / "index.html", f"k=2&lang={lang}") as opened:
            rows = opened.page.locator("#labels-section tbody th").all_inner_texts()
            assert sorted(rows) == sorted([shown, "sub"])
            assert opened.errors == []


def test_two_identical_images_no_sankey_and_an_empty_cluster_said_so(browser, tmp_path) -> None:
    for name in ("a.png", "b.png"):
        make_image(tmp_path / "two" / name, (90, 90, 200))
    config = BuildConfig(inputs=(tmp_path / "two",), output=tmp_path / "s")
    build_site(config, embedder=FakeEmbedder())
    with open_page(browser, tmp_path / "s" / "index.html") as opened:
        page = opened.page
        assert page.locator("#sankey").count() == 0  # one k: nothing splits, no empty box
        headings = page.evaluate(  # the heading's own text, without the file-list button
            "() => [...document.querySelectorAll('#grid h3')].map(h => [...h.childNodes]"
            "  .filter(n => n.nodeName !== 'BUTTON').map(n => n.textContent).join('').trim())"
        )
        assert headings == [
            "Cluster 0 · 2 images",
            "Cluster 1 · empty (fewer distinct images than k)",
        ]
        assert opened.errors == []


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core not found at {AXE}: run `bash scripts/ensure-axe.sh` (npm install "
            "axe-core) or point AXE_PATH at axe.min.js.",
            pytrace=False,
        )
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """() => window.axe.run(document, {resultTypes: ['violations']}).then(r =>
             r.violations.map(v => ({id: v.id, targets: v.nodes.map(n => n.target.join(' '))})))"""
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("lang", LANGS)
def test_axe_finds_nothing_but_plotlys_containers(browser: Browser, site, lang, viewport) -> None:
    fragment = f"k=4&lang={lang}"
    with open_page(browser, site / "index.html", fragment, viewport=viewport, bypass_csp=True) as o:
        page = o.page
        open_details(page)
        page.evaluate("i => window.dinoclust.openPreview(i)", large_index(page))
        assert o.errors == []  # (axe itself then tries to read the stylesheet: not the page's)
        violations = axe_violations(page)
        ours = [
            v
            for v in violations
            if v["id"] != "nested-interactive"
            or not all(t.startswith(PLOTLY_CONTAINERS) for t in v["targets"])
        ]
        assert ours == []
