"""Issue 6 items 4–6 in real Chromium: the page in English and Japanese (switchable, remembered),
linked views between the 3D plot and the grid, and the lazily rendered grid of large clusters."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from generator.commands.build import build_site
from generator.commands.deliver import deliver
from generator.config import BuildConfig
from generator.i18n import LANGS, templates_dir, ui_strings
from tests.browser import TIMEOUT_MS, open_page, point_step, wait_for_k
from tests.helpers import FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

RED, BLUE = 70, 12  # the red cluster is longer than the 60 thumbnails a cluster shows at first
JA_DIR = "青い写真"
# Plotly's own events, as its WebGL picking fires them over a point of the images trace
EMIT = """([name, i]) => document.getElementById('plot').emit(
    name, {points: [{curveNumber: 0, pointNumber: i}]})"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("views-photos")
    for i in range(RED):
        colour = (200 + i % 40, 30, 30)
        make_image(root / "red" / f"red_{i:02d}.png", colour, noise=5 + i % 20, seed=i)
    for i in range(BLUE):
        make_image(root / JA_DIR / f"猫の写真_{i}.png", (30, 60, 220 - 5 * i), noise=8, seed=i)
    return root


@pytest.fixture(scope="module")
def site(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("views-site") / "site"
    build_site(BuildConfig(inputs=(photos,), output=output, k_max=4), embedder=FakeEmbedder())
    return output


@pytest.fixture(scope="module")
def ja_single(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """--lang ja --single-file: the one-file page, written in Japanese."""
    target = tmp_path_factory.mktemp("views-ja") / "report.html"
    config = BuildConfig(
        inputs=(photos,), output=target, k_max=4, single_file=True, lang="ja", title="猫と赤"
    )
    deliver(config, embedder=FakeEmbedder())
    return target


def report_of(site: Path) -> dict[str, Any]:
    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def texts(page: Page) -> dict[str, str]:
    return page.evaluate(
        """() => ({lang: document.documentElement.lang,
                   grid: document.getElementById('grid-title').textContent,
                   k: document.querySelector('label[for=k-slider]').textContent,
                   sizes: document.getElementById('sizes-text').textContent,
                   cluster: document.querySelector('#grid h3').textContent,
                   legend: document.querySelector('#plot-legend li:last-child').textContent,
                   axis: document.getElementById('plot')._fullLayout.scene.xaxis.title.text,
                   metric: document.querySelector('.metric-chart figcaption').textContent})"""
    )


def test_every_string_exists_in_every_language_and_every_used_key_exists() -> None:
    strings = ui_strings()
    assert set(strings) == set(LANGS) == {"en", "ja"}
    assert set(strings["en"]) == set(strings["ja"])
    assert all(text.strip() for lang in LANGS for text in strings[lang].values())
    root = templates_dir()
    used: set[str] = set()
    for path in [*root.glob("*.html"), *root.glob("static/js/*.js")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\b(?:tx|tr|t)\(\s*["']([a-z_]+)["']\s*[,)]""", text))
        used |= set(re.findall(r'data-i18n(?:-aria)?="([a-z_]+)"', text))
    used |= {f"m_{m}{s}" for m in ("inertia", "silhouette", "purity") for s in ("", "_hint")}
    assert used and used <= set(strings["en"])


def test_language_switch_swaps_every_string_and_is_remembered(browser: Browser, site: Path) -> None:
    n = len(report_of(site)["images"])
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        english = texts(page)
        assert english["lang"] == "en" and english["grid"] == "Images by cluster"
        assert english["sizes"].endswith(f"= {n} images") and english["legend"] == "Centres"
        page.get_by_role("button", name="日本語").click()
        page.wait_for_function("() => document.documentElement.lang === 'ja'", timeout=TIMEOUT_MS)
        wait_for_k(page, 2)
        japanese = texts(page)
        fixed = {"lang": "ja", "grid": "クラスタごとの画像", "k": "クラスタ数 k", "legend": "中心"}
        assert {key: japanese[key] for key in fixed} == fixed
        assert set(japanese) == set(english)
        assert all(japanese[key] != english[key] for key in english)  # every one re-said
        assert japanese["sizes"].endswith(f"= {n} 枚")
        assert japanese["cluster"].startswith("クラスタ 0")
        assert japanese["axis"].startswith("第1主成分") and "クラスタ内平方和" in japanese["metric"]
        assert page.locator("#pca-summary").inner_text().endswith("です。")
        assert "平均シルエット係数が最大" in page.locator("#suggestion").inner_text()
        assert page.evaluate("() => location.hash") == "#k=2&lang=ja"
        assert page.get_by_role("button", name="日本語").get_attribute("aria-pressed") == "true"
        # no English left in what the script wrote
        assert "Cluster" not in page.locator("#grid h3, #sizes").all_inner_texts()[0]
        # the choice is remembered (localStorage works from file://) and can be switched back
        page.goto((site / "index.html").resolve().as_uri())
        page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=TIMEOUT_MS)
        assert texts(page)["lang"] == "ja"
        page.get_by_role("button", name="EN").click()
        page.wait_for_function("() => document.documentElement.lang === 'en'", timeout=TIMEOUT_MS)
        assert texts(page)["grid"] == "Images by cluster"
        assert page.evaluate("() => location.hash") == "#k=2"
        assert opened.errors == []


def test_notes_skip_reasons_and_default_title_follow_the_language_even_without_plotly(
    browser: Browser, tmp_path: Path
) -> None:
    """Text the build wrote (title, notes, skip reasons) is translated by lang.js, which runs
    before Plotly loads: right from the first paint, and even if Plotly never arrives."""
    for i in range(3):
        make_image(tmp_path / "photos" / f"{i}.png", (10 + 60 * i, 20, 30))
    (tmp_path / "photos" / "broken.png").write_bytes(b"")
    build_site(
        BuildConfig(inputs=(tmp_path / "photos",), output=tmp_path / "site"),
        embedder=FakeEmbedder(),
    )
    read = """() => ({lang: document.documentElement.lang, title: document.title,
                      h1: document.querySelector('h1').textContent,
                      note: document.querySelector('header .note').textContent,
                      skipped: document.querySelector('#skipped li').textContent,
                      plotly: typeof window.Plotly})"""
    page_html = tmp_path / "site" / "index.html"
    with open_page(browser, page_html, fragment="lang=ja", blocked="plotly") as opened:
        assert opened.page.evaluate(read) == {
            "lang": "ja",
            "title": "画像のクラスタ",
            "h1": "画像のクラスタ",
            "note": "PCA の主成分は 3 個です（画像の枚数より多くは取れません）。",
            "skipped": "broken.png: 空のファイルです",
            "plotly": "undefined",
        }
        assert len(opened.errors) == 1 and "ERR_FAILED" in opened.errors[0]  # Plotly's file
    with open_page(browser, page_html) as opened:
        page = opened.page
        page.get_by_role("button", name="日本語").click()
        page.wait_for_function("() => document.documentElement.lang === 'ja'", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="EN").click()
        page.wait_for_function("() => document.documentElement.lang === 'en'", timeout=TIMEOUT_MS)
        english = page.evaluate(read)
        assert english["title"] == english["h1"] == "Image clusters"
        assert english["note"] == "PCA kept 3 components: no more than the number of images."
        assert english["skipped"] == "broken.png: empty file"
        assert opened.errors == []


def test_lang_ja_single_file_opens_in_japanese_with_japanese_names(
    browser: Browser, ja_single: Path
) -> None:
    html = ja_single.read_text(encoding="utf-8")
    assert '<html lang="ja">' in html and "クラスタごとの画像" in html
    with open_page(browser, ja_single, fragment="k=2") as opened:
        page = opened.page
        assert texts(page)["lang"] == "ja" and page.locator("h1").inner_text() == "猫と赤"
        captions = page.locator("#grid figcaption").all_inner_texts()
        assert "猫の写真_0.png" in captions
        alts = page.evaluate("() => [...document.querySelectorAll('#grid img')].map(i => i.alt)")
        assert f"{JA_DIR}/猫の写真_0.png" in alts
        # the Japanese caption is drawn with a real font: wider than a row of replacement boxes
        width = page.evaluate(
            """() => [...document.querySelectorAll('#grid figcaption')]
                 .find(f => f.textContent === '猫の写真_0.png').scrollWidth"""
        )
        assert width > 40
        assert opened.errors == [] and opened.external == []


def test_linked_views_hover_click_preview(browser: Browser, site: Path) -> None:
    report = report_of(site)
    last_red = max(
        (i for i, im in enumerate(report["images"]) if im["path"].startswith("red/")),
        key=lambda i: report["clusterings"]["2"]["distances"][i],
    )
    with open_page(browser, site / "index.html", fragment="k=2") as opened:
        page = opened.page
        plot = page.locator("#plot")
        box = plot.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + 50, box["y"] + 50)
        # hover → the thumbnail by the cursor
        page.evaluate(EMIT, ["plotly_hover", 3])
        hover = page.locator(".hover-thumb")
        assert hover.is_visible()
        assert hover.locator("img").get_attribute("data-index") == "3"
        assert hover.locator("img").get_attribute("src") == report["images"][3]["thumb"]
        page.evaluate("() => document.getElementById('plot').emit('plotly_unhover', {})")
        assert not hover.is_visible()

        # click a point whose image is beyond the first 60 of its cluster: shown, scrolled, ringed
        page.evaluate(EMIT, ["plotly_click", last_red])
        figure = page.locator(f"#grid figure:has(img[data-index='{last_red}'])")
        page.wait_for_function(
            "() => document.querySelectorAll('#grid figure.highlight').length === 1",
            timeout=TIMEOUT_MS,
        )
        assert "highlight" in (figure.get_attribute("class") or "")
        assert figure.evaluate(
            "f => { const r = f.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight; }"
        )
        selected = page.evaluate("() => document.getElementById('plot').data[2]")
        xyz = [selected["x"][0], selected["y"][0], selected["z"][0]]
        step = point_step(report)  # positions travel as 16-bit steps (payload.POINT_STEPS)
        assert max(abs(a - b) for a, b in zip(xyz, report["points"][last_red], strict=True)) <= step

        # keyboard: a thumbnail is a button; Enter opens the preview, which rings its point
        page.locator("#grid button:has(img[data-index='0'])").focus()
        page.keyboard.press("Enter")
        dialog = page.locator("dialog#preview")
        assert dialog.is_visible() and dialog.get_attribute("data-index") == "0"
        assert (
            page.locator("dialog#preview > img").get_attribute("alt") == report["images"][0]["path"]
        )
        page.wait_for_function(
            "p => Math.abs(document.getElementById('plot').data[2].x[0] - p[0]) <= p[1]",
            arg=[report["points"][0][0], step],
            timeout=TIMEOUT_MS,
        )
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
        # a mouse click on another thumbnail does the same
        page.locator("#grid img[data-index='1']").click()
        assert dialog.is_visible() and dialog.get_attribute("data-index") == "1"
        page.keyboard.press("Escape")
        assert opened.errors == []


def test_large_cluster_shows_more_on_demand(browser: Browser, site: Path) -> None:
    clustering = report_of(site)["clusterings"]["2"]
    with open_page(browser, site / "index.html", fragment="k=2") as opened:
        page = opened.page
        big = max(range(2), key=lambda c: clustering["sizes"][c])
        section = page.locator(f"#grid > section[data-cluster='{big}']")
        assert section.locator("figure").count() == 60
        more = section.locator("button.show-more")
        assert more.inner_text() == f"Show {clustering['sizes'][big] - 60} more"
        more.click()
        assert section.locator("figure").count() == clustering["sizes"][big]
        assert not more.is_visible()
        assert opened.errors == []


def test_dense_plots_draw_small_squares(browser: Browser, site: Path, tmp_path: Path) -> None:
    """Above 2,000 images each point is a 3 px square (two triangles), not a circle glyph."""
    for i in range(2001):
        make_image(tmp_path / "many" / f"{i:04d}.png", (i % 256, 30 * (i // 256), 90), (16, 12))
    dense = tmp_path / "dense"
    config = BuildConfig(inputs=(tmp_path / "many",), output=dense, k_max=3)
    build_site(config, embedder=FakeEmbedder())
    marker = """() => { const plot = document.getElementById('plot');
                        const m = plot._fullData[0].marker;
                        return [m.symbol, m.size, plot.data[0].x.length]; }"""
    with open_page(browser, dense / "index.html") as opened:
        assert opened.page.evaluate(marker) == ["square", 3, 2001]
        assert opened.errors == []
    n = len(report_of(site)["images"])
    with open_page(browser, site / "index.html") as opened:
        assert opened.page.evaluate(marker) == ["circle", 4, n]


def test_phone_layout(browser: Browser, site: Path, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto((site / "index.html").resolve().as_uri())
        page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=TIMEOUT_MS)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0  # nothing wider than the phone's screen
        assert page.locator("#plot").bounding_box()["width"] <= 390  # type: ignore[index]
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=False)
        from PIL import Image

        with Image.open(tmp_path / "phone.png") as shot:
            scale = page.evaluate("() => devicePixelRatio")
            assert shot.size == (round(390 * scale), round(844 * scale))
            colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 50  # the page was drawn, not blank
    finally:
        context.close()
