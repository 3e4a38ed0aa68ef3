"""Issue 24, item 5: one CSV writer, one guard. Every CSV the product emits (metrics.csv,
assignments.csv, the label tables, sort's clusters.csv, and the page's own downloads) guards its
cells by one rule, which the Python guard and the page's guard are both tested on
(tests/csv_guard_cases.json); one hostile file name and one hostile label go through every CSV,
in Python and in a real browser."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from generator.commands.build import build_site
from generator.commands.sort import SortConfig, sort_collection
from generator.config import BuildConfig
from generator.site.exports import spreadsheet_safe
from tests.helpers import FakeEmbedder, make_image

CASES = json.loads((Path(__file__).parent / "csv_guard_cases.json").read_text(encoding="utf-8"))
HOSTILE_NAME = '=HYPERLINK("x","y"),\r.png'
HOSTILE_LABEL = "@SUM(1+1)\r-x"
NAMES = [HOSTILE_NAME, "a.png", "b.png", "c.png", "d.png", "e.png"]


def rows_of(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize(("cell", "guarded"), CASES["cases"])
def test_the_python_guard_follows_the_shared_cases(cell, guarded) -> None:
    assert spreadsheet_safe(cell) == guarded


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site and a sorted folder of six images, one of them named HOSTILE_NAME and labelled
    HOSTILE_LABEL by a labels CSV."""
    root = tmp_path_factory.mktemp("csvguard")
    photos = root / "photos"
    lines = ["path,label"]
    for i, name in enumerate(NAMES):
        make_image(photos / name, (40 * i, 200 - 30 * i, 90), noise=10, seed=i)
        label = HOSTILE_LABEL if i < 3 else "plain"
        lines.append(",".join('"' + cell.replace('"', '""') + '"' for cell in (name, label)))
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    labels = str(root / "labels.csv")
    build_site(
        BuildConfig((photos,), root / "site", k_max=3, labels=labels), embedder=FakeEmbedder()
    )
    config = SortConfig(BuildConfig((photos,), root / "sorted", k_max=3, labels=labels), k=2)
    sort_collection(config, embedder=FakeEmbedder())
    return root


def guarded_rows(rows: list[list[str]]) -> None:
    """The hostile name and label appear in `rows` only guarded, and every row parses whole."""
    cells = [cell for row in rows for cell in row]
    assert "'" + HOSTILE_NAME in cells
    assert HOSTILE_NAME not in cells
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


def test_one_hostile_name_and_label_through_every_csv_the_build_and_sort_write(hostile) -> None:
    site = hostile / "site"
    assignments = rows_of(site / "assignments.csv")
    guarded_rows(assignments)  # path, then the cluster of each k: no label column
    assert len(assignments) == 1 + len(NAMES)  # the lone CR in the name made no extra row
    for table in sorted((site / "tables").glob("labels_k*.csv")):
        rows = rows_of(table)
        assert [row[0] for row in rows[1:-1]] == ["'" + HOSTILE_LABEL, "plain"]
        assert not any(c.startswith(("=", "+", "-", "@")) for row in rows for c in row)
    metrics = rows_of(site / "metrics.csv")
    assert metrics[0][0] == "k" and len({len(row) for row in metrics}) == 1
    clusters = rows_of(hostile / "sorted" / "clusters.csv")
    guarded_rows(clusters)
    assert len(clusters) == 1 + len(NAMES)
    assert "'" + HOSTILE_LABEL in {row[3] for row in clusters[1:]}


@pytest.mark.browser
def test_the_page_guard_follows_the_shared_cases(browser, hostile) -> None:
    from tests.browser import open_page

    with open_page(browser, hostile / "site" / "index.html") as opened:
        got = opened.page.evaluate(
            "cases => cases.map(c => window.dinoclust.util.spreadsheetSafe(c[0]))", CASES["cases"]
        )
        assert opened.errors == []
    assert got == [guarded for _, guarded in CASES["cases"]]


@pytest.mark.browser
def test_one_hostile_name_and_label_through_every_csv_the_page_makes(
    browser, hostile, tmp_path
) -> None:
    from tests.browser import TIMEOUT_MS, open_page

    report = json.loads((hostile / "site" / "report.json").read_text(encoding="utf-8"))
    labels = report["clusterings"]["3"]["labels"]
    cluster = labels[[i["path"] for i in report["images"]].index(HOSTILE_NAME)]
    with open_page(browser, hostile / "site" / "index.html", fragment="k=3") as opened:
        page = opened.page
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.locator("#download-csv").click()
        info.value.save_as(tmp_path / "assignments.csv")
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.locator(f"#grid [data-cluster-csv='{cluster}']").click()
        info.value.save_as(tmp_path / "cluster.csv")
        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.locator("#download-report").click()
        info.value.save_as(tmp_path / "report.md")
        assert opened.errors == []
    for name in ("assignments.csv", "cluster.csv"):
        rows = rows_of(tmp_path / name)
        guarded_rows(rows)
        assert "'" + HOSTILE_LABEL in {row[3] for row in rows[1:]}
    assert len(rows_of(tmp_path / "assignments.csv")) == 1 + len(NAMES)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == (
        hostile / "site" / "report.md"
    ).read_text(encoding="utf-8")
