"""The generated site in real headless Chromium, opened from file:// with no network.

Sites are built once per module with the fake embedder; each test opens a fresh page. These tests
look at what a reader would see (DOM, Plotly's own state, pixels), checked against report.json.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.browser import (
    TIMEOUT_MS,
    hue_pixels,
    open_page,
    point_step,
    wait_for_k,
)
from tests.helpers import COLOURS, FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

HOSTILE_TITLE = "<script>window.__pwned=2</script>"
HOSTILE_NAMES = (
    '<img src=x onerror="window.__pwned=1">.png',
    'a&b "quoted".png',
    "猫の写真.png",
    "<i>x'y & z/plain.png",  # a hostile folder name too
)
HOSTILE_SKIPPED = "<svg onload=window.__pwned=3>.jpg"
MIN_MARKER_PIXELS = 10  # a few markers of 4 px, even with some hidden behind a centre


class RandomWeightsEmbedder(FakeEmbedder):
    info = dataclasses.replace(FakeEmbedder.info, weights="random", random_weights=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 images in three colour groups (k = 2 … 10) and one unreadable file.

    Shade and noise vary within each group, so the fake features spread out: identical points would
    sit hidden behind their cluster's centre diamond and the plot's pixels would prove nothing.
    """
    root = tmp_path_factory.mktemp("browser-site")
    photos = root / "photos"
    for name, (r, g, b) in COLOURS.items():
        for i in range(6):
            shade = 12 * i - 30
            colour = (r + shade, g + shade, b + shade)
            make_image(photos / name / f"{name}_{i}.png", colour, noise=4 + 9 * i, seed=i)
    (photos / "broken.png").write_bytes(b"not an image")
    config = BuildConfig(inputs=(photos,), output=root / "site", title="Browser test", k_max=10)
    build_site(config, embedder=FakeEmbedder())
    return root / "site"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Markup in file, folder and title names; built with "random weights"."""
    root = tmp_path_factory.mktemp("browser-hostile")
    photos = root / "photos"
    colours = [(220, 30, 30), (30, 180, 60), (30, 60, 220), (200, 190, 40)]
    for i, (name, colour) in enumerate(zip(HOSTILE_NAMES, colours, strict=True)):
        make_image(photos / name, colour, noise=10, seed=i)
    (photos / HOSTILE_SKIPPED).write_bytes(b"not an image")
    config = BuildConfig(inputs=(photos,), output=root / "site", title=HOSTILE_TITLE)
    build_site(config, embedder=RandomWeightsEmbedder())
    return root / "site"


def report_of(site: Path) -> dict[str, Any]:
    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def plot_traces(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => document.getElementById('plot').data.map(t => ({
             name: t.name, uid: t.uid, type: t.type, x: t.x, y: t.y, z: t.z, text: t.text,
             symbol: t.marker.symbol,
             color: t.uid === 'points' ? t.marker.color.map(window.dinoclust.markerColour)
                                       : t.marker.color}))"""
    )


def grid_layout(page: Page) -> list[tuple[int, int]]:
    """(cluster, image index) for every thumbnail, in page order."""
    pairs = page.evaluate(
        """() => [...document.querySelectorAll('#grid > section[data-cluster]')].flatMap(s =>
             [...s.querySelectorAll('img[data-index]')].map(
               img => [Number(s.dataset.cluster), Number(img.dataset.index)]))"""
    )
    return [(c, i) for c, i in pairs]


def points_trace(page: Page) -> dict[str, Any]:
    """The one trace of every image (coloured per point); the others are centres and selection."""
    traces = [t for t in plot_traces(page) if t["uid"] == "points"]
    assert len(traces) == 1
    return traces[0]


def missing_marker_colours(page: Page) -> list[str]:
    """Point colours (clusters) with (almost) no pixels of their hue in the WebGL canvas."""
    png = page.locator("#plot .gl-container canvas").first.screenshot()
    colours = sorted(set(points_trace(page)["color"]))
    return [c for c in colours if hue_pixels(png, c) < MIN_MARKER_PIXELS]


