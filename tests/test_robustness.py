"""Hostile folders end to end: unreadable and duplicate files, a killed build, no leaks."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.helpers import FakeEmbedder, make_colour_folder, make_image


def build(photos: Path, out: Path, cache: Path | None = None, **options):
    config = BuildConfig(inputs=(photos,), output=out, cache_dir=cache, **options)
    return build_site(config, embedder=FakeEmbedder())


@pytest.mark.parametrize("cached", [False, True])
def test_unreadable_file_is_skipped_with_the_reason(colour_folder, tmp_path, cached) -> None:
    os.symlink(tmp_path / "gone.png", colour_folder / "dangling.png")
    result = build(colour_folder, tmp_path / "site", tmp_path / "cache" if cached else None)
    assert result.images == 12
    assert [(s.rel, s.reason) for s in result.skipped] == [
        ("dangling.png", "cannot read file (No such file or directory)")
    ]


def test_byte_identical_duplicates_are_both_shown_sharing_one_thumbnail(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    (photos / "copy.png").write_bytes((photos / "red" / "red_0.png").read_bytes())
    result = build(photos, tmp_path / "site")
    by_path = {i["path"]: i for i in result.report["images"]}
    assert by_path["copy.png"]["thumb"] == by_path["red/red_0.png"]["thumb"]
    assert len(list((tmp_path / "site" / "thumbs").iterdir())) == 6
    assert result.images == 7


def test_nothing_personal_reaches_the_site(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    build(photos, tmp_path / "site", title="trip")
    host = socket.gethostname().encode()
    user_dir = f"/{getpass.getuser()}/".encode()
    for path in (tmp_path / "site").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert str(tmp_path).encode() not in data, path
            if path.suffix in (".html", ".json", ".csv"):  # ours; vendored Plotly is verbatim
                assert host not in data, path
                assert user_dir not in data, path


SLOW_BUILD = """
import sys, time
import generator.model.embed as model
from tests.helpers import FakeEmbedder

class Slow(FakeEmbedder):
    def __call__(self, pixels):
        time.sleep(0.5)
        return super().__call__(pixels)

model.load_embedder = lambda *a, **k: Slow()
model.plan_model = lambda *a, **k: Slow.info
from generator.cli import main
sys.argv = ["dinoclust", "build", sys.argv[1], "-o", sys.argv[2], "--batch-size", "1", "-q"]
main()
"""


def test_a_killed_build_keeps_the_old_site_and_the_next_one_cleans_up(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=4)
    site = tmp_path / "site"
    build(photos, site, title="previous")
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(photos), str(site)], cwd=root)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".site.dinoclust-tmp-*/thumbs/*")):
        assert proc.poll() is None and time.monotonic() < deadline, "build never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert len(list(tmp_path.glob(".site.dinoclust-tmp-*"))) == 1  # the killed build's leftover
    build(photos, site, title="next")
    assert list(tmp_path.glob(".site.dinoclust-*")) == []
    assert json.loads((site / "report.json").read_text())["title"] == "next"


def test_japanese_and_hostile_names_survive_into_report_and_csv(tmp_path) -> None:
    photos = tmp_path / "写真"
    names = ["猫 の 写真.png", 'a&b "quoted".png', "<script>alert(1)</script>.png", "🐱.png"]
    for i, name in enumerate(names):
        make_image(photos / name, (40 * i, 100, 200 - 40 * i))
    result = build(photos, tmp_path / "site")
    assert sorted(i["path"] for i in result.report["images"]) == sorted(names)
    csv_text = (tmp_path / "site" / "assignments.csv").read_text(encoding="utf-8")
    assert "猫 の 写真.png" in csv_text and '"a&b ""quoted"".png"' in csv_text


@pytest.mark.skipif(os.name == "nt", reason="Windows file names are Unicode already")
def test_a_folder_from_an_old_windows_zip_builds_with_readable_names(tmp_path) -> None:
    """Names in Shift-JIS and Latin-1 bytes (no UTF-8) once crashed the build writing
    report.json, and the cache's memo of content hashes; now every image is used, shown under
    a name UTF-8 can hold, and a rebuild finds each in the cache."""
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    for raw in ("写真（１）.png".encode("cp932"), "café.png".encode("latin-1")):
        make_image(photos / os.fsdecode(raw), (200, 200, 40), noise=5)
    result = build(photos, tmp_path / "site", tmp_path / "cache")
    assert result.images == 8 and result.skipped == () and result.embedded == 8
    again = build(photos, tmp_path / "site", tmp_path / "cache")
    assert again.embedded == 0 and again.report == result.report
    paths = {image["path"] for image in result.report["images"]}
    assert {"写真（１）.png", "caf\\xe9.png"} <= paths
    assert json.loads((tmp_path / "site" / "report.json").read_text("utf-8"))["images"]
    csv_text = (tmp_path / "site" / "assignments.csv").read_text("utf-8")
    assert "写真（１）.png," in csv_text and "caf\\xe9.png," in csv_text
