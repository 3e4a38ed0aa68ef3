"""Issue 13 (items 1-3) and issue 15 (items 2, 3, 9): every path found is accounted for, exports
are safe to open in a spreadsheet, Unicode names, labels from several folders, same-name inputs,
and an incomplete labels CSV reported before any image is embedded."""

from __future__ import annotations

import csv
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.ingest.discover import discover
from generator.site.exports import spreadsheet_safe
from tests.helpers import FakeEmbedder, make_image


@pytest.fixture
def fake_model(monkeypatch) -> None:
    """The CLI builds with the fake embedder (no torch)."""

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)


def report_of(site: Path) -> dict[str, Any]:
    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def rows_of(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8", newline="")))


def invoke(*args: str):
    return CliRunner().invoke(cli, ["build", *args])


# --- item 1: aliases ------------------------------------------------------------------------


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """4 images, 2 unusable files, and 5 more paths to the same files: a symlinked file in
    another folder, a hard link, a symlinked folder (3 paths again) and a loop (not followed)."""
    root = tmp_path / "photos"
    make_image(root / "animals" / "cat.png", (200, 40, 40))
    make_image(root / "animals" / "dog.png", (40, 200, 40))
    make_image(root / "food" / "apple.png", (40, 40, 200))
    make_image(root / "food" / "pear.png", (200, 200, 40))
    os.link(root / "animals" / "dog.png", root / "animals" / "dog_hard.png")
    (root / "food" / "cat_link.png").symlink_to("../animals/cat.png")
    (root / "mirror").symlink_to("food", target_is_directory=True)
    (root / "animals" / "loop").symlink_to("..", target_is_directory=True)
    (root / "bad.png").write_bytes(b"not a png")
    (root / "broken.png").symlink_to("nowhere.png")
    return root


ALIASES = [
    {"path": "animals/dog_hard.png", "same_as": "animals/dog.png"},
    {"path": "food/cat_link.png", "same_as": "animals/cat.png"},
    {"path": "mirror/apple.png", "same_as": "food/apple.png"},
    {"path": "mirror/cat_link.png", "same_as": "animals/cat.png"},
    {"path": "mirror/pear.png", "same_as": "food/pear.png"},
]
PATHS_FOUND = 11  # counted by hand: every image name the walk meets, the loop not followed


def test_every_path_found_is_an_image_a_skipped_file_or_an_alias(linked_tree, tmp_path) -> None:
    found = discover([linked_tree])
    assert [i.rel for i in found.images] == [
        "animals/cat.png",
        "animals/dog.png",
        "bad.png",
        "broken.png",
        "food/apple.png",
        "food/pear.png",
    ]
    assert [{"path": a.rel, "same_as": a.same_as} for a in found.aliases] == ALIASES
    assert found.paths_found == PATHS_FOUND

    site = tmp_path / "site"
    result = build_site(BuildConfig((linked_tree,), site, k_max=3), embedder=FakeEmbedder())
    report = report_of(site)
    assert report["aliases"] == ALIASES
    assert [s["path"] for s in report["skipped"]] == ["bad.png", "broken.png"]
    assert len(report["images"]) == 4
    assert len(report["images"]) + len(report["skipped"]) + len(report["aliases"]) == PATHS_FOUND
    assert result.aliases == found.aliases

    page = (site / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r"<li><code>([^<]+)</code>: .*?<code>([^<]+)</code></li>", page)
    assert listed == [(a["path"], a["same_as"]) for a in ALIASES]
    assert '<a href="#aliases"><span data-i18n="aliases_n"' in page
    assert ">5 links to images already included</span>" in page
    assert '<details class="aliases" open>' in page  # short: unfolded


def test_a_long_alias_list_is_folded(tmp_path) -> None:
    root = tmp_path / "photos"
    make_image(root / "a.png")
    make_image(root / "b.png", (10, 10, 10))
    for i in range(1234):
        (root / f"link{i:04d}.png").symlink_to("a.png")
    site = tmp_path / "site"
    build_site(BuildConfig((root,), site, k_max=2), embedder=FakeEmbedder())
    page = (site / "index.html").read_text(encoding="utf-8")
    assert '<details class="aliases">' in page
    assert ">1,234 links to images already included</span>" in page
    assert len(report_of(site)["aliases"]) == 1234


def test_the_summary_counts_the_links(linked_tree, tmp_path, fake_model) -> None:
    result = invoke(str(linked_tree), "-o", str(tmp_path / "site"), "--k-max", "3")
    assert result.exit_code == 0, result.output
    assert (
        "from 4 images (2 skipped, 5 links to images already included, 4 newly embedded) in "
        in result.stderr
    )


def test_labels_of_an_image_in_several_folders_follow_its_first_path(linked_tree, tmp_path) -> None:
    site = tmp_path / "site"
    config = BuildConfig((linked_tree,), site, k_max=3, labels="folders")
    build_site(config, embedder=FakeEmbedder())
    report = report_of(site)
    labels = dict(zip([i["path"] for i in report["images"]], report["labels"], strict=True))
    # cat is also food/cat_link.png and mirror/cat_link.png; apple and pear are also in mirror/
    assert labels == {
        "animals/cat.png": "animals",
        "animals/dog.png": "animals",
        "food/apple.png": "food",
        "food/pear.png": "food",
    }
    note = {"key": "note_labels_mixed", "args": {"n": "3"}}
    assert note in report["notes_i18n"]
    text = (
        "3 image(s) are reached through paths with different labels; each takes the label of "
        "its first path in sorted order."
    )
    assert text in report["notes"]
    assert text in (site / "index.html").read_text(encoding="utf-8")


# --- item 2: CSV injection ------------------------------------------------------------------

HOSTILE_NAMES = ["=HYPERLINK(1).png", "+1.png", "-2.png", "@SUM(1).png", "\tt.png", "\rr.png"]
HOSTILE_LABELS = ["=1+1", "+cmd", "-x", "@A1", "\tlabel"]


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (-0.25, -0.25),  # a number stays a number
        (3, 3),
    ],
)
def test_a_cell_is_neutralised_only_when_it_is_text_starting_with_a_formula(value, safe):
    assert spreadsheet_safe(value) == safe


