"""Issue 26 ("Trust, round three"): hostile stores, devices and names; nothing is written outside
the output; a user's writing is never lost. Each test names the item it covers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from generator.cli import cli
from generator.commands.embed import embed_collection
from generator.config import EmbedConfig
from tests.helpers import FakeEmbedder, make_colour_folder

EXIF_MAKE = b"PWNEDCAM"
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error(result: Result, expected: str) -> None:
    """Exit 1, exactly one line, `Error: expected`, and no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [f"Error: {expected}"]


@pytest.fixture
def emb(tmp_path: Path) -> Path:
    """A one-part store of 9 images, written by `embed` with the fake model."""
    photos = make_colour_folder(tmp_path / "photos", per_colour=3)
    out = tmp_path / "emb"
    embed_collection(EmbedConfig(inputs=(photos,), output=out), embedder=FakeEmbedder())
    return out


def part_of(store: Path) -> Path:
    (part,) = sorted(store.glob("part-*.parquet"))
    return part


def rewrite(store: Path, meta: dict[bytes, bytes | None] | None = None, **columns: Any) -> Path:
    """The store's part with metadata keys changed (None removes one) and columns replaced."""
    part = part_of(store)
    table = pq.read_table(part)
    for name, values in columns.items():
        array = values if isinstance(values, pa.Array) else pa.array(values)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    metadata = dict(pq.read_schema(part).metadata or {})
    for key, value in (meta or {}).items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    pq.write_table(table.replace_schema_metadata(metadata), part)
    return part


def column(store: Path, name: str) -> list[Any]:
    return pq.read_table(part_of(store), columns=[name]).column(name).to_pylist()


def webp_with_exif(colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = EXIF_MAKE.decode()  # Make
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "webp", exif=exif)
    assert EXIF_MAKE in out.getvalue()
    return out.getvalue()


# --- item 1: a store never decides where a file is written ----------------------------------


def test_item_1_a_sha256_that_is_a_path_is_refused_and_nothing_is_written_outside(
    emb, tmp_path
) -> None:
    hashes = column(emb, "sha256")
    hashes[0] = "../../PWNED_escape_1"
    part = rewrite(emb, sha256=hashes)
    site = tmp_path / "out" / "site"
    result = run("build", "--embeddings", emb, "-o", site)
    one_error(
        result,
        f"{part}, row 0: the sha256 ../../PWNED_escape_1 is not a SHA-256 digest (64 hexadecimal "
        "digits). Fix that cell, or drop the sha256 column.",
    )
    assert not list(tmp_path.rglob("PWNED*"))
    assert not site.exists()


# --- item 2: no EXIF reaches the site, whatever the store holds -----------------------------


def test_item_2_a_stored_thumb_or_preview_with_exif_is_encoded_again(emb, tmp_path) -> None:
    n = len(column(emb, "path"))
    rewrite(emb, thumb=[webp_with_exif()] * n, preview=[webp_with_exif((1, 2, 3))] * n)
    site = tmp_path / "site"
    result = run("build", "--embeddings", emb, "-o", site)
    assert result.exit_code == 0, result.output
    images = [p for p in site.rglob("*.webp")]
    assert {p.parent.name for p in images} == {"thumbs", "previews"}
    assert all(EXIF_MAKE not in p.read_bytes() for p in images)
    assert all(b"EXIF" not in p.read_bytes() for p in images)


# --- item 7: malformed store metadata -------------------------------------------------------


def meta_case(key: str, value: bytes) -> tuple[dict[bytes, bytes | None], str]:
    return {key.encode(): value}, key


