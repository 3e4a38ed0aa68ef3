"""The output folder: replaced only when ours, swapped in atomically, leftovers cleaned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator.errors import InputError, OutputError
from generator.site.sitedir import (
    MARKER,
    check_output,
    discard,
    open_staging,
    publish,
    staging_exclusions,
)


def ours(folder: Path, *files: str) -> Path:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("x")
    for name in files:
        (folder / name).write_text(name)
    return folder


def test_new_empty_and_marked_folders_are_accepted(tmp_path) -> None:
    check_output(tmp_path / "new", [])
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", [])
    check_output(ours(tmp_path / "site", "index.html"), [])


def test_foreign_folder_file_and_symlink_are_refused(tmp_path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match=r"docs already exists, is not empty and was not made"):
        check_output(tmp_path / "docs", [])
    (tmp_path / "file.html").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output(tmp_path / "file.html", [])
    os.symlink(tmp_path / "docs", tmp_path / "link")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output(tmp_path / "link", [])


def test_inputs_inside_or_equal_to_the_output_are_refused(tmp_path) -> None:
    with pytest.raises(InputError, match="inside the output folder"):
        check_output(tmp_path / "out", [tmp_path / "out" / "photos"])
    with pytest.raises(InputError, match="inside the output folder"):
        check_output(tmp_path / "out", [tmp_path / "out"])
    check_output(tmp_path / "photos" / "site", [tmp_path / "photos"])  # the other way is fine


def test_publish_swaps_in_and_removes_only_the_old_site(tmp_path) -> None:
    site = ours(tmp_path / "site", "old.txt")
    staging = open_staging(site)
    assert staging.parent == tmp_path and staging.name.startswith(".site.dinoclust-tmp-")
    assert (staging / MARKER).is_file()
    (staging / "index.html").write_text("new")
    publish(staging, site)
    assert sorted(p.name for p in site.iterdir()) == [MARKER, "index.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_staging_is_readable_like_a_normal_folder(tmp_path) -> None:
    staging = open_staging(tmp_path / "site")
    mask = os.umask(0)
    os.umask(mask)
    assert staging.stat().st_mode & 0o777 == 0o777 & ~mask


def test_leftovers_of_a_killed_build_are_cleaned_up(tmp_path) -> None:
    leftover = ours(tmp_path / ".site.dinoclust-tmp-abc123", "half.html")
    unrelated = tmp_path / ".site.dinoclust-tmp-not-ours"  # no marker: not ours, kept
    unrelated.mkdir()
    assert leftover in staging_exclusions(tmp_path / "site")
    staging = open_staging(tmp_path / "site")
    assert not leftover.exists()
    assert unrelated.exists()
    discard(staging)
    assert not staging.exists()


def test_a_site_retired_mid_swap_is_restored(tmp_path) -> None:
    """Killed between the two renames of publish(): the old site waits in a retired folder."""
    retired = ours(tmp_path / ".site.dinoclust-old-xyz")
    ours(retired / "site", "index.html")
    staging = open_staging(tmp_path / "site")
    assert (tmp_path / "site" / "index.html").read_text() == "index.html"
    assert not retired.exists()
    discard(staging)
