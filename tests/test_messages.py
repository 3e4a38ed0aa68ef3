"""Messages that tell the truth (issue 28): each one a newcomer saw mislead, with its exact text."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import BARS, CLEAR_LINE, _ClickHandler, cli
from generator.ingest.discover import IMAGE_SUFFIXES
from tests.helpers import FakeEmbedder, make_image

LOOKED = f"{' '.join(sorted(IMAGE_SUFFIXES))}, in any letter case"


@pytest.fixture
def fake_model(monkeypatch) -> None:
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())


def run(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args])


def last_line(result) -> str:
    return result.output.splitlines()[-1]


def test_one_image_file_does_not_mention_skipped_files(tmp_path, fake_model) -> None:
    image = make_image(tmp_path / "a.png")
    result = run("build", image, "-o", tmp_path / "site")
    assert result.exit_code == 1
    assert last_line(result) == (
        "Error: Clustering needs at least 2 images; only 1 could be used. Add more images to "
        "the input."
    )


@pytest.mark.parametrize("command", ["build", "sort"])  # sort said analyse's words, not these
def test_one_image_and_a_broken_file_names_the_skipped_file(tmp_path, fake_model, command) -> None:
    make_image(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    result = run(command, tmp_path / "in", "-o", tmp_path / "site")
    assert result.exit_code == 1
    assert last_line(result) == (
        "Error: Clustering needs at least 2 images; only 1 could be used. Add more images, or "
        "fix the skipped file named above."
    )


def test_a_text_file_as_input_is_not_an_image(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    result = run("build", readme, "-o", tmp_path / "site")
    assert result.exit_code == 1
    assert last_line(result) == (
        f"Error: {readme} is not an image dinoclust reads (it reads {LOOKED}). Give image "
        "files, or a folder of them."
    )
    assert "sub-folders" not in result.output


def test_a_folder_of_pdfs_says_what_it_saw(tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.pdf", "b.PDF", "notes.txt"):
        (docs / name).write_bytes(b"%PDF-1.4")
    result = run("build", docs, "-o", tmp_path / "site")
    assert result.exit_code == 1
    assert last_line(result) == (
        f"Error: No images found in {docs} (looked for {LOOKED}, in all sub-folders). It holds "
        "2 .pdf files and 1 .txt file, which dinoclust does not read."
    )
    embedded = run("embed", docs, "-o", tmp_path / "emb")  # embed says the same
    assert last_line(embedded) == last_line(result)


def test_files_beside_the_images_that_cannot_be_read_are_counted(tmp_path, fake_model) -> None:
    for i in range(3):
        make_image(tmp_path / "in" / f"{i}.png", (40 * i, 0, 0))
    for i in range(53):
        (tmp_path / "in" / "drawings" / f"{i}.svg").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / "drawings" / f"{i}.svg").write_text("<svg/>")
    (tmp_path / "in" / "scan.pdf").write_bytes(b"%PDF")
    result = run("build", tmp_path / "in", "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"warning: 53 .svg files and 1 .pdf file in {tmp_path / 'in'} are not used: dinoclust "
        "does not read that format (the formats it reads: docs/guides/photos.md, Formats)."
    )
    assert (  # and the summary line counts them too
        "from 3 images (0 skipped, 53 .svg files and 1 .pdf file not read, 3 newly embedded)"
    ) in result.output


def test_an_unread_file_cannot_forge_a_line_of_the_summary(tmp_path, fake_model) -> None:
    """An extension is part of a file name: the summary line counts it escaped, as the warning
    does, so a name cannot colour the terminal or start a line of its own."""
    for i in range(3):
        make_image(tmp_path / "in" / f"{i}.png", (40 * i, 0, 0))
    (tmp_path / "in" / "a.x\nBuilt forged\x1b[31m").write_text("text")
    result = run("build", tmp_path / "in", "-o", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\nBuilt forged" not in result.output
    (summary,) = [line for line in result.output.splitlines() if line.startswith("Built ")]
    assert "(0 skipped, 1 .x\\nbuilt forged\\x1b[31m file not read, 3 newly embedded)" in summary


def test_embed_into_a_new_folder_says_the_rows_came_from_the_cache(tmp_path, fake_model) -> None:
    for i in range(3):
        make_image(tmp_path / "in" / f"{i}.png", (40 * i, 0, 0))
    first = run("embed", tmp_path / "in", "-o", tmp_path / "emb1")
    assert first.exit_code == 0, first.output
    assert "(3 images, 0 skipped, 3 newly embedded, 0 from the cache) in " in first.output
    second = run("embed", tmp_path / "in", "-o", tmp_path / "emb2")  # a new folder: no last run
    assert "(3 images, 0 skipped, 0 newly embedded, 3 from the cache) in " in second.output
    again = run("embed", tmp_path / "in", "-o", tmp_path / "emb2")  # now there was one
    assert (
        "(3 images, 0 skipped, 0 newly embedded, 3 kept from the last run or the cache) in "
    ) in again.output


def test_a_warning_never_shares_a_line_with_a_progress_bar(capsys) -> None:
    record = logging.LogRecord("generator", logging.WARNING, "", 0, "skipped a.png", None, None)
    _ClickHandler().emit(record)
    assert capsys.readouterr().err == "warning: skipped a.png\n"  # no bar: a plain line
    BARS.append(object())
    try:
        _ClickHandler().emit(record)
    finally:
        BARS.pop()
    assert capsys.readouterr().err == f"{CLEAR_LINE}warning: skipped a.png\n"
    assert CLEAR_LINE == "\r\x1b[K"  # carriage return, erase the line: the bar redraws below


class StopsAtBatch(FakeEmbedder):
    """Ctrl-C while the third batch is in the model."""

    def __call__(self, pixels):
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().__call__(pixels)


def loads(kind: type[FakeEmbedder]) -> Callable[..., FakeEmbedder]:
    """For fake_models(load=…): each load of the model gets a new `kind`."""
    return lambda *a, **k: kind()


def interrupted(*args: str | Path) -> str:
    """The line a run stopped by Ctrl-C ends on: exit 130, no traceback, no click "Aborted!"."""
    result = run(*args)
    assert result.exit_code == 130, result.output
    assert "Aborted!" not in result.output and "Traceback" not in result.output
    return last_line(result)


def twelve_images(folder: Path) -> Path:
    for i in range(12):
        make_image(folder / f"{i:02d}.png", (20 * i, 100, 100))
    return folder


def test_ctrl_c_says_what_was_kept_and_how_to_go_on(tmp_path, fake_models) -> None:
    twelve_images(tmp_path / "in")
    site = tmp_path / "site"
    site.mkdir()  # an empty folder: ours to fill, and left as it was
    fake_models(load=loads(StopsAtBatch))
    args = ("build", tmp_path / "in", "-o", site, "--batch-size", "2")
    assert interrupted(*args) == (
        f"Interrupted: {site} is as it was. 4 images had been embedded and are cached: run the "
        "same command again to go on from there."
    )
    assert list(site.iterdir()) == []

    fake_models(load=loads(FakeEmbedder))
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert "(0 skipped, 8 newly embedded)" in again.output  # the 4 came from the cache

    fake_models(load=loads(StopsAtBatch))
    fresh = tmp_path / "fresh"
    uncached = interrupted("build", tmp_path / "in", "-o", fresh, "--batch-size", "2", "--no-cache")
    assert uncached == (
        f"Interrupted: nothing was written to {fresh}. 4 images had been embedded, but not "
        "cached (--no-cache): a new run embeds them again."
    )
    assert not fresh.exists()


def test_japanese_has_one_word_for_cluster() -> None:
    from generator.i18n import ui_strings

    ja = ui_strings()["ja"]
    words = " ".join(ja.values())
    assert "クラスター" not in words  # the long form once titled the page, クラスタ filled it
    assert ja["default_title"] == "画像のクラスタ"
    assert words.count("クラスタ") >= 50


def test_the_random_weights_banner_does_not_say_the_reader_passed_the_option(
    tmp_path, fake_model, monkeypatch
) -> None:
    """An offline `demo` falls back to random weights by itself: the banner must not say the
    reader built it 'with --weights random' and should 'rebuild without it'."""
    import generator.model.vit as vit

    monkeypatch.setattr(vit, "pretrained_unavailable", lambda: "huggingface.co cannot be reached")
    info = replace(FakeEmbedder.info, weights="random (untrained, seed 0)", random_weights=True)
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: info)
    result = run("demo", "-o", tmp_path / "site", "--k-max", "3")
    assert result.exit_code == 0, result.output
    assert "warning: using random weights, so the clusters are meaningless" in result.output
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert (
        "This report was built with random, untrained weights, for testing only: the clusters "
        "below are meaningless. For real results, build it again with the pretrained weights "
        "(they need a network connection once) or with a checkpoint file (--weights PATH)."
    ) in page
    assert "Rebuild without it" not in page


def test_in_a_notebook_the_remedy_names_the_apis_arguments(
    colour_folder, tmp_path, monkeypatch
) -> None:
    """Offline, `dinoclust.build(..., weights="pretrained")` once ended in a long traceback that
    advised `--weights random`: a notebook user writes `weights="random"`."""
    pytest.importorskip("torch")
    import huggingface_hub.constants as hub

    import dinoclust

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(dinoclust.GeneratorError) as raised:
        dinoclust.build(colour_folder, tmp_path / "site", quiet=True)
    message = str(raised.value)
    assert message.endswith(
        'and pass weights="path/to/checkpoint.pth". For an offline smoke test only, '
        'weights="random" uses untrained weights.'
    ), message
    assert "--" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # one error


def test_api_words() -> None:
    from generator.api import api_words

    assert api_words(
        "Free some space there, or choose another place with -o. Or pass --cache-dir elsewhere, "
        "or --no-cache; --zip and --k-max too."
    ) == (
        "Free some space there, or choose another place with output. Or pass cache_dir "
        "elsewhere, or no_cache=True; zip_file and k_max too."
    )


def test_japanese_report_md_has_no_english_fragments(colour_folder, tmp_path, monkeypatch) -> None:
    from generator.i18n import Message

    info = replace(
        FakeEmbedder.info,
        weights="random (untrained, seed 0)",
        weights_i18n=Message.of("weights_random", seed=0),
        random_weights=True,
    )
    embedder = FakeEmbedder()
    embedder.info = info  # what the report says of the weights
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: info)
    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: embedder)
    result = run("build", colour_folder, "-o", tmp_path / "site", "--lang", "ja", "-q")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "site" / "report.md").read_text(encoding="utf-8")
    weights = "- 重み: ランダム（未学習、乱数シード 0） — 未学習: クラスタに意味はありません。\n"
    assert weights in text
    assert "ピクセルにリサイズ（バイリニア補間、縦横比は保たない）、" in text
    assert "untrained" not in text and "bilinear" not in text


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ctrl_c_in_sort_leaves_the_sorted_folder_as_it_was(tmp_path, fake_models) -> None:
    twelve_images(tmp_path / "in")
    sorted_ = tmp_path / "sorted"
    fake_models(load=loads(FakeEmbedder))
    args = ("sort", tmp_path / "in", "-o", sorted_, "--k", "3", "--batch-size", "2", "--mode")
    assert run(*args, "copy", "--no-cache").exit_code == 0
    before = files_of(sorted_)
    assert len(before) == 14  # 12 copies, clusters.csv and the marker

    fake_models(load=loads(StopsAtBatch))
    assert interrupted(*args, "copy", "--no-cache") == (
        f"Interrupted: {sorted_} is as it was. 4 images had been embedded, but not cached "
        "(--no-cache): a new run embeds them again."
    )
    assert files_of(sorted_) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "sorted"]  # no staging left

    fresh = tmp_path / "fresh"
    assert interrupted("sort", tmp_path / "in", "-o", fresh, "--batch-size", "2") == (
        f"Interrupted: nothing was written to {fresh}. 4 images had been embedded and are "
        "cached: run the same command again to go on from there."
    )
    assert not fresh.exists()
    fake_models(load=loads(FakeEmbedder))
    again = run("sort", tmp_path / "in", "-o", fresh, "--batch-size", "2")
    assert again.exit_code == 0, again.output
    assert "0 skipped, 8 newly embedded)" in again.output  # the 4 came from the cache


def test_ctrl_c_in_embed_keeps_the_finished_parts(tmp_path, monkeypatch, fake_models) -> None:
    import pyarrow.parquet as pq

    twelve_images(tmp_path / "in")
    emb = tmp_path / "emb"
    monkeypatch.setattr("generator.storage.store.PART_ROWS", 4)  # a part every 2 batches
    fake_models(load=loads(StopsAtBatch))
    args = ("embed", tmp_path / "in", "-o", emb, "--batch-size", "2")
    assert interrupted(*args) == (
        f"Interrupted: {emb} holds 4 finished rows that the next run keeps. 4 images had been "
        "embedded and are cached: run the same command again to go on from there."
    )
    parts = sorted(emb.glob("*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [4]
    assert sorted(p.name for p in emb.iterdir()) == [".dinoclust-embeddings", parts[0].name]

    fake_models(load=loads(FakeEmbedder))
    again = run(*args, "--no-cache")  # the finished part alone spares its 4 images the model
    assert again.exit_code == 0, again.output
    assert "(12 images, 0 skipped, 8 newly embedded, 4 kept from the last run or the cache)" in (
        again.output
    )
    whole = files_of(emb)

    for i in range(12, 18):
        make_image(tmp_path / "in" / f"{i:02d}.png", (20 * i % 256, 200, 100))
    fake_models(load=loads(StopsAtBatch))
    assert interrupted(*args, "--no-cache").startswith(f"Interrupted: {emb} is as it was, plus ")
    assert {k: v for k, v in files_of(emb).items() if k in whole} == whole  # not a byte changed
