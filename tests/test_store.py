"""The Parquet store: `dinoclust embed` writes it, `build --embeddings` reads it (or another
tool's Parquet), the two-step site equals the one-step site, and bad input is named exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.build import build_site
from generator.commands.embed import embed_collection
from generator.config import BuildConfig, EmbedConfig
from generator.errors import InputError, OutputError
from generator.ingest.imaging import decode_version
from generator.storage.store import MARKER
from generator.version import __version__
from tests.helpers import FakeEmbedder, make_colour_folder, make_image


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def embed(inputs, out: Path, embedder=None, **options):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    embedder = embedder or FakeEmbedder()
    return embed_collection(EmbedConfig(inputs=inputs, output=out, **options), embedder=embedder)


def build_from(store: Path, out: Path, **options):
    return build_site(BuildConfig(embeddings=store, output=out, **options))


def read(store: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(store.glob("part-*.parquet")))


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = make_colour_folder(tmp_path / "photos", per_colour=3)
    (folder / "blue" / "broken.png").write_bytes(b"not a png")
    return folder


def test_the_schema_and_metadata_are_exact(photos, tmp_path) -> None:
    result = embed(photos, tmp_path / "emb")
    assert (result.rows, result.images, len(result.skipped), result.embedded) == (10, 9, 1, 9)
    files = sorted((tmp_path / "emb").glob("part-*.parquet"))
    assert [f.name for f in files] == ["part-g0001-00000.parquet"]
    assert (tmp_path / "emb" / MARKER).is_file()
    schema = pq.read_schema(files[0])
    expected = pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("sha256", pa.string()),
            pa.field("embedding", pa.list_(pa.float32(), 16)),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("thumb", pa.binary()),
            pa.field("error", pa.string()),
            pa.field("preview", pa.binary()),
        ]
    )
    assert schema.remove_metadata() == expected
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert meta["dinoclust.model"] == "fake-model"
    assert meta["dinoclust.weights_id"] == "fake:1"
    assert meta["dinoclust.precision"] == "fp32"
    assert json.loads(meta["dinoclust.preprocess"]) == {
        "mean": [0.485, 0.456, 0.406],
        "resize": "bilinear, aspect ratio not kept",
        "size": 224,
        "std": [0.229, 0.224, 0.225],
    }
    assert meta["dinoclust.thumb_size"] == "192"
    assert meta["dinoclust.preview_size"] == "800"
    assert meta["dinoclust.decoder"] == decode_version()
    assert meta["dinoclust.backend"] == "torch"
    assert meta["dinoclust.device"] == "cpu"
    assert meta["dinoclust.version"] == __version__
    assert json.loads(meta["dinoclust.errors_i18n"]) == {
        "blue/broken.png": {"key": "skip_not_image", "args": {}}
    }
    rows = read(tmp_path / "emb").to_pylist()
    assert [r["path"] for r in rows] == [
        "blue/blue_0.png",
        "blue/blue_1.png",
        "blue/blue_2.png",
        "blue/broken.png",
        *[f"{c}/{c}_{i}.png" for c in ("green", "red") for i in range(3)],
    ]
    broken = rows[3]
    assert (broken["embedding"], broken["sha256"], broken["thumb"], broken["width"]) == (
        None,
        None,
        None,
        None,
    )
    assert broken["error"] == "not an image that Pillow can read"
    good = rows[0]
    assert len(good["sha256"]) == 64 and good["sha256"] == good["sha256"].lower()
    assert (good["width"], good["height"], good["error"]) == (64, 48, None)
    assert good["thumb"][:4] == b"RIFF" and good["thumb"][8:12] == b"WEBP"
    assert len(good["embedding"]) == 16


@pytest.mark.parametrize("options", [{}, {"labels": "folders", "k_max": 4, "lang": "ja"}])
def test_two_steps_give_the_one_step_site_byte_for_byte(photos, tmp_path, options) -> None:
    build_site(
        BuildConfig(inputs=(photos,), output=tmp_path / "one", **options), embedder=FakeEmbedder()
    )
    embed(photos, tmp_path / "emb")
    result = build_from(tmp_path / "emb", tmp_path / "two", **options)
    assert result.embedded == 0 and result.images == 9 and len(result.skipped) == 1
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert [name for name in one if one[name] != two[name]] == []


def large_photos(root: Path) -> Path:
    """Photos larger than the default 800 px preview, and one small enough to need none."""
    for i, (name, colour) in enumerate([("red", (200, 40, 40)), ("blue", (40, 40, 200))]):
        for j in range(3):
            size = (1200 + 40 * j, 900) if j < 2 else (160, 120)
            make_image(root / name / f"{name}_{j}.jpg", colour, size=size, noise=20, seed=i + j)
    return root


def test_two_steps_keep_the_previews_of_large_photos_byte_for_byte(tmp_path) -> None:
    photos = large_photos(tmp_path / "photos")
    build_site(BuildConfig(inputs=(photos,), output=tmp_path / "one"), embedder=FakeEmbedder())
    embed(photos, tmp_path / "emb")
    build_from(tmp_path / "emb", tmp_path / "two")
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    previews = sorted(name for name in one if name.startswith("previews/"))
    assert len(previews) == 4  # the four large photos; the small ones show their thumbnail
    assert sorted(one) == sorted(two)
    assert [name for name in one if one[name] != two[name]] == []
    table = read(tmp_path / "emb")
    stored = [p for p in table.column("preview").to_pylist() if p is not None]
    assert sorted(stored) == sorted(one[name] for name in previews)
    assert read(tmp_path / "emb").schema.metadata[b"dinoclust.preview_size"] == b"800"
    none = build_from(tmp_path / "emb", tmp_path / "three", preview_size=0)
    assert not (tmp_path / "three" / "previews").exists() and none.images == 6


def test_a_rerun_keeps_the_stored_previews_without_decoding(tmp_path) -> None:
    photos = large_photos(tmp_path / "photos")
    embed(photos, tmp_path / "emb")
    first = read(tmp_path / "emb")
    again = embed(photos, tmp_path / "emb", embedder=FakeEmbedder())
    assert (again.embedded, again.kept) == (0, 6)
    assert read(tmp_path / "emb").equals(first)
    with pytest.raises(OutputError, match=r"another preview_size \(800; this run: 600\)\. Use"):
        embed(photos, tmp_path / "emb", preview_size=600)


def test_two_inputs_keep_their_prefixes_and_folder_labels(tmp_path) -> None:
    a = make_colour_folder(tmp_path / "a", per_colour=2)
    b = make_colour_folder(tmp_path / "b", per_colour=2)
    options = {"labels": "folders", "k_max": 3}
    build_site(
        BuildConfig(inputs=(a, b), output=tmp_path / "one", **options), embedder=FakeEmbedder()
    )
    embed((a, b), tmp_path / "emb")
    build_from(tmp_path / "emb", tmp_path / "two", **options)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_inputs_of_one_name_keep_their_folder_labels_through_a_store(tmp_path) -> None:
    """trip1/photos and trip2/photos are prefixed with two parts each, and a loose file with
    none: the store records the folders' prefixes, so `--labels folders` reads its paths as the
    walk did (with the folder count alone, every image was labelled 'photos')."""
    one = make_colour_folder(tmp_path / "trip1" / "photos", per_colour=2)
    make_image(one / "top.png", (250, 250, 250), noise=12, seed=9)
    two = tmp_path / "trip2" / "photos"
    for i in range(3):
        make_image(two / f"beach_{i}.png", (230, 200, 120), noise=12, seed=i)
    loose = make_image(tmp_path / "loose.png", (10, 10, 10), noise=12, seed=3)
    inputs, options = (one, two, loose), {"labels": "folders", "k_max": 3}
    build_site(
        BuildConfig(inputs=inputs, output=tmp_path / "one", **options), embedder=FakeEmbedder()
    )
    embed(inputs, tmp_path / "emb")
    metadata = read(tmp_path / "emb").schema.metadata
    assert metadata[b"dinoclust.prefixes"].decode() == '["trip1/photos", "trip2/photos"]'
    result = build_from(tmp_path / "emb", tmp_path / "two", **options)
    report = result.report
    labels = {i["path"]: label for i, label in zip(report["images"], report["labels"], strict=True)}
    assert labels == {
        **{f"trip1/photos/{c}/{c}_{i}.png": c for c in ("blue", "green", "red") for i in (0, 1)},
        "trip1/photos/top.png": "trip1/photos",
        **{f"trip2/photos/beach_{i}.png": "trip2/photos" for i in range(3)},
        "loose.png": "(top level)",
    }
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_file_inputs_of_one_name_are_top_level_through_a_store(tmp_path) -> None:
    """Files given as inputs have no folder: trip1/x.png and trip2/x.png (told apart by their
    parents) are "(top level)", as the walk labels them; the store says it has no folder inputs
    (an empty list), where a missing key would send it back to the rule for older stores."""
    inputs = tuple(
        make_image(tmp_path / trip / "x.png", colour, noise=12, seed=i)
        for i, (trip, colour) in enumerate([("trip1", (200, 40, 40)), ("trip2", (40, 40, 200))])
    ) + (make_image(tmp_path / "third.png", (40, 200, 40), noise=12, seed=5),)
    options = {"labels": "folders", "k_max": 2}
    build_site(
        BuildConfig(inputs=inputs, output=tmp_path / "one", **options), embedder=FakeEmbedder()
    )
    embed(inputs, tmp_path / "emb")
    metadata = read(tmp_path / "emb").schema.metadata
    assert (metadata[b"dinoclust.prefixed"], metadata[b"dinoclust.prefixes"]) == (b"true", b"[]")
    result = build_from(tmp_path / "emb", tmp_path / "two", **options)
    report = result.report
    labels = {i["path"]: label for i, label in zip(report["images"], report["labels"], strict=True)}
    assert labels == dict.fromkeys(["third.png", "trip1/x.png", "trip2/x.png"], "(top level)")
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_one_input_records_no_prefixes(photos, tmp_path) -> None:
    embed(photos, tmp_path / "emb")
    metadata = read(tmp_path / "emb").schema.metadata
    assert metadata[b"dinoclust.prefixed"] == b"false" and b"dinoclust.prefixes" not in metadata


def foreign(path: Path, n: int = 12, dim: int = 512, **columns) -> Path:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim))
    vectors = [list(centres[i % 3] + 0.05 * rng.normal(size=dim)) for i in range(n)]
    data = {"path": [f"img/{i:03d}.jpg" for i in range(n)], "embedding": vectors, **columns}
    table = pa.table(data, schema=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_a_foreign_parquet_of_float64_lists_builds(tmp_path) -> None:
    foreign(tmp_path / "emb" / "vectors.parquet")
    assert pq.read_schema(tmp_path / "emb" / "vectors.parquet").field("embedding").type == (
        pa.list_(pa.float64())
    )
    result = build_from(tmp_path / "emb", tmp_path / "site", k_max=4)
    report = result.report
    assert result.images == 12 and report["model"]["name"] == "unknown model"
    assert report["model"]["feature_dim"] == 512 and report["provenance"]["feature_dim"] == 512
    assert report["model"]["weights"] == "unknown (embeddings read from Parquet, 512 dimensions)"
    assert report["provenance"]["weights_id"] == "unknown"
    assert report["model"]["weights_i18n"] == {"key": "weights_unknown", "args": {"dim": "512"}}
    labels3 = report["clusterings"]["3"]["labels"]
    assert len({labels3[i] for i in range(0, 12, 3)}) == 1  # the three centres are found
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "unknown model" in html and "512 dimensions" in html
    assert "of the 512-d features (unknown model)." in html and "512-d DINO" not in html
    thumbs = {i["thumb"] for i in report["images"]}
    assert len(thumbs) == 12  # one name tile per image
    assert all((i["thumb_width"], i["thumb_height"]) == (192, 192) for i in report["images"])
    assert all((i["width"], i["height"]) == (0, 0) for i in report["images"])


def test_missing_thumbs_come_from_images_root(tmp_path) -> None:
    root = tmp_path / "originals"
    for i in range(6):
        make_image(root / "img" / f"{i:03d}.jpg", (40 * i, 90, 200), size=(400, 200))
    foreign(tmp_path / "emb.parquet", n=6, dim=8)
    report = build_from(tmp_path / "emb.parquet", tmp_path / "site", images_root=root).report
    assert all((i["thumb_width"], i["thumb_height"]) == (192, 96) for i in report["images"])
    assert all((i["width"], i["height"]) == (400, 200) for i in report["images"])


def write_parts(folder: Path, *tables: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, table in enumerate(tables):
        pq.write_table(table, folder / f"part-{i:05d}.parquet")


def vec_table(paths, vectors, weights_id: str | None = None, fixed: int | None = None):
    kind = pa.list_(pa.float32(), fixed) if fixed else pa.list_(pa.float32())
    meta = {"dinoclust.weights_id": weights_id} if weights_id else None
    schema = pa.schema([("path", pa.string()), ("embedding", kind)], metadata=meta)
    return pa.table({"path": paths, "embedding": vectors}, schema=schema)


ok = [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    "case",
    [
        "not_parquet",
        "no_embedding",
        "mixed_rows",
        "mixed_parts",
        "nan",
        "inf",
        "duplicate",
        "weights",
    ],
)
def test_bad_parquet_is_named_and_the_previous_site_survives(tmp_path, case) -> None:
    site = tmp_path / "site"
    foreign(tmp_path / "good.parquet", n=6, dim=4)
    build_from(tmp_path / "good.parquet", site, title="previous")
    before = tree(site)
    emb = tmp_path / "emb"
    first = emb / "part-00000.parquet"
    second = emb / "part-00001.parquet"
    if case == "not_parquet":
        emb.mkdir()
        first.write_text("path,embedding\na.jpg,1\n")
        expected = f"{first}: not a Parquet file ("
    elif case == "no_embedding":
        write_parts(emb, pa.table({"path": ["a.jpg"], "vector": [[1.0]]}))
        expected = (
            f"{first}: no 'embedding' column (it has: path, vector). A Parquet file for "
            "--embeddings needs at least 'path' and 'embedding'."
        )
    elif case == "mixed_rows":
        write_parts(emb, vec_table(["a.jpg", "b.jpg", "c.jpg"], [*ok, [1.0, 2.0, 3.0]]))
        expected = (
            f"{first}, row 2: the embedding has 3 values, but earlier ones have 2. All "
            "embeddings must have the same dimension."
        )
    elif case == "mixed_parts":
        write_parts(
            emb,
            vec_table(["a.jpg", "b.jpg"], ok, fixed=2),
            vec_table(["c.jpg"], [[1.0, 2.0, 3.0]], fixed=3),
        )
        expected = (
            f"{second}: embeddings have 3 values, but those in {first} have 2. All embeddings "
            "must have the same dimension."
        )
    elif case in ("nan", "inf"):
        bad = float("nan") if case == "nan" else float("inf")
        write_parts(
            emb, vec_table(["a.jpg"], [ok[0]]), vec_table(["b.jpg", "c.jpg"], [ok[1], [bad, 1.0]])
        )
        expected = f"{second}, row 1: the embedding holds NaN or infinity. Fix or drop that row."
    elif case == "duplicate":
        write_parts(emb, vec_table(["a.jpg", "b.jpg"], ok), vec_table(["x.jpg", "a.jpg"], ok))
        expected = (
            f"{second}, row 1: path a.jpg appears twice (first in {first}, row 0). Each image "
            "must appear once."
        )
    else:
        write_parts(
            emb, vec_table(["a.jpg", "b.jpg"], ok, "hub:a"), vec_table(["c.jpg"], [ok[0]], "hub:b")
        )
        expected = (
            f"{second}: made with weights hub:b, but {first} with hub:a. Embeddings of different "
            "weights cannot be compared: make them again with one `dinoclust embed`."
        )
    with pytest.raises(InputError) as caught:
        build_from(emb, site)
    assert str(caught.value).startswith(expected)
    assert tree(site) == before
    assert list(tmp_path.glob(".site.dinoclust-*")) == []
    run = CliRunner().invoke(cli, ["build", "--embeddings", str(emb), "-o", str(site)])
    assert run.exit_code == 1 and run.output.splitlines()[-1].startswith(f"Error: {expected}")
    assert "Traceback" not in run.output
    assert tree(site) == before


def test_float16_lists_build_and_a_float64_beyond_float32_is_named(tmp_path) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 8))
    schema = pa.schema([("path", pa.string()), ("embedding", pa.list_(pa.float16(), 8))])
    table = pa.table({"path": [f"{i}.jpg" for i in range(6)], "embedding": vectors.tolist()})
    pq.write_table(table.cast(schema), tmp_path / "half.parquet")
    report = build_from(tmp_path / "half.parquet", tmp_path / "site", k_max=3).report
    assert report["model"]["feature_dim"] == 8 and len(report["images"]) == 6
    vectors[4, 2] = 1e300
    pq.write_table(
        pa.table({"path": [f"{i}.jpg" for i in range(6)], "embedding": vectors.tolist()}),
        tmp_path / "big.parquet",
    )
    with pytest.raises(InputError) as caught:
        build_from(tmp_path / "big.parquet", tmp_path / "site")
    assert str(caught.value) == (
        f"{tmp_path / 'big.parquet'}, row 4: the embedding holds a value too large for float32. "
        "Fix or drop that row."
    )


def test_strict_embed_leaves_the_store_as_it_was(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    (photos / "blue" / "broken.png").unlink()
    embed(photos, store)
    before = tree(store)
    (photos / "blue" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"^--strict: 1 file\(s\) could not be used, first blue"):
        embed(photos, store, strict=True)
    assert tree(store) == before


def test_absolute_paths_never_reach_the_site(tmp_path) -> None:
    write_parts(tmp_path / "emb", vec_table(["/home/me/a.jpg", "b.jpg"], ok))
    with pytest.raises(InputError, match=r"part-00000.parquet, row 0: the path /home/me/a.jpg is"):
        build_from(tmp_path / "emb", tmp_path / "site")


def test_a_rerun_keeps_unchanged_rows_embeds_changed_and_drops_missing(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    embed(photos, store)
    before = {r["path"]: r for r in read(store).to_pylist()}
    make_image(photos / "new.png", (250, 250, 0), noise=5)
    make_image(photos / "red" / "red_0.png", (10, 10, 10), noise=5)  # changed content
    (photos / "green" / "green_2.png").unlink()
    counting = FakeEmbedder()
    result = embed(photos, store, counting, cache_dir=None)
    after = {r["path"]: r for r in read(store).to_pylist()}
    assert len(after) == len(read(store)) == 10  # no duplicates
    assert "green/green_2.png" not in after and "new.png" in after
    assert result.embedded == 2 and result.kept == 7
    assert after["red/red_0.png"]["sha256"] != before["red/red_0.png"]["sha256"]
    for path in ("blue/blue_0.png", "red/red_1.png"):
        assert after[path] == before[path]
    assert [p.name for p in store.glob("part-*.parquet")] == ["part-g0002-00000.parquet"]
    again = embed(photos, store, FakeEmbedder(), overwrite=True)
    assert again.embedded == 9 and again.kept == 0
    assert {r["path"] for r in read(store).to_pylist()} == set(after)


def test_a_rerun_with_other_weights_needs_overwrite(photos, tmp_path) -> None:
    from dataclasses import replace

    store = tmp_path / "emb"
    embed(photos, store)
    other = FakeEmbedder()
    other.info = replace(FakeEmbedder.info, weights_id="fake:2")
    with pytest.raises(OutputError) as caught:
        embed(photos, store, other)
    assert str(caught.value) == (
        f"{store} holds embeddings made with another weights_id (fake:1; this run: fake:2). Use "
        "--overwrite to make them again, or write to another folder with -o."
    )
    assert embed(photos, store, other, overwrite=True).embedded == 9


def test_parts_are_cut_by_the_bytes_of_their_thumbnails_and_previews(
    photos, tmp_path, monkeypatch
) -> None:
    """A part holds at most PART_BYTES of thumbnails and previews (photos' previews would make
    10,000-row parts of gigabytes); the store reads back the same, and a rerun keeps every row."""
    import generator.storage.store as store_module

    whole = embed(photos, tmp_path / "whole")
    monkeypatch.setattr(store_module, "PART_BYTES", 1)  # every row with a thumbnail ends a part
    store = tmp_path / "emb"
    cut = embed(photos, store)
    parts = sorted(store.glob("part-*.parquet"))
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    # blue_0, blue_1, blue_2, then broken.png (no thumbnail) with green_0, ..., and the last,
    # empty part that says how many parts the generation has
    assert sizes == [1, 1, 1, 2, 1, 1, 1, 1, 1, 0]
    assert cut.rows == whole.rows == 10
    assert read(store).to_pylist() == read(tmp_path / "whole").to_pylist()
    again = embed(photos, store)
    assert (again.embedded, again.kept) == (0, 9)
    assert read(store).to_pylist() == read(tmp_path / "whole").to_pylist()


def test_a_rerun_with_another_decoder_needs_overwrite(photos, tmp_path, monkeypatch) -> None:
    """Rows decoded by another imaging.py or Pillow are not mixed with new ones (as in the cache);
    a store from before the decoder was recorded is treated the same way."""
    import generator.ingest.imaging as imaging

    store = tmp_path / "emb"
    embed(photos, store)
    now = decode_version()
    monkeypatch.setattr(imaging, "decode_version", lambda: "0123456789abcdef")
    with pytest.raises(OutputError) as caught:
        embed(photos, store)
    assert str(caught.value) == (
        f"{store} holds embeddings made with another decoder ({now}; this run: "
        "0123456789abcdef). Use --overwrite to make them again, or write to another folder "
        "with -o."
    )
    assert embed(photos, store, overwrite=True).embedded == 9
    assert read(store).schema.metadata[b"dinoclust.decoder"] == b"0123456789abcdef"


def test_a_damaged_previous_store_needs_overwrite(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    embed(photos, store)
    part = store / "part-g0001-00000.parquet"
    part.write_bytes(b"garbage")
    with pytest.raises(OutputError) as caught:
        embed(photos, store)
    assert str(caught.value).startswith(f"{part}: not a Parquet file (")
    assert str(caught.value).endswith(
        f"The previous embeddings in {store} cannot be kept: use --overwrite to make them again."
    )
    assert embed(photos, store, overwrite=True).rows == 10
    assert [p.name for p in store.glob("part-*.parquet")] == ["part-g0002-00000.parquet"]


def test_embed_never_writes_into_a_folder_that_is_not_ours(photos, tmp_path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="was not made by `dinoclust embed`"):
        embed(photos, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_an_interrupted_run_leaves_the_previous_store_readable(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    embed(photos, store)
    whole = read(store)
    # a killed second run: one part of generation 2 renamed, its last part never written
    partial = store / "part-g0002-00000.parquet"
    pq.write_table(whole.replace_schema_metadata({"dinoclust.generation": "2"}), partial)
    report = build_from(store, tmp_path / "site").report
    assert len(report["images"]) == 9
    embed(photos, store)  # the next run finishes the job
    assert [p.name for p in store.glob("part-*.parquet")] == ["part-g0003-00000.parquet"]


def test_embed_and_build_from_the_command_line(photos, tmp_path, fake_model) -> None:
    store, site = tmp_path / "emb", tmp_path / "site"
    run = CliRunner().invoke(cli, ["embed", str(photos), "-o", str(store)])
    assert run.exit_code == 0, run.output
    assert run.output.splitlines()[-1] == (
        f"Wrote 10 rows to {store}/ (9 images, 1 skipped, 9 newly embedded, 0 from the cache) in "
        + run.output.splitlines()[-1].split(" in ")[1]
    )
    assert "Build the site with: dinoclust build --embeddings" in run.output
    run = CliRunner().invoke(cli, ["build", "--embeddings", str(store), "-o", str(site), "-q"])
    assert run.exit_code == 0, run.output
    assert len(json.loads((site / "report.json").read_text())["images"]) == 9
    run = CliRunner().invoke(cli, ["build", str(photos), "--embeddings", str(store)])
    assert run.exit_code == 2 and "Give either image INPUTS or --embeddings DIR" in run.output
    run = CliRunner().invoke(cli, ["build"])
    assert run.exit_code == 2 and "Error: Missing argument 'INPUTS...'" in run.output


@pytest.mark.parametrize("part_rows", [3, 5])  # 10 rows: a last part of 1 row, or an empty one
def test_many_parts_read_back_as_one_store(photos, tmp_path, monkeypatch, part_rows) -> None:
    import generator.storage.store as store_module

    monkeypatch.setattr(store_module, "PART_ROWS", part_rows)
    embed(photos, tmp_path / "emb")
    parts = sorted(p.name for p in (tmp_path / "emb").glob("part-*.parquet"))
    assert parts == [f"part-g0001-{i:05d}.parquet" for i in range(10 // part_rows + 1)]
    assert len(read(tmp_path / "emb")) == 10
    build_site(BuildConfig(inputs=(photos,), output=tmp_path / "one"), embedder=FakeEmbedder())
    build_from(tmp_path / "emb", tmp_path / "two")
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