@pytest.fixture
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    photos = root / "photos"
    lines = ["path,label"]
    for i, name in enumerate(HOSTILE_NAMES):
        make_image(photos / name, (30 * i, 200 - 30 * i, 90), noise=10, seed=i)
        label = HOSTILE_LABELS[i % len(HOSTILE_LABELS)].replace('"', '""')
        lines.append(f'"{name}","{label}"')
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = BuildConfig((photos,), root / "site", k_max=3, labels=str(root / "labels.csv"))
    build_site(config, embedder=FakeEmbedder())
    return root / "site"


def test_every_csv_written_is_safe_to_open_and_report_json_keeps_the_names(hostile_site) -> None:
    report = report_of(hostile_site)
    assert sorted(i["path"] for i in report["images"]) == sorted(HOSTILE_NAMES)
    assert set(report["label_names"]) == set(HOSTILE_LABELS)
    paths = [row[0] for row in rows_of(hostile_site / "assignments.csv")[1:]]
    assert paths == ["'" + i["path"] for i in report["images"]]
    for k in report["k_values"]:
        table = rows_of(hostile_site / "tables" / f"labels_k{k}.csv")
        assert [row[0] for row in table[1:-1]] == ["'" + n for n in report["label_names"]]
        assert table[-1][0] == "total"
    metrics = rows_of(hostile_site / "metrics.csv")
    assert metrics[0][0] == "k" and all(not cell.startswith("'") for r in metrics for cell in r)
    page = (hostile_site / "index.html").read_text(encoding="utf-8")
    assert "'=HYPERLINK(1).png" not in page  # the page shows the exact name


@pytest.mark.browser
def test_the_csv_the_page_makes_is_safe_too(browser, hostile_site, tmp_path) -> None:
    from tests.browser import TIMEOUT_MS, open_page

    report = report_of(hostile_site)
    with open_page(browser, hostile_site / "index.html") as opened:
        with opened.page.expect_download(timeout=TIMEOUT_MS) as info:
            opened.page.locator("#download-csv").click()
        info.value.save_as(tmp_path / "a.csv")
        assert opened.errors == []
    rows = rows_of(tmp_path / "a.csv")
    assert [r[0] for r in rows[1:]] == ["'" + i["path"] for i in report["images"]]
    assert [r[3] for r in rows[1:]] == ["'" + label for label in report["labels"]]
    assert all(not r[2].startswith("'") and float(r[2]) >= 0 for r in rows[1:])


