"""`dinoclust sort`: one folder per cluster, hard links by default, the inputs never touched."""

from __future__ import annotations

import csv
import errno
import hashlib
import logging
import os
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands import sort as sort_module
from generator.commands.sort import SortConfig, sort_collection
from generator.config import BuildConfig
from generator.site.sitedir import MARKER
from tests.helpers import COLOURS, FakeEmbedder, make_image

NAMES = ("holiday photo 1.png", "日本の写真.png", "🌸 blossom 🐱.png")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three colour groups of five, in folders and names with spaces, Japanese and emoji."""
    root = tmp_path / "trip photos"
    folders = {"red": "red things", "green": "緑", "blue": "blue 🌊"}
    for name, colour in COLOURS.items():
        for i in range(5):
            file = NAMES[i] if i < len(NAMES) else f"{name}_{i}.png"
            make_image(root / folders[name] / file, colour, noise=10 + 3 * i, seed=i)
    return root


@pytest.fixture
def fake_model(monkeypatch) -> FakeEmbedder:
    """The CLI's model is the fake embedder (counted): no torch, no weights."""
    model = FakeEmbedder()
    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: model)
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    return model


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file below root: checksum, mtime and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[path.relative_to(root).as_posix()] = (digest, st.st_mtime_ns, st.st_mode)
    return out


def sorted_files(out: Path) -> dict[str, str]:
    """cluster folder → relative path, for every sorted file."""
    return {
        p.relative_to(out).as_posix(): p.relative_to(out).parts[0]
        for p in out.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.parent != out
    }


def run_sort(photos: Path, out: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["sort", str(photos), "-o", str(out), *args])


def test_sort_writes_one_folder_per_cluster_with_the_sizes_at_the_suggested_k(
    photos, tmp_path, fake_model
) -> None:
    site = tmp_path / "site"
    build = CliRunner().invoke(cli, ["build", str(photos), "-o", str(site)])
    assert build.exit_code == 0, build.output
    report = pipeline_report(site)
    k = report["suggested_k"]
    out = tmp_path / "sorted"
    calls = fake_model.calls
    result = run_sort(photos, out)
    assert result.exit_code == 0, result.output
    assert fake_model.calls == calls  # after a build: only cache lookups
    assert f"into {k} folders" in result.output and "the suggested k" in result.output
    counts = Counter(sorted_files(out).values())
    sizes = report["clusterings"][str(k)]["sizes"]
    assert counts == {f"cluster_{c}": n for c, n in enumerate(sizes) if n}
    with (out / "clusters.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "cluster", "distance_to_centre"]
    clustering = report["clusterings"][str(k)]
    for i, (path, cluster, distance) in enumerate(rows[1:]):
        assert path == report["images"][i]["path"]
        assert int(cluster) == clustering["labels"][i]
        assert float(distance) == pytest.approx(clustering["distances"][i], abs=1e-6)
        assert (out / f"cluster_{cluster}" / path).is_file()  # relative path kept below it
    assert (out / MARKER).is_file()


def pipeline_report(site: Path) -> dict:
    import json

    return json.loads((site / "report.json").read_text(encoding="utf-8"))


def test_default_mode_hard_links_and_inputs_are_unchanged(photos, tmp_path, fake_model) -> None:
    before = snapshot(photos)
    out = tmp_path / "sorted"
    result = run_sort(photos, out, "--k", "3")
    assert result.exit_code == 0, result.output
    assert "k = 3, as asked; hard links" in result.output
    files = sorted_files(out)
    assert len(files) == 15
    for rel in files:
        original = photos / Path(*Path(rel).parts[1:])
        assert os.path.samefile(out / rel, original)  # the same inode: no extra space
        assert original.stat().st_nlink == 2
    assert snapshot(photos) == before
    for name in NAMES:  # spaces, Japanese and emoji survive as they are
        assert sum(Path(rel).name == name for rel in files) == 3


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_copy_and_symlink_modes(photos, tmp_path, fake_model, mode) -> None:
    before = snapshot(photos)
    out = tmp_path / "sorted"
    result = run_sort(photos, out, "--mode", mode)
    assert result.exit_code == 0, result.output
    for rel in sorted_files(out):
        target, original = out / rel, photos / Path(*Path(rel).parts[1:])
        assert target.read_bytes() == original.read_bytes()
        if mode == "copy":
            assert not target.is_symlink() and not os.path.samefile(target, original)
        else:
            assert target.is_symlink() and Path(os.readlink(target)) == original.resolve()
    # replacing our own sorted folder removes links and copies, never what they point at
    again = run_sort(photos, out, "--mode", mode, "--k", "2")
    assert again.exit_code == 0, again.output
    assert snapshot(photos) == before


def test_a_hard_link_that_cannot_be_made_becomes_a_copy_and_says_so(
    photos, tmp_path, monkeypatch, caplog
) -> None:
    def cross_device(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(sort_module.os, "link", cross_device)
    out = tmp_path / "sorted"
    config = SortConfig(BuildConfig(inputs=(photos,), output=out))
    with caplog.at_level(logging.WARNING, logger="generator"):
        result = sort_collection(config, embedder=FakeEmbedder())
    assert result.copied == 15
    assert any(
        "15 file(s)" in r.getMessage() and "copied, not hard-linked" in r.getMessage()
        for r in caplog.records
    )
    for rel in sorted_files(out):
        assert not os.path.samefile(out / rel, photos / Path(*Path(rel).parts[1:]))


def test_a_foreign_non_empty_folder_is_refused(photos, tmp_path, fake_model) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    result = run_sort(photos, out)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: {out} already exists, is not empty and was not made by dinoclust (no {MARKER} "
        "file), so it will not be replaced. Choose a new or empty folder with -o."
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert fake_model.calls == 0  # refused before any work


@pytest.mark.parametrize("mode", ["link", "copy", "symlink"])
def test_a_new_sort_keeps_what_someone_added_at_the_top(photos, tmp_path, fake_model, mode):
    """A README or notes beside the cluster folders once went with the old folders."""
    out = tmp_path / "sorted"
    assert run_sort(photos, out, "--k", "3", "--mode", mode).exit_code == 0
    (out / "notes.txt").write_text("which folder is which", encoding="utf-8")
    (out / "mine" / "deep").mkdir(parents=True)
    (out / "mine" / "deep" / "a.txt").write_text("kept", encoding="utf-8")
    result = run_sort(photos, out, "--k", "2", "--mode", mode)
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text(encoding="utf-8") == "which folder is which"
    assert (out / "mine" / "deep" / "a.txt").read_text(encoding="utf-8") == "kept"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("cluster_")) == [
        "cluster_0",
        "cluster_1",
    ]
    assert "kept mine, notes.txt in " in result.stderr


@pytest.mark.parametrize(
    "added", ["cluster_0/extra.txt", "cluster_1/red things/note.md", "cluster_7/x.png"]
)
def test_a_file_added_to_a_cluster_folder_stops_a_new_sort_before_any_work(
    photos, tmp_path, fake_model, added
) -> None:
    out = tmp_path / "sorted"
    assert run_sort(photos, out, "--k", "3").exit_code == 0
    (out / added).parent.mkdir(parents=True, exist_ok=True)
    (out / added).write_text("mine", encoding="utf-8")
    before, calls = snapshot(out), fake_model.calls
    result = run_sort(photos, out, "--k", "2")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out / added} was not placed there by dinoclust sort, and a new sort replaces "
        f"the cluster folders. Move them out of {out}, then sort again.\n"
    )
    assert snapshot(out) == before and fake_model.calls == calls