def wait_for_marker_colours(page: Page) -> None:
    """WebGL draws on animation frames: poll the canvas until every cluster's colour shows."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while missing := missing_marker_colours(page):
        if time.monotonic() > deadline:
            pytest.fail(f"no markers drawn in the 3D plot for {missing}")
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )


def test_page_loads_offline_without_errors(browser: Browser, site: Path, tmp_path: Path) -> None:
    report = report_of(site)
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(
            """() => [...document.querySelectorAll('#grid img')].every(
                 img => img.complete && img.naturalWidth > 0)""",
            timeout=TIMEOUT_MS,
        )
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)

        assert opened.errors == []
        assert opened.external == []
        assert page.evaluate("() => window.dinoclust.state.ready") is True
        assert page.locator("body").get_attribute("data-k") == str(report["k_values"][0])
        assert page.locator("#random-banner").count() == 0
        assert [s["path"] for s in report["skipped"]] == ["broken.png"]
        assert page.locator("#skipped li").all_inner_texts() == [
            f"{s['path']}: {s['reason']}" for s in report["skipped"]
        ]
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(shot) as image:
        assert image.width == 1200 and image.height > 800


def test_slider_to_5_shows_the_k5_clustering(browser: Browser, site: Path) -> None:
    report = report_of(site)
    clustering = report["clusterings"]["5"]
    n = len(report["images"])
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        page.locator("#k-slider").fill("5")
        wait_for_k(page, 5)

        assert page.locator("#k-value").inner_text() == "5"
        assert page.locator("#grid > section[data-cluster]").count() == 5
        layout = grid_layout(page)
        assert sorted(i for _, i in layout) == list(range(n))  # each image exactly once
        assert all(clustering["labels"][i] == c for c, i in layout)

        sizes = [
            int(row.get_attribute("data-size") or "-1")
            for row in page.locator("#sizes > li.bar-row").all()
        ]
        assert sizes == clustering["sizes"]
        assert sum(sizes) == n
        assert page.locator("#sizes-text").inner_text().endswith(f"= {n} images")

        centres = [t for t in plot_traces(page) if t["name"] == "Centres"]
        assert len(centres) == 1
        assert centres[0]["symbol"] == "diamond-open" and centres[0]["color"] == "#000000"
        xyz = zip(centres[0]["x"], centres[0]["y"], centres[0]["z"], strict=True)
        assert [list(p) for p in xyz] == clustering["centers"]
        assert opened.errors == []


def test_hash_opens_k_and_follows_slider_and_keys(browser: Browser, site: Path) -> None:
    k_max = report_of(site)["k_values"][-1]
    with open_page(browser, site / "index.html", fragment="k=3") as opened:
        page = opened.page
        wait_for_k(page, 3)
        assert page.locator("#k-slider").input_value() == "3"
        assert page.locator("#grid > section[data-cluster]").count() == 3

        page.locator("#k-slider").fill("7")
        wait_for_k(page, 7)
        assert page.evaluate("() => location.hash") == "#k=7"

        page.evaluate("() => document.activeElement.blur()")
        assert page.evaluate("() => document.activeElement === document.body")
        page.keyboard.press("ArrowRight")
        wait_for_k(page, 8)
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        wait_for_k(page, 6)
        assert page.evaluate("() => location.hash") == "#k=6"
        assert page.locator("#k-slider").input_value() == "6"

        # With focus on the slider the browser moves it: one step per key, not two.
        page.locator("#k-slider").focus()
        page.keyboard.press("ArrowRight")
        wait_for_k(page, 7)
        assert page.evaluate("() => location.hash") == "#k=7"

        # A link within the page (hashchange) switches too, clamped to the k range.
        page.evaluate("() => { location.hash = '#k=99'; }")
        wait_for_k(page, k_max)
        assert page.evaluate("() => location.hash") == f"#k={k_max}"
        assert opened.errors == []


def test_plot_renders_in_webgl(browser: Browser, site: Path) -> None:
    report = report_of(site)
    paths = [image["path"] for image in report["images"]]
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        assert "WebGL is not supported" not in page.locator("body").inner_text()
        wait_for_marker_colours(page)
        page.locator("#k-slider").fill("3")
        wait_for_k(page, 3)
        wait_for_marker_colours(page)  # Plotly.restyle recoloured the points

        titles = page.evaluate(
            """() => ['xaxis', 'yaxis', 'zaxis'].map(
                 a => document.getElementById('plot')._fullLayout.scene[a].title.text)"""
        )
        ratios = report["pca"]["explained_variance_ratio"][:3]
        for i, (title, ratio) in enumerate(zip(titles, ratios, strict=True)):
            assert title == f"PC{i + 1} ({100 * ratio:.1f} %)"
        assert float(titles[2].split("(")[1].split(" ")[0]) > 0  # the data is really 3D

        labels = report["clusterings"]["3"]["labels"]
        points = points_trace(page)
        assert points["type"] == "scatter3d"
        assert points["text"] == paths  # hover text: the file paths, in image order
        xyz = np.array([points["x"], points["y"], points["z"]]).T
        assert np.abs(xyz - np.array(report["points"])).max() <= point_step(report)
        colour_of = dict(zip(labels, points["color"], strict=True))
        assert len(set(colour_of.values())) == 3  # a colour per cluster …
        pairs = zip(labels, points["color"], strict=True)
        assert all(colour_of[c] == colour for c, colour in pairs)
        legend = page.locator("#plot-legend li").all_inner_texts()
        sizes = report["clusterings"]["3"]["sizes"]
        assert legend == [f"Cluster {c} ({n})" for c, n in enumerate(sizes)] + ["Centres"]
        assert opened.errors == []


def test_hostile_names_and_title_stay_text(browser: Browser, hostile_site: Path) -> None:
    report = report_of(hostile_site)
    paths = sorted(image["path"] for image in report["images"])
    assert paths == sorted(HOSTILE_NAMES)
    with open_page(browser, hostile_site / "index.html") as opened:
        page = opened.page
        page.wait_for_load_state("load")
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img:not([data-index]), svg[onload], h1 *").count() == 0

        assert page.locator("h1").inner_text() == HOSTILE_TITLE
        assert page.title() == HOSTILE_TITLE
        figures = page.evaluate(
            """() => [...document.querySelectorAll('#grid figure')].map(f => [
                 f.querySelector('img').getAttribute('alt'),
                 f.querySelector('figcaption').textContent])"""
        )
        assert sorted(alt for alt, _ in figures) == paths
        assert sorted(caption for _, caption in figures) == sorted(p.split("/")[-1] for p in paths)
        assert page.locator("#skipped li code").all_inner_texts() == [HOSTILE_SKIPPED]

        # Plotly reads a few tags in hover text: names reach it escaped, and read back unchanged.
        texts = points_trace(page)["text"]
        assert sorted(html.unescape(text) for text in texts) == paths
        assert not any("<" in text for text in texts)
        assert opened.errors == []
        assert opened.external == []


def test_random_weights_banner(browser: Browser, hostile_site: Path) -> None:
    assert report_of(hostile_site)["model"]["random_weights"] is True
    with open_page(browser, hostile_site / "index.html") as opened:
        banner = opened.page.locator("#random-banner")
        assert banner.is_visible()
        assert "built with random, untrained weights" in banner.inner_text()
        # its sentences are spaced in English and not after Japanese's 。, by the page's language
        gaps = """() => Array.from(document.querySelectorAll('#random-banner .then'))
          .map(e => getComputedStyle(e, '::before').content)"""
        assert opened.page.evaluate(gaps) == ['" "', '" "']
        opened.page.locator(".lang-switch button[data-lang='ja']").click()
        assert opened.page.evaluate(gaps) == ["none", "none"]
