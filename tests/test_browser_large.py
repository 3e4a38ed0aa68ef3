"""The page at ~30k points: the plot draws the display sample and says so, and the slider,
hover, click-to-grid and "Show more" still work, with no console errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser import TIMEOUT_MS, open_page, wait_for_k
from tests.largesite import large_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from generator.analysis.analyse import Analysis

N = 30_000
M = 20_000
EMIT = """([name, j]) => document.getElementById('plot').emit(
    name, {points: [{curveNumber: 0, pointNumber: j}]})"""


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("large") / "site"
    large_site(site, N, k_max=6, display_points=M)
    return site


def test_30k_points_draw_the_sample_and_stay_usable(browser: Browser, large: Path) -> None:
    report = json.loads((large / "report.json").read_text(encoding="utf-8"))
    sample = report["display_sample"]
    assert len(sample) == M and len(report["images"]) == N
    with open_page(browser, large / "index.html") as opened:
        page = opened.page
        wait_for_k(page, 2)
        drawn = page.evaluate("() => document.getElementById('plot').data[0].x.length")
        assert drawn == M
        note = page.locator("#plot-sample")
        assert note.is_visible()
        assert "Showing 20,000 of 30,000 points" in note.inner_text()
        # sizes count every image, not the sample
        sizes = [
            int(s)
            for s in page.locator("#sizes li").evaluate_all("rows => rows.map(r => r.dataset.size)")
        ]
        assert sizes == report["clusterings"]["2"]["sizes"] and sum(sizes) == N

        page.locator("#k-slider").fill("5")
        wait_for_k(page, 5)
        labels = report["clusterings"]["5"]["labels"]
        colours = page.evaluate("() => document.getElementById('plot').data[0].marker.color")
        assert colours == [labels[i] % 10 for i in sample]  # numeric ids, one per drawn point
        legend = page.locator("#plot-legend li").all_inner_texts()
        assert legend[:5] == [
            f"Cluster {c} ({n:,})" for c, n in enumerate(report["clusterings"]["5"]["sizes"])
        ]

        # hover and click map a drawn point back to its image
        j = M - 1
        page.evaluate(EMIT, ["plotly_hover", j])
        assert page.locator(".hover-thumb img").get_attribute("data-index") == str(sample[j])
        page.evaluate(EMIT, ["plotly_click", j])
        figure = page.locator(f"#grid figure.highlight img[data-index='{sample[j]}']")
        figure.wait_for(timeout=TIMEOUT_MS)
        shown = page.locator("#grid figure").count()
        assert shown <= 5 * 60 + 240  # paged to the image, not every figure before it

        # an image that is not drawn is still in the grid, through "Show more"
        distances = report["clusterings"]["5"]["distances"]
        drawn_set = set(sample)
        cluster = labels[sample[0]]
        members = sorted(
            (i for i in range(N) if labels[i] == cluster), key=lambda i: (distances[i], i)
        )
        hidden = next(i for r, i in enumerate(members) if r >= 60 and i not in drawn_set)
        assert members.index(hidden) < 60 + 240
        section = page.locator(f"#grid > section[data-cluster='{cluster}']")
        if section.locator("button.show-first").is_visible():
            section.locator("button.show-first").click()
        assert section.locator(f"img[data-index='{hidden}']").count() == 0
        section.locator("button.show-more").click()
        assert section.locator(f"img[data-index='{hidden}']").count() == 1
        assert opened.errors == []


def test_sampled_report_sizes_count_every_row(browser: Browser, tmp_path: Path) -> None:
    """A streamed report (above a million rows) draws its sample, but the size panel shows
    sizes_all, over every row, and says that the rest is the sample's."""
    from generator.site.payload import SampledTotals

    def totals(analysis: Analysis) -> SampledTotals:
        sizes = {k: [1_000 * s for s in c.sizes] for k, c in analysis.clusterings.items()}
        return SampledTotals(3_000_000, 0, sizes)

    site = tmp_path / "site"
    report = large_site(site, 3_000, k_max=3, display_points=1_000, sampled=totals)
    with open_page(browser, site / "index.html", fragment="k=3") as opened:
        page = opened.page
        wait_for_k(page, 3)
        bars = page.locator("#sizes li").evaluate_all("rows => rows.map(r => r.dataset.size)")
        assert [int(b) for b in bars] == list(report.clustering(3).sizes_all or ())
        text = page.locator("#sizes-text").inner_text()
        assert "= 3,000,000 images. These sizes count every row" in text
        assert "the sample of 3,000" in text
        # the header counts the collection, not the sample; bars and legend say 1,000s as such
        assert page.locator("header .meta span").first.inner_text() == "3,000,000 images"
        first = (report.clustering(3).sizes_all or ())[0]
        assert page.locator("#sizes .bar-value").first.inner_text().startswith(f"{first:,} (")
        # so do the strips' headings; their "+n more" counts the sample's images the grid holds
        strips = page.locator("#strips li.strip").evaluate_all("s => s.map(i => i.dataset.size)")
        assert [int(s) for s in strips] == list(report.clustering(3).sizes_all or ())
        heading = page.locator("#strips li.strip .strip-name").first.inner_text()
        assert f"{first:,}" in heading
        more = page.locator("#strips li.strip .strip-more").first.inner_text()
        assert more == f"+{report.clustering(3).sizes[0] - 16:,} more"
        drawn = len(report.display_sample)
        assert (
            page.locator("#plot-sample")
            .inner_text()
            .startswith(f"Showing {drawn:,} of the 3,000 sampled images (3,000,000 in all)")
        )
        assert opened.errors == []
