"""Decode workers: processes that decode, hash and make thumbnails; any count, the same site."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from generator.cli import cli
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.engines import local
from generator.ingest.imaging import DecodeError, decode
from generator.storage.cache import DB_NAME
from tests.helpers import FakeEmbedder, make_colour_folder, make_image

REAL_DECODE = local._try_decode


class CrashOn:
    """A decoder that kills its worker process on one file, as a crash in a C decoder would
    (it runs in the workers, so it is a picklable class of an importable module)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, path: Path, thumb_size: int, preview_size: int = 0):
        if self.name in (path.name, "*"):
            os._exit(3)
        return REAL_DECODE(path, thumb_size, preview_size)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Clip art, a rotated JPEG with EXIF, a large one (previews) and a broken file."""
    folder = make_colour_folder(tmp_path / "photos", per_colour=4)
    image = Image.new("RGB", (900, 600), (30, 140, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the size is reported upright
    image.save(folder / "blue" / "turned.jpg", exif=exif, quality=90)
    make_image(folder / "green" / "big.png", (20, 200, 20), size=(1600, 1200), noise=20)
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    return folder


def test_one_and_two_workers_give_byte_identical_sites(photos, tmp_path) -> None:
    sites = {}
    for workers in (1, 2):
        out = tmp_path / f"site{workers}"
        config = BuildConfig(inputs=(photos,), output=out, workers=workers, batch_size=4)
        result = build_site(config, embedder=FakeEmbedder())
        assert (result.images, [s.rel for s in result.skipped]) == (14, ["red/broken.png"])
        sites[workers] = tree(out)
    assert sites[1] == sites[2]
    assert any(name.startswith("previews/") for name in sites[1])


def test_a_crashing_decoder_costs_only_its_file(photos, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(local, "_try_decode", CrashOn("green_2.png"))
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", workers=2, batch_size=4)
    result = build_site(config, embedder=FakeEmbedder())
    skipped = {s.rel: s.reason for s in result.skipped}
    assert sorted(skipped) == ["green/green_2.png", "red/broken.png"]
    assert skipped["green/green_2.png"] == "the image decoder crashed on this file"
    with pytest.raises(DecodeError) as raised:  # a reason comes back from a worker unchanged
        decode(photos / "red" / "broken.png", 224, 192)
    assert skipped["red/broken.png"] == str(raised.value) == "not an image that Pillow can read"
    assert result.images == 13  # every other file, those in flight at the crash included
    shown = [s["path"] for s in result.report["skipped"]]
    assert "green/green_2.png" in shown


def test_tasks_of_several_images_give_the_same_site(photos, tmp_path, monkeypatch) -> None:
    """A large build sends each worker several files at once (task_size): the site is the one
    a task per file makes, a file decided before sending (its format not installed) keeps its
    place in its task, and a crash costs only its file, the other files in flight retried."""
    monkeypatch.setitem(sys.modules, "rawpy", None)
    (photos / "green" / "shot.CR2").write_bytes(b"camera RAW")
    assert local.task_size(len(list(photos.rglob("*.*"))), 2) == 1  # 16 files: one a task
    builds = {}
    for name, size in (("one", None), ("four", 4)):
        if size is not None:
            monkeypatch.setattr(local, "task_size", lambda count, workers: 4)
        config = BuildConfig(inputs=(photos,), output=tmp_path / name, workers=2, batch_size=4)
        result = build_site(config, embedder=FakeEmbedder())
        builds[name] = (result.images, [s.rel for s in result.skipped])
    assert builds["one"] == builds["four"] == (14, ["green/shot.CR2", "red/broken.png"])
    assert tree(tmp_path / "one") == tree(tmp_path / "four")
    monkeypatch.setattr(local, "_try_decode", CrashOn("green_2.png"))
    config = BuildConfig(inputs=(photos,), output=tmp_path / "crash", workers=2, batch_size=4)
    result = build_site(config, embedder=FakeEmbedder())
    skipped = {s.rel: s.reason for s in result.skipped}
    assert sorted(skipped) == ["green/green_2.png", "green/shot.CR2", "red/broken.png"]
    assert skipped["green/green_2.png"] == "the image decoder crashed on this file"
    assert result.images == 13


def test_a_cold_build_hashes_in_the_workers_and_remembers(photos, tmp_path, monkeypatch) -> None:
    """No serial hashing pass before decoding: the main process never hashes a file, and the
    hashes the workers found make the warm rebuild a look-up."""
    import generator.engines.decode as decode

    def no_hashing_here(path: Path) -> str:
        raise AssertionError(f"{path} was hashed in the main process")

    monkeypatch.setattr(decode, "file_sha256", no_hashing_here)  # the decode workers' own copy
    (photos / "red" / "broken.png").unlink()  # a file never hashed would be decoded again
    cache = tmp_path / "cache"
    config = BuildConfig(inputs=(photos,), output=tmp_path / "a", cache_dir=cache, workers=2)
    cold = build_site(config, embedder=FakeEmbedder())
    assert cold.embedded == 14 and not cold.skipped
    with sqlite3.connect(cache / DB_NAME) as db:
        assert db.execute("SELECT count(*) FROM files").fetchone() == (14,)
    monkeypatch.setattr(local, "_try_decode", CrashOn("*"))  # a decode would skip the file
    embedder = FakeEmbedder()
    warm = build_site(replace_output(config, tmp_path / "b"), embedder=embedder)
    assert (warm.images, warm.embedded, embedder.calls) == (14, 0, 0)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_a_touched_file_is_decoded_but_not_embedded_again(photos, tmp_path) -> None:
    cache = tmp_path / "cache"
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", cache_dir=cache)
    build_site(config, embedder=FakeEmbedder())
    touched = photos / "red" / "red_1.png"
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))
    embedder = FakeEmbedder()
    again = build_site(config, embedder=embedder)
    assert (again.embedded, embedder.calls) == (0, 0)


def test_workers_must_be_positive_and_are_documented(photos, tmp_path) -> None:
    run = CliRunner().invoke(cli, ["build", str(photos), "--workers", "0"])
    assert run.exit_code == 2 and "--workers must be at least 1 (got 0)." in run.output
    help_text = CliRunner().invoke(cli, ["build", "--help"]).output
    assert "Processes that decode images" in help_text
    embed_help = " ".join(CliRunner().invoke(cli, ["embed", "--help"]).output.split())
    assert "with --engine ray: model actors" in embed_help


def replace_output(config: BuildConfig, output: Path) -> BuildConfig:
    from dataclasses import replace

    return replace(config, output=output)


def test_a_crash_while_files_are_still_being_sent_costs_only_its_file(
    tmp_path, monkeypatch
) -> None:
    """More files than the look-ahead: the pool breaks while the engine is still sending
    tasks, so the next submit fails too. That is the same crash, and costs only its file."""
    photos = tmp_path / "photos"
    for i in range(400):
        make_image(photos / f"p{i:03d}.png", (i % 250, 90, 90), (40, 30))
    monkeypatch.setattr(local, "_try_decode", CrashOn("p100.png"))
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", workers=2, batch_size=8)
    result = build_site(config, embedder=FakeEmbedder())
    assert [(s.rel, s.reason) for s in result.skipped] == [
        ("p100.png", "the image decoder crashed on this file")
    ]
    assert result.images == 399