@pytest.mark.parametrize(
    ("key", "value", "shown", "expected"),
    [
        ("dinoclust.errors_i18n", b"{not json", "{not json", "JSON"),
        ("dinoclust.errors_i18n", b"[1, 2]", "[1, 2]", "an object of path: message"),
        (
            "dinoclust.errors_i18n",
            b'{"a.png": {"key": "no_such_key", "args": {}}}',
            '{"key": "no_such_key", "args": {}}',
            '{"key": a known key, "args": {…}}',
        ),
        (
            "dinoclust.errors_i18n",
            b'{"a.png": {"key": "skip_corrupt", "args": 3}}',
            '{"key": "skip_corrupt", "args": 3}',
            '{"key": a known key, "args": {…}}',
        ),
        ("dinoclust.weights_i18n", b"nope", "nope", "JSON"),
        (
            "dinoclust.weights_i18n",
            b'{"key": "no_such_key", "args": {}}',
            '{"key": "no_such_key", "args": {}}',
            '{"key": a known key, "args": {…}}',
        ),
        ("dinoclust.weights_i18n", b'"text"', '"text"', '{"key": a known key, "args": {…}}'),
        ("dinoclust.parts", b"one", "one", "a whole number"),
        ("dinoclust.thumb_size", b"-3", "-3", "a whole number"),
        ("dinoclust.prefixes", b"[trip1", "[trip1", "JSON"),
        ("dinoclust.prefixes", b'{"a": 1}', '{"a": 1}', "a list of folder names"),
        ("dinoclust.prefixes", b'["a", 2]', '["a", 2]', "a list of folder names"),
        ("dinoclust.prefixes", b'[""]', '[""]', "a list of folder names"),
        ("dinoclust.prefixes", b"null", "null", "a list of folder names"),
    ],
)
def test_item_7_malformed_metadata_is_one_error_line(emb, tmp_path, key, value, shown, expected):
    part = rewrite(emb, {key.encode(): value})
    result = run("build", "--embeddings", emb, "-o", tmp_path / "site")
    where = key if "a.png" not in value.decode() else f"{key} (a.png)"
    one_error(
        result,
        f"{part}: the file metadata {where} is {shown}, not {expected}. Remove that key, or make "
        "the file again with `dinoclust embed`.",
    )


def test_item_7_metadata_that_is_not_utf8_is_one_error_line(emb, tmp_path) -> None:
    part = rewrite(emb, {b"dinoclust.weights": b"caf\xe9"})
    result = run("build", "--embeddings", emb, "-o", tmp_path / "site")
    one_error(
        result,
        f"{part}: the file metadata dinoclust.weights is not UTF-8 text. Remove that key, or make "
        "the file again with `dinoclust embed`.",
    )


# --- item 8: malformed rows -----------------------------------------------------------------


def test_item_8_a_width_of_strings_is_one_error_line(emb, tmp_path) -> None:
    n = len(column(emb, "path"))
    part = rewrite(emb, width=pa.array(["wide"] * n, pa.string()))
    result = run("build", "--embeddings", emb, "-o", tmp_path / "site")
    one_error(
        result,
        f"{part}: the 'width' column is string, not whole numbers. Store it as the schema of "
        "`dinoclust embed` does, or drop that column.",
    )


@pytest.mark.parametrize("name", ["thumb", "preview"])
def test_item_8_a_thumb_or_preview_that_is_not_an_image_is_one_error_line(
    emb, tmp_path, name
) -> None:
    n = len(column(emb, "path"))
    part = rewrite(emb, **{name: pa.array([b"not an image"] * n, pa.binary())})
    result = run("build", "--embeddings", emb, "-o", tmp_path / "site")
    one_error(
        result,
        f"{part}, row 0: the {name} is not usable (not an image that Pillow can read). Drop that "
        "cell, or make the store again with `dinoclust embed`.",
    )


def test_item_8_a_nul_in_a_path_is_one_error_line(emb, tmp_path) -> None:
    paths = column(emb, "path")
    paths[0] = "blue/a\x00b.png"
    part = rewrite(emb, path=paths)
    root = tmp_path / "photos"
    result = run("build", "--embeddings", emb, "--images-root", root, "-o", tmp_path / "site")
    one_error(
        result,
        f"{part}, row 0: the path blue/a\\x00b.png holds a NUL character, which no file name "
        "can. Fix that cell.",
    )


# --- item 3: --cache-dir never takes a folder of the user's ---------------------------------


def test_item_3_a_folder_with_the_users_own_cache_file_is_refused(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "cache-v2.sqlite").write_bytes(b"my own notes, not SQLite")
    result = run("build", photos, "-o", tmp_path / "site", "--cache-dir", folder)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: --cache-dir {folder} holds a cache-v2.sqlite that dinoclust did not write (no "
        ".dinoclust-cache beside it, and not its tables). Choose a new or empty folder, or build "
        "without the cache with --no-cache."
    )
    assert (folder / "cache-v2.sqlite").read_bytes() == b"my own notes, not SQLite"
    assert sorted(p.name for p in folder.iterdir()) == ["cache-v2.sqlite"]


