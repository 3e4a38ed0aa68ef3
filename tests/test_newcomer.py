"""Issue 15 outside the browser: messages a newcomer reads, the exit right after the summary,
files a user added to the site folder, and the previews' files, cache and size budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.build import build_site
from generator.commands.deliver import deliver
from generator.config import BuildConfig
from generator.errors import ConfigError
from generator.ingest.imaging import decode
from generator.site.sitedir import MARKER
from tests import pagedata
from tests.helpers import FakeEmbedder, make_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_model(monkeypatch) -> None:
    """The CLI builds with the fake embedder (no torch)."""

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Six noisy 1600×1200 pictures: sources far larger than any thumbnail."""
    root = tmp_path / "photos"
    for i, colour in enumerate([(200, 40, 40), (40, 160, 60), (40, 60, 200)] * 2):
        make_image(root / f"p{i}.jpg", colour, (1600, 1200), noise=30, seed=i)
    return root


def build(*args: str):
    return CliRunner().invoke(cli, ["build", *args])


# --- messages (item 10) ---------------------------------------------------------------------


def test_weights_folder_names_a_checkpoint_inside_it(colour_folder, tmp_path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "--weights", str(folder))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: {folder} is a folder: --weights takes a checkpoint file such as "
        f"{folder / 'model.safetensors'}."
    )
    (folder / "model.safetensors").unlink()
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "--weights", str(folder))
    assert result.output.splitlines()[-1] == (
        f"Error: {folder} is a folder: --weights takes a checkpoint file "
        "(it holds no .safetensors or .pth)."
    )


def test_mistyped_weights_keyword_suggests_the_right_one(colour_folder, tmp_path) -> None:
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "--weights", "pretrianed")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --weights pretrianed: no such checkpoint file. Did you mean --weights pretrained?"
    )
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "--weights", "nope.pth")
    assert result.output.splitlines()[-1] == (
        "Error: nope.pth: checkpoint file not found. Check the path given to --weights "
        "(or use 'pretrained' or 'random')."
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.model
def test_junk_checkpoint_says_what_is_wrong_not_a_bare_number(colour_folder, tmp_path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(range(256)) * 400)
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "--weights", str(junk))
    assert result.exit_code == 1
    last = result.output.splitlines()[-1]
    assert last.startswith(
        f"Error: {junk}: not a readable safetensors or PyTorch checkpoint: it is damaged, "
        "incomplete or another kind of file ("
    )
    assert last.endswith("). Download it again, or pass another checkpoint with --weights.")


def test_one_image_says_to_add_more(tmp_path, fake_model) -> None:
    make_image(tmp_path / "one" / "a.png")
    result = build(str(tmp_path / "one"), "-o", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: Clustering needs at least 2 images; only 1 could be used. Add more images to "
        "the input."  # nothing was skipped: no 'fix the skipped files' (issue 28)
    )


def test_summary_paths_can_be_pasted_into_a_shell(colour_folder, tmp_path, fake_model) -> None:
    site = tmp_path / "My Site" / "結果 ページ"
    result = build(str(colour_folder), "-o", str(site))
    assert result.exit_code == 0, result.output
    assert f"Built '{site}/' from 12 images" in result.stderr
    assert f"Open '{site}/index.html' in a browser" in result.stderr


def test_phases_are_said_in_the_log(colour_folder, tmp_path, fake_model) -> None:
    result = build(str(colour_folder), "-o", str(tmp_path / "s"), "-v", "--no-cache")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    phases = [line for line in lines if line.endswith("…")]
    assert phases == ["loading model…", "clustering k = 2…10…", "writing site…"]
    # …and not without -v when the output is not a terminal (as the progress bar is not)
    quiet = build(str(colour_folder), "-o", str(tmp_path / "t"), "--no-cache")
    assert not [line for line in quiet.stderr.splitlines() if line.endswith("…")]


@pytest.mark.model
def test_process_exits_within_a_second_of_the_summary(colour_folder, tmp_path) -> None:
    """With torch loaded, interpreter teardown used to add 2–5 s after the summary."""
    args = [sys.executable, "-m", "generator", "build", str(colour_folder)]
    args += ["-o", str(tmp_path / "s"), "--weights", "random", "--no-cache"]
    process = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    said = None
    for line in process.stderr:
        if line.startswith("Built "):
            said = time.monotonic()
    process.wait(timeout=300)
    ended = time.monotonic()
    assert process.returncode == 0 and said is not None
    assert ended - said < 1.0, f"{ended - said:.2f} s from the summary to the exit"


# --- files the user added to the site folder (item 12) -----------------------------------------


def test_rebuild_keeps_files_the_user_added_and_says_so(colour_folder, tmp_path, fake_model):
    site = tmp_path / "site"
    assert build(str(colour_folder), "-o", str(site)).exit_code == 0
    (site / "CNAME").write_text("photos.example.org\n")
    (site / "README.md").write_text("# notes\n")
    (site / "extra").mkdir()
    (site / "extra" / "x.txt").write_text("x")
    result = build(str(colour_folder), "-o", str(site), "--title", "again")
    assert result.exit_code == 0, result.output
    assert f"warning: kept CNAME, README.md, extra in {site}/ (not written by dinoclust)" in (
        result.stderr
    )
    assert (site / "CNAME").read_text() == "photos.example.org\n"
    assert (site / "README.md").read_text() == "# notes\n"
    assert (site / "extra" / "x.txt").read_text() == "x"
    assert (site / MARKER).is_file()
    assert json.loads((site / "report.json").read_text())["title"] == "again"


