"""End to end through build_site with a fake embedder: real files in, real site out."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.errors import InputError, OutputError
from generator.site.sitedir import MARKER
from tests.helpers import FakeEmbedder, make_image


def build(inputs: Path | tuple[Path, ...], output: Path, embedder=None, **options):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    config = BuildConfig(inputs=inputs, output=output, **options)
    return build_site(config, embedder=embedder or FakeEmbedder())


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_report_json_has_the_documented_shape_and_values(colour_folder, tmp_path) -> None:
    result = build(colour_folder, tmp_path / "site", k_max=10)
    report = json.loads((tmp_path / "site" / "report.json").read_text(encoding="utf-8"))
    assert report == result.report
    paths = [image["path"] for image in report["images"]]
    assert paths == [f"{c}/{c}_{i}.png" for c in ("blue", "green", "red") for i in range(4)]
    n = len(paths)
    assert len(report["points"]) == n and all(len(p) == 3 for p in report["points"])
    assert report["pca"]["n_components"] == 12  # min(50, N, D) with N = 12, D = 16
    assert len(report["pca"]["explained_variance_ratio"]) == 12
    assert report["pca"]["cumulative_explained_variance_ratio"][-1] == pytest.approx(1, abs=1e-5)
    assert sorted(report["clusterings"], key=int) == [str(k) for k in range(2, 11)]
    for k, clustering in report["clusterings"].items():
        assert len(clustering["labels"]) == n
        assert len(clustering["centers"]) == int(k) and all(
            len(c) == 3 for c in clustering["centers"]
        )
        assert sum(clustering["sizes"]) == n
    # the three colours are three clusters at k = 3
    labels3 = report["clusterings"]["3"]["labels"]
    assert [len(set(labels3[i : i + 4])) for i in (0, 4, 8)] == [1, 1, 1]
    assert len(set(labels3)) == 3
    assert report["skipped"] == []
    assert report["model"]["name"] == "fake-model"
    for image in report["images"]:
        thumb = tmp_path / "site" / image["thumb"]
        with Image.open(thumb) as im:
            assert im.format == "WEBP"
            assert max(im.size) <= 192


def test_assignments_csv_matches_report(colour_folder, tmp_path) -> None:
    result = build(colour_folder, tmp_path / "site", k_max=4)
    with (tmp_path / "site" / "assignments.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "k2", "k3", "k4"]
    assert len(rows) == 13
    for i, row in enumerate(rows[1:]):
        assert row[0] == result.report["images"][i]["path"]
        assert [int(v) for v in row[1:]] == [
            result.report["clusterings"][str(k)]["labels"][i] for k in (2, 3, 4)
        ]


def test_same_inputs_give_a_byte_identical_site(colour_folder, tmp_path) -> None:
    build(colour_folder, tmp_path / "a")
    build(colour_folder, tmp_path / "b")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


def test_no_absolute_path_reaches_the_site(colour_folder, tmp_path) -> None:
    build(colour_folder, tmp_path / "site")
    for name, data in tree(tmp_path / "site").items():
        assert str(tmp_path).encode() not in data, name
        assert str(Path.home()).encode() + b"/" not in data or str(Path.home()) == "/", name


def test_unusable_files_are_skipped_and_listed(colour_folder, tmp_path) -> None:
    (colour_folder / "empty.png").write_bytes(b"")
    (colour_folder / "notes.jpg").write_text("not an image")
    result = build(colour_folder, tmp_path / "site")
    assert result.images == 12
    assert [(s.rel, s.reason) for s in result.skipped] == [
        ("empty.png", "empty file"),
        ("notes.jpg", "not an image that Pillow can read"),
    ]
    assert result.report["skipped"] == [
        {
            "path": "empty.png",
            "reason": "empty file",
            "reason_i18n": {"key": "skip_empty", "args": {}},
        },
        {
            "path": "notes.jpg",
            "reason": "not an image that Pillow can read",
            "reason_i18n": {"key": "skip_not_image", "args": {}},
        },
    ]
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    reason = '<span data-i18n="skip_not_image">not an image that Pillow can read</span>'
    assert f"<code>notes.jpg</code>: {reason}" in html


def test_strict_makes_a_skip_an_error(colour_folder, tmp_path) -> None:
    (colour_folder / "empty.png").write_bytes(b"")
    with pytest.raises(
        InputError, match=r"--strict: 1 file\(s\) could not be used, first empty\.png"
    ):
        build(colour_folder, tmp_path / "site", strict=True)
    assert not (tmp_path / "site").exists()


def test_no_images_and_one_image_are_clear_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No images found in"):
        build(tmp_path / "empty", tmp_path / "site")
    make_image(tmp_path / "one" / "a.png")
    with pytest.raises(InputError, match="Clustering needs at least 2 images; only 1"):
        build(tmp_path / "one", tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_two_and_identical_images_work(tmp_path) -> None:
    for i in range(3):
        make_image(tmp_path / "same" / f"{i}.png", (10, 20, 30))
    result = build(tmp_path / "same", tmp_path / "site")
    assert sorted(result.report["clusterings"]) == ["2", "3"]
    assert result.report["notes"][-1].startswith("Only 1 distinct feature vectors among 3 images")


def test_inputs_are_only_read(colour_folder, tmp_path) -> None:
    def checksums() -> dict[str, str]:
        return {k: hashlib.sha256(v).hexdigest() for k, v in tree(colour_folder).items()}

    before = checksums()
    build(colour_folder, tmp_path / "site")
    assert checksums() == before


def test_a_foreign_output_folder_is_never_replaced(colour_folder, tmp_path) -> None:
    pictures = tmp_path / "Pictures"
    make_image(pictures / "holiday.jpg")
    (pictures / "notes.txt").write_text("precious")
    before = tree(pictures)
    with pytest.raises(OutputError, match="was not made by dinoclust"):
        build(colour_folder, pictures)
    assert tree(pictures) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pictures", "photos"]  # no leftovers


def test_our_own_site_is_replaced(colour_folder, tmp_path) -> None:
    site = tmp_path / "site"
    build(colour_folder, site, title="first", export_embeddings=True)
    first_thumbs = set(os.listdir(site / "thumbs"))
    for image in (colour_folder / "red").iterdir():  # its thumbnails go stale
        image.unlink()
    build(colour_folder, site, title="second")  # and no embeddings.npy this time
    assert (site / MARKER).is_file()
    thumbs = set(os.listdir(site / "thumbs"))
    assert thumbs < first_thumbs and len(thumbs) == 8 and len(first_thumbs) == 12
    assert not (site / "embeddings.npy").exists() and not (site / "pca.npy").exists()
    assert json.loads((site / "report.json").read_text())["title"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "site"]


def test_what_someone_added_inside_the_sites_folders_is_kept(colour_folder, tmp_path) -> None:
    """A logo in static/, a note in thumbs/: not written by dinoclust, so a rebuild keeps them
    (the marker lists what the last build wrote), rebuild after rebuild."""
    site = tmp_path / "site"
    build(colour_folder, site, export_embeddings=True)
    added = {
        "static/img/logo.png": b"logo",
        "thumbs/README.txt": b"thumbnails are named by content hash",
        "data/my-notes.csv": b"a,b",
        "CNAME": b"clusters.example.org",
    }
    for rel, data in added.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    for title in ("second", "third"):
        build(colour_folder, site, title=title)
        assert {rel: (site / rel).read_bytes() for rel in added} == added
    assert not (site / "embeddings.npy").exists()  # what the first build wrote, and not the rest
    listed = (site / MARKER).read_text(encoding="utf-8").splitlines()
    assert "index.html" in listed and "static/js/app.js" in listed
    assert not set(added) & set(listed) and not [r for r in listed if r.startswith("thumbs/")]


def test_a_file_someone_put_at_a_name_the_build_writes_stops_it_before_any_work(
    colour_folder, tmp_path
) -> None:
    site = tmp_path / "site"
    build(colour_folder, site)
    (site / "embeddings.npy").write_bytes(b"mine")  # not written by the last build
    embedder = FakeEmbedder()
    with pytest.raises(OutputError) as refused:
        build(colour_folder, site, embedder=embedder, export_embeddings=True)
    assert str(refused.value) == (
        f"{site / 'embeddings.npy'} was not written by dinoclust, but a build writes a file of "
        f"that name. Move it out of {site}, then build again."
    )
    assert (site / "embeddings.npy").read_bytes() == b"mine" and embedder.calls == 0


def test_input_inside_output_is_refused(colour_folder, tmp_path) -> None:
    with pytest.raises(InputError, match="inside the output folder"):
        build(colour_folder / "red", colour_folder)


def test_output_inside_input_is_not_discovered(colour_folder, tmp_path) -> None:
    build(colour_folder, colour_folder / "site")
    second = build(colour_folder, colour_folder / "site")
    assert second.images == 12
    assert not any(i["path"].startswith("site/") for i in second.report["images"])


class InterruptingEmbedder(FakeEmbedder):
    def __call__(self, pixels):
        raise KeyboardInterrupt


def test_interrupted_build_keeps_the_previous_site(colour_folder, tmp_path) -> None:
    site = tmp_path / "site"
    build(colour_folder, site)
    before = tree(site)
    with pytest.raises(KeyboardInterrupt):
        build(colour_folder, site, embedder=InterruptingEmbedder())
    assert tree(site) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "site"]


def test_batches_cover_every_image(colour_folder, tmp_path) -> None:
    embedder = FakeEmbedder()
    result = build(colour_folder, tmp_path / "site", embedder=embedder, batch_size=5)
    assert embedder.calls == 3  # 5 + 5 + 2
    assert result.images == 12


def test_lang_sets_the_page_language(colour_folder, tmp_path) -> None:
    build(colour_folder, tmp_path / "ja", lang="ja")
    build(colour_folder, tmp_path / "en")
    assert '<html lang="ja">' in (tmp_path / "ja" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in (tmp_path / "en" / "index.html").read_text(encoding="utf-8")


def test_lang_ja_says_notes_skip_reasons_and_the_default_title_in_japanese(tmp_path) -> None:
    for i in range(3):
        make_image(tmp_path / "photos" / f"{i}.png", (10 + 60 * i, 20, 30))
    (tmp_path / "photos" / "empty.png").write_bytes(b"")
    result = build(tmp_path / "photos", tmp_path / "ja", lang="ja")
    report = result.report
    assert report["title"] == "画像のクラスタ"
    assert report["title_i18n"] == {"key": "default_title", "args": {}}
    # report.json keeps English prose for programs, plus the key the page translates
    assert report["notes"] == ["PCA kept 3 components: no more than the number of images."]
    assert report["notes_i18n"] == [{"key": "note_pca_few", "args": {"n": "3"}}]
    assert report["skipped"][0]["reason"] == "empty file"
    html = (tmp_path / "ja" / "index.html").read_text(encoding="utf-8")
    assert '<title data-i18n="default_title">画像のクラスタ</title>' in html
    assert '<h1><span data-i18n="default_title">画像のクラスタ</span></h1>' in html
    assert "PCA の主成分は 3 個です（画像の枚数より多くは取れません）。</span>" in html
    assert '<code>empty.png</code>: <span data-i18n="skip_empty">空のファイルです</span>' in html
    assert "empty file" not in html.split('id="dinoclust-data"')[0]  # only in the data block
    # a title the user gives is theirs, in every language
    build(tmp_path / "photos", tmp_path / "mine", lang="ja", title="Trip")
    mine = (tmp_path / "mine" / "index.html").read_text(encoding="utf-8")
    assert "<h1>Trip</h1>" in mine and "<title>Trip</title>" in mine


def test_memory_freed_after_each_batch_goes_back_to_the_os(colour_folder, tmp_path, monkeypatch):
    """Under glibc (Linux) each batch ends with malloc_trim; bench_memory.py measures the effect."""
    import platform

    from generator.engines import local

    calls = []
    monkeypatch.setattr(local, "release_freed_memory", lambda: calls.append(1))
    build(colour_folder, tmp_path / "site", batch_size=5)  # 12 images: batches of 5, 5, 2
    assert len(calls) == 3
    monkeypatch.undo()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert local.release_freed_memory() is True