def test_item_3_a_folder_that_is_not_a_cache_is_refused(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("words")
    result = run("sort", photos, "-o", tmp_path / "sorted", "--cache-dir", folder)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: --cache-dir {folder} is not empty and is not a dinoclust cache (it holds "
        "thesis.txt; a cache holds .dinoclust-cache). Choose a new or empty folder, or build "
        "without the cache with --no-cache."
    )
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]


@pytest.mark.parametrize("command", ["build", "embed"])
def test_item_3_a_cache_folder_inside_the_inputs_is_refused(tmp_path, command) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    before = sorted(p.relative_to(photos) for p in photos.rglob("*"))
    for folder in (photos, photos / "red" / "cache"):
        result = run(command, photos, "-o", tmp_path / "out", "--cache-dir", folder)
        assert result.exit_code == 2
        assert result.output.splitlines()[-1] == (
            f"Error: --cache-dir {folder} is inside the input {photos}: the cache would be "
            "written among your images. Choose a cache folder outside the inputs."
        )
    assert sorted(p.relative_to(photos) for p in photos.rglob("*")) == before


@pytest.mark.parametrize("command", ["build", "sort", "embed"])
def test_item_3_the_cache_variable_gets_the_same_checks(tmp_path, monkeypatch, command) -> None:
    """$DINOCLUST_CACHE_DIR is the cache folder as much as --cache-dir is: inside the inputs, or
    a folder of the user's own files, it is refused the same way and named as it was set."""
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    before = sorted(p.relative_to(photos) for p in photos.rglob("*"))
    inside = photos / "red" / "cache"
    monkeypatch.setenv("DINOCLUST_CACHE_DIR", str(inside))
    result = run(command, photos, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: $DINOCLUST_CACHE_DIR ({inside}) is inside the input {photos}: the cache would "
        "be written among your images. Choose a cache folder outside the inputs."
    )
    assert sorted(p.relative_to(photos) for p in photos.rglob("*")) == before
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("words")
    monkeypatch.setenv("DINOCLUST_CACHE_DIR", str(documents))
    result = run(command, photos, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        f"Error: $DINOCLUST_CACHE_DIR ({documents}) is not empty and is not a dinoclust cache"
    )
    assert sorted(p.name for p in documents.iterdir()) == ["thesis.txt"]
    assert not (tmp_path / "out").exists()


def test_item_3_a_cache_is_marked_and_an_unmarked_one_of_ours_still_serves(tmp_path) -> None:
    from generator.storage.cache import EmbeddingCache

    folder = tmp_path / "cache"

    EmbeddingCache(folder).close()
    assert (folder / ".dinoclust-cache").is_file()
    (folder / ".dinoclust-cache").unlink()  # a cache of an earlier dinoclust: no marker
    EmbeddingCache(folder).close()
    assert (folder / ".dinoclust-cache").is_file()


# --- item 4: a rebuild keeps what a reader wrote --------------------------------------------


def test_item_4_an_edited_report_md_is_kept_and_the_new_one_written_beside_it(
    emb, tmp_path
) -> None:
    site = tmp_path / "site"
    assert run("build", "--embeddings", emb, "-o", site).exit_code == 0
    marker = (site / ".dinoclust-site").read_text(encoding="utf-8")
    from generator.ingest.discover import file_sha256

    assert f"{file_sha256(site / 'report.md')}  report.md\n" in marker
    first = (site / "report.md").read_text(encoding="utf-8")
    mine = first + "\n## Discussion\n\nThe red cluster is the sunsets.\n"
    (site / "report.md").write_text(mine, encoding="utf-8")
    result = run("build", "--embeddings", emb, "-o", site, "--title", "Again")
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {site / 'report.md'} was changed since the last build wrote it: kept as it "
        "is; this build's report.md is beside it as report.new.md"
    ) in result.output.splitlines()
    assert (site / "report.md").read_text(encoding="utf-8") == mine
    new = (site / "report.new.md").read_text(encoding="utf-8")
    assert "Again" in new and new != first
    # a third build: still the reader's; the new one replaces the last build's report.new.md
    result = run("build", "--embeddings", emb, "-o", site, "--title", "Third")
    assert result.exit_code == 0, result.output
    assert (site / "report.md").read_text(encoding="utf-8") == mine
    assert "Third" in (site / "report.new.md").read_text(encoding="utf-8")
    assert "kept" not in result.output.replace("kept as it is", "")
    # once the reader removes theirs, the build writes report.md again, and no report.new.md
    (site / "report.md").unlink()
    assert run("build", "--embeddings", emb, "-o", site).exit_code == 0
    assert (site / "report.md").is_file() and not (site / "report.new.md").exists()


