"""Issue 16 in real Chromium: similar images in the preview, the per-cluster file lists and the
experiment report panel, in the folder site and in the single file, from file:// offline."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from generator.commands.build import build_site
from generator.commands.deliver import deliver
from generator.config import BuildConfig
from tests.browser import TIMEOUT_MS, open_page, point_step
from tests.helpers import COLOURS, FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("use-photos")
    for name, (r, g, b) in COLOURS.items():
        for i in range(7):
            shade = 9 * i - 27
            colour = (r + shade, g + shade, b + shade)
            make_image(root / name / f"{name} {i}.png", colour, noise=4 + 7 * i, seed=i)
    return root


@pytest.fixture(scope="module")
def site(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("use-site") / "site"
    config = BuildConfig(inputs=(photos,), output=output, k_max=5, labels="folders")
    build_site(config, embedder=FakeEmbedder())
    return output


@pytest.fixture(scope="module")
def single(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("use-single") / "report.html"
    config = BuildConfig(
        inputs=(photos,), output=target, k_max=5, labels="folders", single_file=True, lang="ja"
    )
    deliver(config, embedder=FakeEmbedder())
    return target


def report_of(site: Path) -> dict[str, Any]:
    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def strip_of(page: Page) -> list[dict[str, Any]]:
    page.wait_for_function(
        "() => document.querySelectorAll('dialog#preview [data-neighbour]').length > 0",
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(
        """() => [...document.querySelectorAll('dialog#preview [data-neighbour]')].map(b => ({
             index: Number(b.dataset.neighbour), title: b.title,
             src: b.querySelector('img').getAttribute('src')}))"""
    )


def check_neighbours(page: Page, report: dict[str, Any], thumbs: list[str]) -> None:
    page.locator("#grid img[data-index='4']").click()
    strip = strip_of(page)
    assert [n["index"] for n in strip] == report["neighbours"][4]
    assert len(strip) == 12
    assert [n["src"] for n in strip] == [thumbs[i] for i in report["neighbours"][4]]
    first = report["neighbour_similarity"][4][0]
    assert strip[0]["title"].endswith(f"{first:.2f}")
    assert report["images"][strip[0]["index"]]["path"] in strip[0]["title"]
    ringed = page.evaluate("() => document.getElementById('plot').data[3]")
    assert len(ringed["x"]) == 12
    step = point_step(report)  # positions travel as 16-bit steps (payload.POINT_STEPS)
    assert abs(ringed["x"][0] - report["points"][report["neighbours"][4][0]][0]) <= step
    # clicking a neighbour moves the preview to it, with its own neighbours
    target = report["neighbours"][4][3]
    page.locator(f"dialog#preview [data-neighbour='{target}']").click()
    dialog = page.locator("dialog#preview")
    page.wait_for_function(
        "i => document.getElementById('preview').dataset.index === String(i)",
        arg=target,
        timeout=TIMEOUT_MS,
    )
    assert dialog.is_visible()
    assert (
        page.locator("dialog#preview > img").get_attribute("alt")
        == report["images"][target]["path"]
    )
    page.wait_for_function(
        "n => [...document.querySelectorAll('dialog#preview [data-neighbour]')]"
        ".map(b => Number(b.dataset.neighbour)).join() === n.join()",
        arg=report["neighbours"][target],
        timeout=TIMEOUT_MS,
    )
    selected = page.evaluate("() => document.getElementById('plot').data[2]")
    assert abs(selected["x"][0] - report["points"][target][0]) <= step
    page.keyboard.press("Escape")  # closing the preview takes the rings away
    page.wait_for_function(
        "() => document.getElementById('plot').data[3].x.length === 0", timeout=TIMEOUT_MS
    )


def test_preview_shows_12_similar_images_and_moves_to_one(browser: Browser, site: Path) -> None:
    report = report_of(site)
    with open_page(browser, site / "index.html", fragment="k=3") as opened:
        page = opened.page
        assert page.evaluate("() => window.dinoclustNeighbours === undefined")  # not yet loaded
        check_neighbours(page, report, [image["thumb"] for image in report["images"]])
        added = "() => document.querySelectorAll('script[src=\"data/neighbours.js\"]').length"
        assert page.evaluate(added) == 1  # added by the first preview
        assert opened.errors == [] and opened.external == []


def test_similar_images_work_in_the_single_file(browser: Browser, site: Path, single: Path) -> None:
    report = report_of(site)  # same images and options: same neighbours
    with open_page(browser, single, fragment="k=3") as opened:
        page = opened.page
        thumbs = page.evaluate("() => window.dinoclust.data.images.map(i => i.thumb)")
        assert all(src.startswith("data:image/webp;base64,") for src in thumbs)
        check_neighbours(page, report, thumbs)
        assert opened.errors == [] and opened.external == []


def test_without_the_data_file_the_strip_says_so(browser: Browser, site: Path) -> None:
    with open_page(browser, site / "index.html", blocked="data/neighbours.js") as opened:
        page = opened.page
        page.locator("#grid img[data-index='0']").click()
        page.wait_for_function(
            "() => document.querySelector('#preview .neighbour-strip').textContent.length > 0",
            timeout=TIMEOUT_MS,
        )
        text = page.locator("#preview .neighbour-strip").text_content()
        assert text is not None and "data/neighbours.js" in text


def test_each_cluster_downloads_its_file_list(browser: Browser, site: Path, tmp_path: Path) -> None:
    report = report_of(site)
    clustering = report["clusterings"]["3"]
    with open_page(browser, site / "index.html", fragment="k=3") as opened:
        page = opened.page
        assert page.locator("[data-cluster-csv]").count() == 3
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.locator("#grid [data-cluster-csv='1']").click()
        download = info.value
        assert download.suggested_filename == "cluster_1_k3.csv"
        target = tmp_path / "c.csv"
        download.save_as(target)
        with target.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["path", "cluster", "distance_to_centre", "label"]
        members = [i for i, c in enumerate(clustering["labels"]) if c == 1]
        assert [row[0] for row in rows[1:]] == [report["images"][i]["path"] for i in members]
        assert {row[1] for row in rows[1:]} == {"1"}
        assert [float(row[2]) for row in rows[1:]] == [clustering["distances"][i] for i in members]
        assert [row[3] for row in rows[1:]] == [report["labels"][i] for i in members]
        assert opened.errors == []


def test_experiment_report_panel_shows_and_downloads_it_in_the_readers_language(
    browser: Browser, site: Path, single: Path, tmp_path: Path
) -> None:
    from generator.analysis.experiment import experiment_markdown
    from generator.report import Report

    report = report_of(site)
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        page.locator("#report-details summary").click()
        body = page.locator("#report-body")
        headings = body.locator("h4").all_text_contents()
        assert headings == [
            "1. Purpose",
            "2. Plan",
            "3. Method",
            "4. Results",
            "5. Discussion",
            "6. Conclusion",
        ]
        table = body.locator("table").first
        assert table.locator("thead th").first.text_content() == "Number of clusters"
        assert table.locator("tbody tr").count() == len(report["k_values"])
        assert body.locator("blockquote.report-prompt").count() == 3  # intro + the two prompts
        for lang, name in (("en", "report.md"), ("ja", None)):
            if lang == "ja":
                page.locator(".lang-switch button[data-lang=ja]").click()
                page.wait_for_function(
                    "() => document.getElementById('report-body').dataset.lang === 'ja'",
                    timeout=TIMEOUT_MS,
                )
                assert body.locator("h4").first.text_content() == "1. 目的"
            with page.expect_download(timeout=TIMEOUT_MS) as info:
                page.locator("#download-report").click()
            assert info.value.suggested_filename == "report.md"
            target = tmp_path / f"{lang}.md"
            info.value.save_as(target)
            got = target.read_text(encoding="utf-8")
            if name:
                assert got == (site / name).read_text(encoding="utf-8")
            assert got == experiment_markdown(Report.from_json(report), lang)
        assert opened.errors == []
    with open_page(browser, single) as opened:  # --lang ja, one file: the report is inside
        page = opened.page
        page.locator("#report-details summary").click()
        assert page.locator("#report-body h4").first.text_content() == "1. 目的"
        assert "不十分な分離" in (page.locator("#report-body table").first.text_content() or "")
        assert opened.errors == []
