"""What is sent, opened as the recipient opens it: the single HTML file copied alone into an
empty folder, and the zip unpacked into one; headless Chromium, every non-file request blocked."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from generator.commands.deliver import deliver
from generator.config import BuildConfig
from tests.browser import TIMEOUT_MS, open_page, wait_for_k
from tests.helpers import COLOURS, FakeEmbedder, make_image
from tests.test_browser import grid_layout, points_trace, wait_for_marker_colours

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colour groups whose features spread out, so the plot's pixels prove something."""
    root = tmp_path_factory.mktemp("deliver-photos")
    for name, (r, g, b) in COLOURS.items():
        for i in range(5):
            shade = 12 * i - 24
            colour = (r + shade, g + shade, b + shade)
            make_image(root / name / f"{name}_{i}.png", colour, (160, 120), noise=4 + 9 * i, seed=i)
    return root


def build(photos: Path, output: Path, **options) -> dict:
    config = BuildConfig(inputs=(photos,), output=output, title="Sent", k_max=6, **options)
    return deliver(config, embedder=FakeEmbedder()).result.report


def check_page(page: Page, report: dict) -> None:
    """Ready, the grid grouped as at k_min, every thumbnail decoded, the 3D plot really drawn."""
    k = report["k_values"][0]
    assert page.evaluate("() => window.dinoclust.state.ready") is True
    assert page.locator("#grid > section[data-cluster]").count() == k
    layout = grid_layout(page)
    labels = report["clusterings"][str(k)]["labels"]
    assert sorted(i for _, i in layout) == list(range(len(report["images"])))
    assert all(labels[i] == c for c, i in layout)
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(
        """() => [...document.querySelectorAll('#grid img')].every(
             img => img.complete && img.naturalWidth > 0)""",
        timeout=TIMEOUT_MS,
    )
    assert "WebGL is not supported" not in page.locator("body").inner_text()
    wait_for_marker_colours(page)
    page.locator("#k-slider").fill("3")
    wait_for_k(page, 3)
    wait_for_marker_colours(page)
    assert len(set(points_trace(page)["color"])) == 3  # one points trace, a colour per cluster


def test_single_file_works_copied_alone_with_no_network(
    browser: Browser, photos: Path, tmp_path: Path
) -> None:
    report = build(photos, tmp_path / "build" / "report.html", single_file=True)
    alone = tmp_path / "attachment"
    alone.mkdir()
    shutil.copy(tmp_path / "build" / "report.html", alone / "report.html")
    assert [p.name for p in alone.iterdir()] == ["report.html"]

    with open_page(browser, alone / "report.html") as opened:
        page = opened.page
        check_page(page, report)
        thumbs = page.evaluate("() => [...document.querySelectorAll('#grid img')].map(i => i.src)")
        assert thumbs and all(src.startswith("data:image/webp;base64,") for src in thumbs)
        assert page.evaluate("() => typeof window.Plotly") == "object"
        assert opened.errors == []  # a CSP violation would be a console error
        assert opened.external == []


def test_zip_unpacked_in_an_empty_folder_works(
    browser: Browser, photos: Path, tmp_path: Path
) -> None:
    build(photos, tmp_path / "site", zip_file=tmp_path / "mail.zip")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "mail.zip") as archive:
        archive.extractall(unpacked)
    index = unpacked / "mail" / "index.html"
    report = json.loads((unpacked / "mail" / "report.json").read_text(encoding="utf-8"))

    with open_page(browser, index) as opened:
        check_page(opened.page, report)
        assert opened.errors == []
        assert opened.external == []
