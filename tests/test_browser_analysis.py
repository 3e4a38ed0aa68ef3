"""Issue 5 in real Chromium: metric charts and the label table follow the slider, the grid is
ordered by distance to the centre, the CSV download works offline under the page's CSP, and
known labels (user strings) stay text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.browser import TIMEOUT_MS, open_page, wait_for_k
from tests.helpers import COLOURS, FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

HOSTILE_LABEL = '<img src=x onerror="window.__pwned=1">'
LABELS = {"red": HOSTILE_LABEL, "green": "green & co", "blue": "blue"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser-analysis")
    photos = root / "photos"
    rows = ["path,label"]
    for name, (r, g, b) in COLOURS.items():
        for i in range(6):
            shade = 12 * i - 30
            make_image(
                photos / name / f"{name}_{i}.png",
                (r + shade, g + shade, b + shade),
                noise=4 + 9 * i,
                seed=i,
            )
            label = LABELS[name].replace('"', '""')
            rows.append(f'{name}/{name}_{i}.png,"{label}"')
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = BuildConfig(
        inputs=(photos,), output=root / "site", labels=str(root / "labels.csv"), k_max=8
    )
    build_site(config, embedder=FakeEmbedder())
    return root / "site"


def report_of(site: Path) -> dict[str, Any]:
    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def current_dots(page: Page) -> dict[str, str]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#metric-charts figure')].map(
             f => [f.dataset.metric,
                   (f.querySelector('circle.current') || {dataset: {}}).dataset.k]))"""
    )


def label_table(page: Page) -> list[list[str]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#label-table tbody tr')].map(
             tr => [...tr.children].map(c => c.textContent))"""
    )


def check_k(page: Page, report: dict[str, Any], k: int) -> None:
    wait_for_k(page, k)
    page.wait_for_function(
        "k => document.getElementById('label-table').dataset.k === String(k)", arg=k
    )
    metrics = ["inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "balance"]
    assert current_dots(page) == {m: str(k) for m in [*metrics, "purity", "ari", "nmi"]}
    assert page.locator("#metrics-table tr.current").get_attribute("data-k") == str(k)
    assert page.locator("#metrics-table tr.current").count() == 1
    clustering = report["clusterings"][str(k)]
    rows = label_table(page)
    assert [r[0] for r in rows] == report["label_names"]
    assert [[int(x) for x in r[1:-1]] for r in rows] == clustering["label_table"]
    assert sum(int(r[-1]) for r in rows) == len(report["images"])
    assert f"k = {k}: purity" in page.locator("#label-metrics").inner_text()


def test_metrics_and_label_table_follow_the_slider(browser: Browser, site: Path) -> None:
    report = report_of(site)
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        check_k(page, report, 2)
        page.locator("#k-slider").fill("5")
        check_k(page, report, 5)
        page.locator("#k-slider").fill("8")
        check_k(page, report, 8)
        assert page.locator("#sankey").get_attribute("data-from") == "7"
        page.locator("#k-slider").fill("4")
        check_k(page, report, 4)
        assert page.locator("#sankey").get_attribute("data-from") == "4"
        sankey = page.evaluate("() => document.getElementById('sankey').data[0].link.value")
        assert sum(sankey) == len(report["images"])
        suggested = report["suggested_k"]
        assert page.locator("#suggestion").get_attribute("data-k") == str(suggested)
        assert "highest mean silhouette" in page.locator("#suggestion").inner_text()
        assert page.locator("#k-slider").input_value() == "4"  # a suggestion moves nothing
        suggested_dots = page.locator("#metric-charts circle.suggested")
        assert {d.get_attribute("data-k") for d in suggested_dots.all()} == {str(suggested)}
        assert opened.errors == [] and opened.external == []


def test_grid_ordered_by_distance_with_typical_and_atypical(browser: Browser, site: Path) -> None:
    report = report_of(site)
    clustering = report["clusterings"]["3"]
    with open_page(browser, site / "index.html", fragment="k=3") as opened:
        page = opened.page
        wait_for_k(page, 3)
        groups = page.evaluate(
            """() => [...document.querySelectorAll('#grid > section[data-cluster]')].map(s =>
                 [...s.querySelectorAll('figure')].map(f => [
                   Number(f.querySelector('img').dataset.index), f.dataset.role || '',
                   f.querySelector('img').title]))"""
        )
        for members in groups:
            distances = [clustering["distances"][i] for i, _, _ in members]
            assert distances == sorted(distances)
            assert members[0][1] == "typical" and members[-1][1] == "atypical"
            for index, _, title in members:
                assert f"distance to centre: {clustering['distances'][index]:.3f}" in title
        assert opened.errors == []


def test_download_current_k_as_csv(browser: Browser, site: Path, tmp_path: Path) -> None:
    report = report_of(site)
    with open_page(browser, site / "index.html", fragment="k=4") as opened:
        page = opened.page
        wait_for_k(page, 4)
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.locator("#download-csv").click()
        download = info.value
        assert download.suggested_filename == "assignments_k4.csv"
        target = tmp_path / "a.csv"
        download.save_as(target)
        import csv

        rows = list(csv.reader(target.open(encoding="utf-8")))
        assert rows[0] == ["path", "cluster", "distance_to_centre", "label"]
        assert [r[0] for r in rows[1:]] == [i["path"] for i in report["images"]]
        assert [int(r[1]) for r in rows[1:]] == report["clusterings"]["4"]["labels"]
        assert [r[3] for r in rows[1:]] == report["labels"]
        assert opened.errors == [] and opened.external == []


def test_labels_stay_text_and_colour_the_points(browser: Browser, site: Path) -> None:
    report = report_of(site)
    assert HOSTILE_LABEL in report["labels"]
    with open_page(browser, site / "index.html") as opened:
        page = opened.page
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img:not([data-index])").count() == 0
        assert HOSTILE_LABEL in [r[0] for r in label_table(page)]
        page.locator("#colour-by").select_option("label")
        page.wait_for_function(
            "() => document.body.dataset.colourBy === 'label'"
            " && new Set(document.getElementById('plot').data[0].marker.color).size === 3",
            timeout=TIMEOUT_MS,
        )
        colours = page.evaluate("() => document.getElementById('plot').data[0].marker.color")
        by_label = dict(zip(report["labels"], colours, strict=True))
        assert all(by_label[label] == c for label, c in zip(report["labels"], colours, strict=True))
        names = page.locator("#plot-legend li").all_inner_texts()
        assert names == [
            '<img src=x onerror="window.__pwned=1"> (6)',
            "blue (6)",
            "green & co (6)",
            "Centres",
        ]
        assert page.evaluate("() => window.__pwned") is None
        assert opened.errors == []