def test_item_4_any_file_of_ours_that_was_edited_is_kept(emb, tmp_path) -> None:
    site = tmp_path / "site"
    assert run("build", "--embeddings", emb, "-o", site).exit_code == 0
    (site / "metrics.csv").write_text("my own metrics\n", encoding="utf-8")
    result = run("build", "--embeddings", emb, "-o", site)
    assert result.exit_code == 0, result.output
    assert (site / "metrics.csv").read_text(encoding="utf-8") == "my own metrics\n"
    assert (site / "metrics.new.csv").read_text(encoding="utf-8").startswith("k,")


# --- item 9: options and a failing output ---------------------------------------------------


@pytest.mark.parametrize("seed", [str(2**32), str(2**64 + 1)])
def test_item_9_a_seed_beyond_32_bits_is_refused(tmp_path, seed) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    result = run("build", photos, "-o", tmp_path / "site", "--seed", seed)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: --seed must be at most 4294967295 (got {seed})."
    )


def test_item_9_an_output_name_that_is_not_utf8_is_refused(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    out = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/s\xff"))
    result = run("build", photos, "-o", out, "--title", os.fsdecode(b"t\xfe"))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: -o {tmp_path}/s\\xff: the name is not UTF-8 text, which the files dinoclust "
        "writes and reads need. Choose a name in UTF-8."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_item_9_a_title_that_is_not_utf8_is_shown_escaped(emb, tmp_path) -> None:
    result = run("build", "--embeddings", emb, "-o", tmp_path / "site", "--title", "t\udcfe")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "site" / "report.json").read_text())["title"] == "t\\xfe"


def test_item_9_an_output_refused_halfway_is_one_line_and_leaves_no_staging(
    emb, tmp_path, monkeypatch
) -> None:
    import errno

    import generator.commands.build as pipeline

    site = tmp_path / "out" / "site"
    assert run("build", "--embeddings", emb, "-o", site).exit_code == 0
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}

    def refused(report, staging, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(staging / "index.html"))

    monkeypatch.setattr(pipeline, "render_site", refused)
    result = run("build", "--embeddings", emb, "-o", site)
    one_error(
        result,
        f"Cannot write {site}: Permission denied. Make it writable, or choose another place "
        f"with -o. The site already at {site} is as it was.",
    )
    assert sorted(p.name for p in site.parent.iterdir()) == ["site"]
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before


def test_item_9_an_interrupted_build_removes_its_staging_folder(emb, tmp_path, monkeypatch):
    import generator.commands.build as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "render_site", interrupted)
    site = tmp_path / "out" / "site"
    result = run("build", "--embeddings", emb, "-o", site)
    assert result.exit_code == 130  # 128 + SIGINT, as shells report it
    assert result.output.splitlines()[-1] == f"Interrupted: nothing was written to {site}."
    assert sorted(p.name for p in site.parent.iterdir()) == []


def test_item_9_the_next_build_removes_a_dead_builds_staging_folder(emb, tmp_path) -> None:
    site = tmp_path / "out" / "site"
    stale = tmp_path / "out" / ".site.dinoclust-tmp-dead1234"
    stale.mkdir(parents=True)
    (stale / ".dinoclust-site").write_text("ours\n")
    (stale / "index.html").write_text("half")
    (tmp_path / "out" / ".site.dinoclust-lock").write_text("999999\n")  # its dead owner's
    result = run("build", "--embeddings", emb, "-o", site)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in site.parent.iterdir()) == ["site"]


# --- items 10 and 11: hostile names in the log and in report.md -----------------------------