def test_cluster_folders_without_their_clusters_csv_are_not_replaced(
    photos, tmp_path, fake_model
) -> None:
    out = tmp_path / "sorted"
    assert run_sort(photos, out, "--k", "3").exit_code == 0
    (out / "clusters.csv").unlink()
    before = snapshot(out)
    result = run_sort(photos, out)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out} has cluster folders but no clusters.csv that dinoclust can read, so which "
        "files in them it placed cannot be told, and a new sort would remove them all. Move "
        f"{out} away, or choose another folder with -o.\n"
    )
    assert snapshot(out) == before


def test_bad_k_and_mode(photos, tmp_path, fake_model) -> None:
    result = run_sort(photos, tmp_path / "a", "--k", "1")
    assert result.exit_code == 2 and "--k must be between 2 and 50 (got 1)." in result.output
    result = run_sort(photos, tmp_path / "b", "--mode", "move")
    assert result.exit_code == 2
    result = run_sort(photos, tmp_path / "c", "--k", "20")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --k 20: only 15 images could be used; choose a k of at most 15."
    )
    assert not (tmp_path / "c").exists()


def test_sort_inside_the_inputs_is_not_sorted_again(photos, fake_model) -> None:
    out = photos / "sorted"
    assert run_sort(photos, out).exit_code == 0
    again = run_sort(photos, out)
    assert again.exit_code == 0, again.output
    assert "Sorted 15 images" in again.output


def test_labels_add_a_label_column(photos, tmp_path, fake_model) -> None:
    out = tmp_path / "sorted"
    result = run_sort(photos, out, "--labels", "folders")
    assert result.exit_code == 0, result.output
    with (out / "clusters.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "cluster", "distance_to_centre", "label"]
    assert {row[3] for row in rows[1:]} == {"red things", "緑", "blue 🌊"}
    assert all(row[0].startswith(row[3] + "/") for row in rows[1:])


def test_sort_has_help_with_the_build_model_options() -> None:
    result = CliRunner().invoke(cli, ["sort", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--output", "--k ", "--mode", "--weights", "--cache-dir", "--labels", "--seed"):
        assert option in result.output
    for option in ("--title", "--zip", "--single-file", "--lang"):  # site options: not here
        assert option not in result.output


def test_k_above_k_max_runs_k_means_up_to_k(photos, tmp_path, fake_model) -> None:
    out = tmp_path / "sorted"
    result = run_sort(photos, out, "--k", "12", "--k-max", "4")
    assert result.exit_code == 0, result.output
    assert "(k = 12, as asked;" in result.output
    with (out / "clusters.csv").open(encoding="utf-8", newline="") as f:
        clusters = {row["cluster"] for row in csv.DictReader(f)}
    assert clusters == {p.name.removeprefix("cluster_") for p in out.glob("cluster_*")}
    assert max(map(int, clusters)) <= 11 and len(clusters) >= 10