# --- previews (item 5) ------------------------------------------------------------------------


def test_decode_makes_a_preview_from_the_same_decode(photos) -> None:
    decoded = decode(photos / "p0.jpg", 224, 192, 800)
    assert decoded.thumb_size == (192, 144) and decoded.preview_size == (800, 600)
    assert decoded.preview is not None and decoded.preview[:4] == b"RIFF"
    small = decode(photos / "p0.jpg", 224, 192)  # no preview asked for
    assert small.preview is None and small.preview_size is None
    assert small.thumb_size == decoded.thumb_size and small.size == decoded.size == (1600, 1200)


def test_previews_and_none_never_share_cached_features_or_thumbnails(photos, tmp_path) -> None:
    """A decode for previews keeps more pixels (JPEG draft scale), so its thumbnail and model
    input differ a little: a warm build must give what a cold build with the same options gives."""
    cache = tmp_path / "cache"
    for name, size in (("with", 800), ("none", 0), ("again", 800)):
        config = BuildConfig(
            inputs=(photos,), output=tmp_path / name, k_max=3, preview_size=size, cache_dir=cache
        )
        build_site(config, embedder=FakeEmbedder())
    cold = BuildConfig(inputs=(photos,), output=tmp_path / "cold", k_max=3)
    build_site(cold, embedder=FakeEmbedder())
    for name in ("index.html", "report.json"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "cold" / name).read_bytes()


def test_preview_files_cache_and_preview_size_zero(photos, tmp_path) -> None:
    cache = tmp_path / "cache"
    config = BuildConfig(inputs=(photos,), output=tmp_path / "a", k_max=3, cache_dir=cache)
    first = build_site(config, embedder=FakeEmbedder())
    images = first.report["images"]
    assert all(i["preview"].startswith("previews/") for i in images)
    assert {(i["preview_width"], i["preview_height"]) for i in images} == {(800, 600)}
    assert len(list((tmp_path / "a" / "previews").iterdir())) == 6
    # a warm rebuild serves previews from the cache: same site, nothing decoded again
    embedder = FakeEmbedder()
    warm = build_site(replace(config, output=tmp_path / "b"), embedder=embedder)
    assert embedder.calls == 0 and warm.report["images"] == images
    assert (tmp_path / "b" / images[0]["preview"]).read_bytes() == (
        tmp_path / "a" / images[0]["preview"]
    ).read_bytes()
    off = BuildConfig(inputs=(photos,), output=tmp_path / "c", k_max=3, preview_size=0)
    report = build_site(off, embedder=FakeEmbedder()).report
    assert not (tmp_path / "c" / "previews").exists()
    assert {i["preview"] for i in report["images"]} == {None}


def test_small_sources_get_no_preview(colour_folder, tmp_path) -> None:
    """64×48 pictures are smaller than their thumbnail: the thumbnail is all there is."""
    config = BuildConfig(inputs=(colour_folder,), output=tmp_path / "s", k_max=3)
    report = build_site(config, embedder=FakeEmbedder()).report
    assert {i["preview"] for i in report["images"]} == {None}
    assert not (tmp_path / "s" / "previews").exists()


def test_preview_size_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"--preview-size must be 0 \(no previews\) or between "):
        BuildConfig(inputs=(Path("x"),), preview_size=100)


def test_zip_and_single_file_carry_previews_and_the_budget_drops_them(photos, tmp_path) -> None:
    def run(name: str, **options):
        config = BuildConfig(inputs=(photos,), output=tmp_path / name, k_max=3, **options)
        return deliver(config, embedder=FakeEmbedder())

    full = run("full", zip_file=tmp_path / "full.zip")
    names = zipfile.ZipFile(tmp_path / "full.zip").namelist()
    assert len([n for n in names if n.startswith("full/previews/")]) == 6
    run("one.html", single_file=True)
    html = (tmp_path / "one.html").read_text(encoding="utf-8")
    previews = [i["preview"] for i in pagedata.decode(html)["images"] if i["preview"]]
    assert len(previews) == 6 and all(p.startswith("data:image/webp;base64,") for p in previews)
    # a budget the previews do not fit: smaller previews or none, thumbnails kept if they fit
    without = run("none", zip_file=tmp_path / "none.zip", preview_size=0)
    fitted = run("fit", zip_file=tmp_path / "fit.zip", max_size=without.size + 1_000)
    assert fitted.fit is not None and fitted.fit.shrunk
    assert (fitted.fit.preview_size, fitted.fit.thumb_size) == (0, 192)
    assert (tmp_path / "fit.zip").stat().st_size <= without.size + 1_000
    report = json.loads((tmp_path / "fit" / "report.json").read_text(encoding="utf-8"))
    assert {i["preview"] for i in report["images"]} == {None}
    assert not any((tmp_path / "fit" / "previews").iterdir())
    assert full.size and full.size > without.size