def test_item_10_names_in_the_log_have_their_control_characters_escaped(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    (photos / "bad\x1b[31mred.png").write_bytes(b"junk")
    (photos / "a\nError: forged.png").write_bytes(b"junk")
    result = run("build", photos, "-o", tmp_path / "site", "--weights", "random", "--no-cache")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "warning: skipped a\\nError: forged.png: not an image that Pillow can read" in lines
    assert "warning: skipped bad\\x1b[31mred.png: not an image that Pillow can read" in lines
    assert "\x1b" not in result.output
    assert not any(line.startswith("Error:") for line in lines)


def test_item_10_a_name_in_an_error_line_is_escaped(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    labels = tmp_path / "l\x1b[2Jabels\nError: forged.csv"
    labels.write_text("path,label\n")
    result = run("build", photos, "-o", tmp_path / "site", "--labels", labels)
    assert "\x1b" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
        result.output.splitlines()[-1]
    ]
    assert "l\\x1b[2Jabels\\nError: forged.csv" in result.output


def test_item_11_report_md_holds_no_html_from_names_or_labels(tmp_path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    (photos / "red").rename(photos / "<i onmouseover=alert(1)>x")
    (photos / "blue" / "blue_0.png").rename(photos / "blue" / "<img src=x onerror=alert(2)>.png")
    (photos / "green" / "[a](javascript:alert(3)) &lt;.png").write_bytes(b"junk")
    site = tmp_path / "site"
    result = run(
        "build", photos, "-o", site, "--labels", "folders", "--weights", "random", "--no-cache"
    )
    assert result.exit_code == 0, result.output
    text = (site / "report.md").read_text(encoding="utf-8")
    assert "&lt;i onmouseover=alert(1)&gt;x" in text
    assert "\\[a\\](javascript:alert(3)) &amp;lt;.png" in text
    tables = [p.read_text(encoding="utf-8") for p in (site / "tables").glob("*.md")]
    for markdown in (text, *tables):
        assert "<i " not in markdown and "<img" not in markdown
        html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(markdown)
        assert (
            "<i " not in html
            and "<img" not in html
            and "javascript:" not in html.replace("(javascript:", "")
        )
        assert 'href="javascript' not in html


# --- items 12-14: sort's CSV, labels CSV names, the top level's label -----------------------


def test_item_12_sort_writes_a_lone_cr_and_formula_names_guarded(tmp_path) -> None:
    import csv

    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    (photos / "red" / "red_0.png").rename(photos / "red" / "a\rb.png")
    (photos / "red" / "red_1.png").rename(photos / "red" / "=HYPERLINK(1).png")
    (photos / "blue").rename(photos / "@blue")
    out = tmp_path / "sorted"
    result = run("sort", photos, "-o", out, "--weights", "random", "--no-cache")
    assert result.exit_code == 0, result.output
    with (out / "clusters.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 6  # the header and one row per image: the CR made no extra row
    paths = sorted(row[0] for row in rows[1:])
    assert "red/a\rb.png" in paths and "red/'=HYPERLINK(1).png" not in paths
    assert "'red/=HYPERLINK(1).png" not in paths  # guarded cells start with the formula only
    assert all(not p.startswith(("=", "+", "-", "@")) for p in paths)
    assert "'@blue/blue_0.png" in paths
    # a second sort into the same folder reads its own CSV back: nothing is taken for foreign
    again = run("sort", photos, "-o", out, "--weights", "random", "--no-cache")
    assert again.exit_code == 0, again.output
    assert "kept" not in again.output


@pytest.mark.parametrize("name", ["back\\slash.png", " leading space.png"])
def test_item_13_a_labels_csv_names_a_file_with_a_backslash_or_a_leading_space(
    tmp_path, name
) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    (photos / "red" / "red_0.png").rename(photos / "red" / name)
    labels = tmp_path / "labels.csv"
    rows = [f'"red/{name}",warm', "green/green_0.png,cool", "blue/blue_0.png,cool"]
    labels.write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    site = tmp_path / "site"
    result = run("build", photos, "-o", site, "--labels", labels, "--weights", "random")
    assert result.exit_code == 0, result.output
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    by_path = dict(zip((i["path"] for i in report["images"]), report["labels"], strict=True))
    assert by_path[f"red/{name}"] == "warm"


def test_item_14_a_folder_named_top_level_keeps_its_own_label(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    (photos / "red").rename(photos / "(top level)")
    (photos / "blue" / "blue_0.png").rename(photos / "loose.png")
    site = tmp_path / "site"
    result = run("build", photos, "-o", site, "--labels", "folders", "--weights", "random")
    assert result.exit_code == 0, result.output
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    by_path = dict(zip((i["path"] for i in report["images"]), report["labels"], strict=True))
    assert by_path["(top level)/red_0.png"] == "(top level)"
    assert by_path["loose.png"] == "./"


# --- item 6: devices and named pipes are refused, never read --------------------------------


def dinoclust(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own (tests.slow_cli: the fake model), so that a
    hang fails the test instead of stopping the suite."""
    command = [sys.executable, "-m", "tests.slow_cli", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("option", ["--labels", "--manifest"])
def test_item_6_labels_and_manifests_must_be_regular_files(tmp_path, special, option) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "list.fifo"
        os.mkfifo(path)
    kind = "a named pipe (FIFO)" if special == "fifo" else "a device"
    if option == "--labels":
        args = ["build", photos, "-o", tmp_path / "site", "--labels", path]
        advice = "Give a CSV file of path,label rows, or 'folders'."
    else:
        args = ["embed", "--manifest", path, "-o", tmp_path / "emb"]
        advice = "Give a text file of one path a line, or a Parquet file with a 'path' column."
    done = dinoclust(*args)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {option} {path}: this is {kind}, not a regular file. {advice}"
    ]


def test_item_6_a_parquet_part_that_is_a_fifo_is_refused(emb, tmp_path) -> None:
    part = part_of(emb)
    fifo = part.with_name("part-g0001-00000.parquet")
    part.unlink()
    os.mkfifo(fifo)
    done = dinoclust("build", "--embeddings", emb, "-o", tmp_path / "site")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {fifo}: this is a named pipe (FIFO), not a regular file. Give --embeddings the "
        "folder written by `dinoclust embed`, or Parquet files saved on disk."
    ]


# --- item 16: a zip at the output's own path --------------------------------------------------


def test_item_16_a_zip_at_the_outputs_path_is_named_as_such(emb, tmp_path) -> None:
    same = tmp_path / "same3"
    result = run("build", "--embeddings", emb, "-o", same, "--zip", same)
    one_error(
        result,
        f"--zip {same} is inside the output folder {same}, which every build replaces. Write "
        "the zip somewhere else.",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb", "photos"]


# --- item 5: a file is read only up to --max-file-size --------------------------------------


def test_item_5_a_huge_file_is_skipped_with_a_reason_and_never_read(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    with (photos / "big.jpg").open("wb") as f:
        f.truncate(10 * 10**9)  # sparse: no disk taken
    # the build's own peak. Linux keeps ru_maxrss across exec, so a child forked from this
    # (large) test worker starts at the worker's size: a small launcher forks the build instead,
    # and reports its children's peak (the build and its decode workers)
    build = [sys.executable, "-m", "tests.slow_cli", "build", str(photos)]
    build += ["-o", str(tmp_path / "site"), "--no-cache"]
    launcher = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(done.returncode)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", launcher, *build],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    stderr = done.stderr
    assert done.returncode == 0, stderr
    assert (
        "warning: skipped big.jpg: file too large (10.0 GB; --max-file-size is 2.00 GB)"
        in stderr.splitlines()
    )
    peak = int(done.stdout) * 1024  # Linux: KiB
    assert 50 * 2**20 < peak < 2 * 2**30  # it was 10.9 GiB: the file was read whole


def test_item_5_max_file_size_sets_the_limit(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    result = run(
        "build", photos, "-o", tmp_path / "site", "--max-file-size", "100", "--weights", "random"
    )
    assert result.exit_code == 1
    assert (
        "warning: skipped red/red_0.png: file too large (" in result.output
        and "; --max-file-size is 100 bytes)" in result.output
    )


# --- Deliver: after hostile builds, each command's output holds nothing outside it, no EXIF, no
# absolute path ---------------------------------------------------------------------------------

HOSTILE_NAME = '=HYPERLINK("x")\x1b[31m<i onmouseover=alert(1)>\n.jpg'


def gps_photo(path: Path, colour: tuple[int, int, int]) -> None:
    exif = Image.Exif()
    exif[0x010F] = EXIF_MAKE.decode()
    gps = exif.get_ifd(0x8825)
    gps[2] = (35.0, 39.0, 0.0)  # latitude
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 200), colour).save(path, "jpeg", exif=exif)


def walk_clean(top: Path, private: list[str], images: bool = True) -> list[Path]:
    """Every file below `top` (or `top` itself): each resolves inside it, none holds one of the
    `private` strings (absolute paths), and, with `images`, no image carries EXIF or GPS."""
    files = [top] if top.is_file() else [p for p in top.rglob("*") if not p.is_dir()]
    real_top = top.resolve()
    for path in files:
        real = path.resolve()
        assert real == real_top or real_top in real.parents, path
        data = path.read_bytes()
        for secret in private:
            assert secret.encode() not in data, (path, secret)
        if images:
            assert EXIF_MAKE not in data, path
        if images and path.suffix.lower() in (".webp", ".jpg", ".jpeg", ".png"):
            with Image.open(path) as image:
                assert not image.getexif() and not image.info.get("exif"), path
    return files


def test_deliver_every_commands_output_stays_inside_with_no_exif_or_absolute_path(
    tmp_path,
) -> None:
    photos = tmp_path / "photos"
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
        gps_photo(photos / ("a" if i < 2 else "b") / f"{i}.jpg", colour)
    gps_photo(photos / "a" / HOSTILE_NAME, (190, 40, 40))
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    private = [str(tmp_path), str(Path.home())] if str(Path.home()) != "/" else [str(tmp_path)]
    common = ["--weights", "random", "--no-cache", "--k-max", "3"]
    out = tmp_path / "out"

    assert run("embed", photos, "-o", out / "emb", *common[:3]).exit_code == 0
    table = pq.read_table(next((out / "emb").glob("part-*.parquet")))
    for blob in table.column("thumb").to_pylist() + table.column("preview").to_pylist():
        assert blob is None or (EXIF_MAKE not in blob and b"Exif" not in blob)
    # a hostile store: a thumb with EXIF, a sha256 of another row's, a name with escapes
    n = table.num_rows
    rewrite(out / "emb", thumb=[webp_with_exif()] * n)
    runs = {
        "site": ["build", photos, "-o", out / "site", "--labels", "folders", *common],
        "zip": ["build", photos, "-o", out / "zsite", "--zip", out / "site.zip", *common],
        "page": ["build", photos, "-o", out / "page.html", "--single-file", *common],
        "stored": ["build", "--embeddings", out / "emb", "-o", out / "stored"],
        "sorted": ["sort", photos, "-o", out / "sorted", *common],
    }
    for name, args in runs.items():
        result = run(*args)
        assert result.exit_code == 0, (name, result.output)
        assert "\x1b" not in result.output
    for name in ("site", "zsite", "page.html", "stored"):
        walk_clean(out / name, private)
    walk_clean(out / "sorted" / "clusters.csv", private, images=False)
    import zipfile

    with zipfile.ZipFile(out / "site.zip") as archive:
        for info in archive.infolist():
            assert not info.filename.startswith("/") and ".." not in info.filename.split("/")
            data = archive.read(info)
            assert EXIF_MAKE not in data and all(s.encode() not in data for s in private)
    # nothing was written anywhere else, and the inputs are as they were
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["emb", "page.html", "site", "site.zip", "sorted", "stored", "zsite"]
    )
    assert {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()} == before


# --- Deliver: a fuzz test of store metadata and cells -----------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("DINOCLUST_FUZZ_EXAMPLES", "100"))  # 200: 32 s, 2 cores
META_KEYS = [
    "dinoclust.model",
    "dinoclust.weights_id",
    "dinoclust.weights",
    "dinoclust.weights_i18n",
    "dinoclust.errors_i18n",
    "dinoclust.parts",
    "dinoclust.generation",
    "dinoclust.thumb_size",
    "dinoclust.preview_size",
    "dinoclust.prefixed",
    "dinoclust.prefixes",
    "dinoclust.random_weights",
    "other.key",
]


def fuzz_strategies():  # imported lazily: hypothesis is a test extra
    from hypothesis import strategies as st

    text = st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", "..", "../../x", "/etc/passwd", "a\x00b", "C:\\x", "=1+1", "\r\n"]),
    )
    json_text = st.one_of(
        st.sampled_from(
            ['{"key": "skip_corrupt", "args": {"error": "x"}}', "null", "{}", "[]", '"s"', "1e999"]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["key", "args", "a.png"]), inner, max_size=3)
            ),
            max_leaves=6,
        ).map(json.dumps),
    )
    value = st.one_of(text, json_text).map(str.encode) | st.binary(max_size=12)
    metadata = st.dictionaries(st.sampled_from(META_KEYS), value, max_size=5)
    image = st.one_of(st.none(), st.binary(max_size=40), st.just(webp_with_exif()))
    cells = st.fixed_dictionaries(
        {
            "path": text,
            "sha256": st.one_of(st.none(), text, st.just("a" * 64), st.just("G" * 64)),
            "width": st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
            "thumb": image,
            "preview": image,
            "error": st.one_of(st.none(), text),
        }
    )
    return metadata, cells


def test_deliver_fuzzed_stores_give_exit_0_or_one_error_line(emb, tmp_path) -> None:
    from hypothesis import HealthCheck, given, settings

    metadata, cells = fuzz_strategies()
    pristine = part_of(emb).read_bytes()
    counter = iter(range(10**6))

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(meta=metadata, row=cells)
    def check(meta: dict[str, bytes], row: dict[str, Any]) -> None:
        part_of(emb).write_bytes(pristine)
        table = pq.read_table(part_of(emb))
        columns = {}
        for name, cell in row.items():
            kind = table.schema.field(name).type
            values = table.column(name).to_pylist()
            values[0] = cell if name != "path" or cell else "x.png"
            try:
                columns[name] = pa.array(values, kind)
            except (pa.ArrowException, OverflowError):
                continue
        rewrite(emb, {k.encode(): v for k, v in meta.items()}, **columns)
        box = tmp_path / f"box{next(counter)}"
        box.mkdir()
        result = run("build", "--embeddings", emb, "-o", box / "site")
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        lines = result.output.splitlines()
        if result.exit_code == 0:
            assert not any(line.startswith("Error:") for line in lines)
            walk_clean(box / "site", [str(tmp_path)], images=True)
        else:
            assert result.exit_code == 1 and lines and lines[-1].startswith("Error: "), lines
            assert sum(line.startswith("Error:") for line in lines) == 1
            assert "Traceback" not in result.output
        assert sorted(p.name for p in box.iterdir()) in ([], ["site"])
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("box")) == [
            "emb",
            "photos",
        ]

    check()


# --- item 15: a reader sees the generation it opened ----------------------------------------


def test_item_15_a_store_opened_before_an_embed_commits_is_read_whole(emb, tmp_path) -> None:
    from generator.storage.store import open_store, read_rows_raw

    store = open_store(emb)
    old = [p.name for p in store.files]
    photos = tmp_path / "photos"
    (photos / "red" / "red_0.png").unlink()  # the rerun writes a new generation of 8 rows
    embed_collection(EmbedConfig(inputs=(photos,), output=emb), embedder=FakeEmbedder())
    assert not any((emb / name).exists() for name in old)  # the commit removed them
    assert store.count() == 9
    rows = list(read_rows_raw(store))
    assert len(rows) == 9 and rows[0].thumb


def test_item_15_a_store_reads_on_when_another_on_its_parts_lets_go(emb, tmp_path) -> None:
    """Two stores open on one generation (a build and an embed's look at what is there) share
    each part's descriptor: the second one letting go, once `embed` committed and removed the
    parts, must not close what the first still reads through (CI's race in stop 30)."""
    import gc

    import pyarrow.parquet as pq

    from generator.storage.store import open_store, read_rows_raw, readable

    first, second = open_store(emb), open_store(emb)
    old = [p.name for p in first.files]
    photos = tmp_path / "photos"
    (photos / "red" / "red_0.png").unlink()
    embed_collection(EmbedConfig(inputs=(photos,), output=emb), embedder=FakeEmbedder())
    assert not any((emb / name).exists() for name in old)
    reading = [readable(path) for path in first.files]  # a read of `first` under way ...
    del second  # ... while the other store lets go
    gc.collect()
    assert sum(pq.read_metadata(where).num_rows for where in reading) == 9
    assert first.count() == 9
    assert len(list(read_rows_raw(first))) == 9
    third = open_store(emb)  # the new generation: its own descriptors, 8 rows
    assert third.count() == 8 and first.count() == 9


def test_item_15_builds_while_embed_reruns_never_fail(emb, tmp_path) -> None:
    import threading
    import time

    from generator.storage.store import open_store

    photos = tmp_path / "photos"
    stop = threading.Event()
    reruns = []

    def rerun() -> None:
        extra = photos / "red" / "extra.png"
        while not stop.is_set():
            if extra.exists():
                extra.unlink()
            else:
                extra.write_bytes((photos / "red" / "red_1.png").read_bytes())
            embed_collection(EmbedConfig(inputs=(photos,), output=emb), embedder=FakeEmbedder())
            reruns.append(1)

    thread = threading.Thread(target=rerun)
    thread.start()
    try:
        builds, deadline = 0, time.monotonic() + 8
        while time.monotonic() < deadline:
            site = tmp_path / f"site{builds}"
            from generator.commands.build import build_site
            from generator.config import BuildConfig

            result = build_site(BuildConfig(embeddings=emb, output=site, k_max=3))
            assert result.images in (9, 10)
            builds += 1
    finally:
        stop.set()
        thread.join()
    assert builds >= 3 and len(reruns) >= 3
    assert open_store(emb).count() in (9, 10)