# --- item 3: Unicode names ------------------------------------------------------------------


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_nfd_names_on_disk_sort_and_match_in_nfc_and_are_opened_by_their_own_name(
    tmp_path,
) -> None:
    photos = tmp_path / "photos"
    make_image(photos / nfd("été") / nfd("café.png"), (200, 30, 30))  # as macOS writes them
    make_image(photos / "f.png", (30, 200, 30))
    make_image(photos / "e.png", (30, 30, 200))
    labels = tmp_path / "labels.csv"
    labels.write_text("été/café.png,drink\nf.png,letter\ne.png,letter\n", encoding="utf-8")
    site = tmp_path / "site"
    config = BuildConfig((photos,), site, k_max=2, labels=str(labels))
    result = build_site(config, embedder=FakeEmbedder())
    report = report_of(site)
    # in NFC, é sorts after f (unlike the decomposed e + accent)
    assert [i["path"] for i in report["images"]] == ["e.png", "f.png", "été/café.png"]
    assert report["labels"] == ["letter", "letter", "drink"]
    assert result.skipped == ()  # the NFD file was found and decoded under its own name


def test_two_files_differing_only_in_normalisation_are_both_kept(tmp_path, caplog) -> None:
    photos = tmp_path / "photos"
    composed, decomposed = "caf\u00e9.png", "cafe\u0301.png"
    make_image(photos / composed, (200, 30, 30))
    make_image(photos / decomposed, (30, 200, 30))
    site = tmp_path / "site"
    build_site(BuildConfig((photos,), site, k_max=2), embedder=FakeEmbedder())
    report = report_of(site)
    assert [i["path"] for i in report["images"]] == [decomposed, composed]
    assert len({i["thumb"] for i in report["images"]}) == 2
    assert (
        "café.png: 2 files have names that differ only in Unicode normalisation; "
        "each keeps its own name" in caplog.text
    )


# --- issue 15: labels from several folders, same-name inputs, incomplete CSV early ----------


def test_labels_from_several_input_folders(tmp_path, fake_model) -> None:
    tux = tmp_path / "tux"
    make_image(tux / "animals" / "cat.png", (200, 30, 30))
    make_image(tux / "animals" / "birds" / "owl.png", (200, 60, 30))
    make_image(tux / "food" / "apple.png", (30, 200, 30))
    make_image(tux / "food" / "pear.png", (30, 30, 200))
    site = tmp_path / "site"
    args = [str(tux / "animals"), str(tux / "food"), "-o", str(site), "--labels", "folders"]
    result = invoke(*args, "--k-max", "2")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    report = report_of(site)
    assert [i["path"] for i in report["images"]] == [
        "animals/birds/owl.png",
        "animals/cat.png",
        "food/apple.png",
        "food/pear.png",
    ]
    assert report["labels"] == ["birds", "animals", "food", "food"]


def test_a_single_label_is_warned_about(tmp_path, fake_model) -> None:
    photos = tmp_path / "photos"
    make_image(photos / "a.png", (200, 30, 30))
    make_image(photos / "b.png", (30, 200, 30))
    result = invoke(str(photos), "-o", str(tmp_path / "site"), "--labels", "folders")
    assert result.exit_code == 0, result.output
    assert (
        "warning: --labels folders: every image has the same label '(top level)', so purity, "
        "ARI and NMI say nothing. Put the images in one sub-folder per label, or give a CSV.\n"
        in result.stderr
    )


def test_same_name_inputs_are_told_apart_by_their_parent(tmp_path, fake_model) -> None:
    for trip in ("trip1", "trip2"):
        make_image(tmp_path / trip / "photos" / "IMG_0000.png", (200, 30, 30))
        make_image(tmp_path / trip / "photos" / "IMG_0001.png", (30, 30, 200))
    site = tmp_path / "site"
    inputs = [str(tmp_path / "trip1" / "photos"), str(tmp_path / "trip2" / "photos")]
    result = invoke(*inputs, "-o", str(site), "--labels", "folders")
    assert result.exit_code == 0, result.output
    report = report_of(site)
    assert [i["path"] for i in report["images"]] == [
        "trip1/photos/IMG_0000.png",
        "trip1/photos/IMG_0001.png",
        "trip2/photos/IMG_0000.png",
        "trip2/photos/IMG_0001.png",
    ]
    assert report["labels"] == ["trip1/photos"] * 2 + ["trip2/photos"] * 2


def test_an_incomplete_labels_csv_is_reported_before_any_image_is_embedded(
    tmp_path, monkeypatch
) -> None:

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was planned before the labels were checked")

    monkeypatch.setattr("generator.model.embed.plan_model", no_model)
    photos = tmp_path / "photos"
    make_image(photos / "a.png")
    make_image(photos / "b" / "x.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("a.png,cat\n", encoding="utf-8")
    site = tmp_path / "site"
    result = invoke(str(photos), "-o", str(site), "--labels", str(labels))
    assert result.exit_code == 1, result.output
    assert result.output == (
        "Error: --labels labels.csv: 1 image(s) have no row, first b/x.png. Add a path,label "
        "row for every image (paths as listed on the page).\n"
    )
    assert not site.exists()
