"""The embedding cache: a warm rebuild embeds nothing, survives damage, and keys on content."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.engines.local import EmbedOptions
from generator.storage import cachestore, store
from generator.storage.cache import (
    DB_NAME,
    OLD_DB_NAME,
    EmbeddingCache,
    namespace,
    preview_spec,
    thumb_spec,
)
from tests.helpers import FakeEmbedder, make_image


def build(photos: Path, out: Path, cache: Path | None, embedder=None, **options):
    config = BuildConfig(inputs=(photos,), output=out, cache_dir=cache, **options)
    embedder = embedder or FakeEmbedder()
    return build_site(config, embedder=embedder), embedder


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_warm_rebuild_embeds_nothing_and_gives_the_same_site(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    cold, first = build(colour_folder, tmp_path / "a", cache)
    assert (cold.embedded, first.calls) == (12, 1)
    warm, second = build(colour_folder, tmp_path / "b", cache)
    assert (warm.embedded, second.calls) == (0, 0)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_new_images_only_are_embedded(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    make_image(colour_folder / "new" / "n1.png", (250, 250, 0), noise=5, seed=1)
    make_image(colour_folder / "new" / "n2.png", (250, 250, 0), noise=5, seed=2)
    result, embedder = build(colour_folder, tmp_path / "site", cache)
    assert result.embedded == 2 and result.images == 14
    assert embedder.calls == 1


def test_renamed_and_moved_files_are_hits(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    before, _ = build(colour_folder, tmp_path / "a", cache)
    shutil.move(colour_folder / "red", colour_folder / "crimson")
    (colour_folder / "blue" / "blue_0.png").rename(colour_folder / "green" / "was_blue.png")
    after, embedder = build(colour_folder, tmp_path / "b", cache)
    assert (after.embedded, embedder.calls) == (0, 0)
    assert "crimson/red_0.png" in [i["path"] for i in after.report["images"]]
    assert sorted(before.report["points"]) == sorted(after.report["points"])


def test_report_options_rerender_without_the_model(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    result, embedder = build(colour_folder, tmp_path / "site", cache, k_max=4, title="New", seed=3)
    assert embedder.calls == 0
    assert sorted(result.report["clusterings"]) == ["2", "3", "4"]


def test_thumb_size_change_redecodes_but_does_not_embed(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    result, embedder = build(colour_folder, tmp_path / "site", cache, thumb_size=48)
    assert embedder.calls == 0
    assert all(max(i["thumb_width"], i["thumb_height"]) == 48 for i in result.report["images"])


def test_other_weights_or_precision_are_other_entries(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    other = FakeEmbedder()
    other.info = replace(FakeEmbedder.info, precision="bf16")
    result, _ = build(colour_folder, tmp_path / "site", cache, embedder=other)
    assert result.embedded == 12
    assert namespace(other.info) != namespace(FakeEmbedder.info)
    assert namespace(replace(FakeEmbedder.info, device="cuda")) == namespace(FakeEmbedder.info)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_cache_is_discarded_and_rebuilt(colour_folder, tmp_path, damage, caplog):
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    db = cache / DB_NAME
    data = db.read_bytes()
    db.write_bytes(
        b"this is not a database" * 100 if damage == "garbage" else data[: len(data) // 3]
    )
    result, embedder = build(colour_folder, tmp_path / "site", cache)
    assert result.images == 12
    assert "is damaged" in caplog.text  # the index is rebuilt from the images, not trusted ...
    assert embedder.calls == 0  # ... but the vectors live in the Parquet parts, apart from it
    assert sqlite3.connect(cache / DB_NAME).execute("SELECT count(*) FROM files").fetchone() == (
        12,
    )
    again, embedder = build(colour_folder, tmp_path / "site", cache)
    assert (again.embedded, embedder.calls) == (0, 0)  # and whole again afterwards
    assert rows_in(cache) == (12, 1)  # the images decoded again were not stored twice


def test_no_cache_writes_nothing(colour_folder, tmp_path) -> None:
    build(colour_folder, tmp_path / "site", None)
    assert not any(tmp_path.glob("**/*.sqlite"))
    assert not any(tmp_path.glob("**/rows"))


def test_cache_holds_paths_but_the_site_does_not(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    rows = sqlite3.connect(cache / DB_NAME).execute("SELECT path FROM files").fetchall()
    assert len(rows) == 12 and all(Path(r[0]).is_absolute() for r in rows)
    for name, data in tree(tmp_path / "site").items():
        assert str(tmp_path).encode() not in data, name


WARM_RUN = """
import sys
from generator.cli import main
sys.argv = ["dinoclust", "build", sys.argv[1], "-o", sys.argv[2], "--weights", "random", "-q"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("torch imported:", "torch" in sys.modules, "sklearn imported:", "sklearn" in sys.modules)
"""


@pytest.mark.model
def test_warm_cli_rebuild_imports_neither_torch_nor_sklearn(colour_folder, tmp_path) -> None:
    def run(out: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", WARM_RUN, str(colour_folder), str(tmp_path / out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    assert run("cold") == "torch imported: True sklearn imported: True"
    assert run("warm") == "torch imported: False sklearn imported: False"
    cold = json.loads((tmp_path / "cold" / "report.json").read_text())
    warm = json.loads((tmp_path / "warm" / "report.json").read_text())
    assert cold == warm


def test_analysis_round_trips_exactly_and_is_reused(colour_folder, tmp_path) -> None:
    from generator.analysis.analyse import analyse
    from generator.analysis.cached import (
        analysis_key,
        cached_analysis,
        pack_analysis,
        unpack_analysis,
    )
    from generator.config import BuildConfig

    features = np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32)
    original = analyse(features, 5, 0)
    copy = unpack_analysis(pack_analysis(original))
    np.testing.assert_array_equal(copy.coords, original.coords)
    np.testing.assert_array_equal(copy.explained_variance_ratio, original.explained_variance_ratio)
    assert (copy.feature_dim, copy.distinct_points, copy.notes) == (
        original.feature_dim,
        original.distinct_points,
        original.notes,
    )
    for k, c in original.clusterings.items():
        d = copy.clusterings[k]
        assert (d.k, d.sizes, d.inertia, d.metrics) == (c.k, c.sizes, c.inertia, c.metrics)
        for name in ("labels", "centers", "distances"):
            np.testing.assert_array_equal(getattr(d, name), getattr(c, name))
    assert analysis_key(features, 5, 0) != analysis_key(features, 6, 0)
    assert analysis_key(features, 5, 0) != analysis_key(features, 5, 1)
    assert analysis_key(features, 5, 0) != analysis_key(features + 1e-3, 5, 0)
    cache = EmbeddingCache(tmp_path / "cache")
    assert cache.analysis("nope") is None
    config = BuildConfig(inputs=(tmp_path,), k_max=5, seed=0)
    sizes = original.clusterings[5].sizes
    assert cached_analysis(features, config, cache).clusterings[5].sizes == sizes
    key = analysis_key(features, 5, 0)
    assert unpack_analysis(cache.analysis(key)).clusterings[5].sizes == sizes
    with cache.db:
        cache.db.execute("UPDATE analyses SET data = x'00'")
    again = cached_analysis(features, config, cache)  # damaged entry: computed again, no crash
    assert again.clusterings[5].sizes == original.clusterings[5].sizes
    assert unpack_analysis(cache.analysis(key)).clusterings[5].sizes == again.clusterings[5].sizes


def parts_in(cache: Path) -> list[Path]:
    return sorted((cache / "rows").glob("*/*/part-*.parquet"))


def rows_in(cache: Path) -> tuple[int, int]:
    """(distinct digests, parts) of the cached rows."""
    parts = parts_in(cache)
    digests = [d for p in parts for d in pq.read_table(p, columns=["sha256"])["sha256"].to_pylist()]
    return len(set(digests)), len(parts)


def test_the_cache_is_in_wal_mode(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    db = sqlite3.connect(cache / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_a_cache_error_that_is_not_about_the_file_is_said_too(tmp_path, caplog) -> None:
    """sqlite3.InterfaceError (a call SQLite refuses) closed the cache without a word: the build
    went on without it and nobody knew why the next one decoded everything again."""
    from generator.storage.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "cache")
    cache._trouble(sqlite3.InterfaceError("bad parameter"))
    assert cache.db is None and (tmp_path / "cache" / DB_NAME).is_file()  # closed, kept
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(
        f"cannot use the embedding cache {tmp_path / 'cache' / DB_NAME} (bad parameter); "
        "building without it this time (it is kept as it is)."
    )


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_locked_cache_is_kept_and_the_build_goes_on_without_it(
    colour_folder, tmp_path, monkeypatch, caplog, journal
) -> None:
    import generator.storage.cache

    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    assert rows_in(cache) == (12, 1)
    monkeypatch.setattr(generator.storage.cache, "LOCK_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(cache / DB_NAME, isolation_level=None)
    holder.execute(f"PRAGMA journal_mode={journal}")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result, _ = build(colour_folder, tmp_path / "site", cache, k_max=4)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.images == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot use the embedding cache {cache / DB_NAME} (database is")
    assert "building without it this time (it is kept as it is)" in warnings[0]
    assert not any("damaged" in w for w in warnings)
    assert rows_in(cache) == (12, 1)  # nothing lost, nothing stored twice
    again, embedder = build(colour_folder, tmp_path / "site", cache)
    assert (again.embedded, embedder.calls) == (0, 0)


def test_a_read_only_cache_is_read_and_kept(colour_folder, tmp_path, monkeypatch, caplog) -> None:
    import generator.storage.cache

    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    before = (cache / DB_NAME).read_bytes()
    connect = sqlite3.connect

    def read_only(path, timeout):  # root ignores file modes: open it the way a read-only FS would
        return connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)

    monkeypatch.setattr(generator.storage.cache.sqlite3, "connect", read_only)
    result, embedder = build(colour_folder, tmp_path / "site", cache, k_max=3)
    assert (result.images, result.embedded, embedder.calls) == (12, 0, 0)  # vectors were read
    assert "readonly database" in caplog.text and "building without it" in caplog.text
    monkeypatch.undo()
    assert rows_in(cache) == (12, 1)
    assert (cache / DB_NAME).read_bytes() == before


def test_an_error_on_a_sound_database_does_not_discard_it(
    colour_folder, tmp_path, monkeypatch, caplog
) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    calls = []

    def failing(self):
        calls.append(1)
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(EmbeddingCache, "_connect", failing)
    result, embedder = build(colour_folder, tmp_path / "site", cache)
    assert result.images == 12 and calls == [1]
    assert embedder.calls == 0  # decoded again (no hash index), the vectors served from parts
    assert "damaged" not in caplog.text  # quick_check said the file is sound: kept
    monkeypatch.undo()
    assert rows_in(cache) == (12, 1)
    db = sqlite3.connect(cache / DB_NAME)
    assert db.execute("SELECT count(*) FROM files").fetchone() == (12,)


def test_an_unusable_cache_folder_is_a_clear_error(colour_folder, tmp_path) -> None:
    from click.testing import CliRunner

    from generator.cli import cli
    from generator.errors import ConfigError

    (tmp_path / "afile").write_text("x")
    folder = tmp_path / "afile" / "cache"
    with pytest.raises(ConfigError) as caught:
        build(colour_folder, tmp_path / "site", folder)
    assert str(caught.value) == (
        f"Cannot use the cache folder {folder} (Not a directory). Choose a writable folder "
        "with --cache-dir DIR, or build without the cache with --no-cache."
    )
    assert not (tmp_path / "site").exists()
    args = ["build", str(colour_folder), "-o", str(tmp_path / "s"), "--cache-dir", str(folder)]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 1
    assert run.output.splitlines()[-1] == f"Error: {caught.value}"


def test_vectors_and_thumbs_are_keyed_by_the_decoder_and_analyses_by_libraries(
    monkeypatch,
) -> None:
    import generator.analysis.cached as cached
    import generator.ingest.imaging as imaging
    import generator.storage.cache as cache_module

    features = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    space = namespace(FakeEmbedder.info)
    spec = cache_module.thumb_spec(192)
    key = cached.analysis_key(features, 4, 0)
    real = imaging.package_version

    def bump(package: str) -> None:
        for module in (cached, imaging):  # each reads the versions it depends on
            monkeypatch.setattr(
                module,
                "package_version",
                lambda p, bumped=package: "999" if p == bumped else real(p),
            )
        imaging.decode_version.cache_clear()

    for package in ("pillow", "pillow-heif"):
        bump(package)
        assert namespace(FakeEmbedder.info) != space and cache_module.thumb_spec(192) != spec
        assert cached.analysis_key(features, 4, 0) == key
    for package in ("numpy", "scikit-learn", "scipy"):
        bump(package)
        assert cached.analysis_key(features, 4, 0) != key
        assert namespace(FakeEmbedder.info) == space
    monkeypatch.undo()
    imaging.decode_version.cache_clear()
    assert namespace(FakeEmbedder.info) == space


# --- the rows as Parquet parts (cachestore.py) ------------------------------------------------


def test_the_sqlite_file_holds_only_the_hash_index_and_the_analyses(colour_folder, tmp_path):
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "site", cache)
    db = sqlite3.connect(cache / DB_NAME)
    tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert sorted(t[0] for t in tables) == ["analyses", "files"]
    (part,) = parts_in(cache)
    data = pq.read_table(part)
    assert data.schema.names == list(store.COLUMNS)
    assert data.num_rows == 12 and len(set(data["sha256"].to_pylist())) == 12
    assert data["path"].to_pylist() == data["sha256"].to_pylist()  # no path of yours in it
    meta = {k.decode(): v.decode() for k, v in data.schema.metadata.items()}
    assert meta[store.META_WEIGHTS_ID] == FakeEmbedder.info.weights_id
    options = EmbedOptions(thumb_size=192, preview_size=800)
    assert part.parent == cachestore.space_folder(
        cache,
        namespace(FakeEmbedder.info, options.decode_side),
        thumb_spec(192, options.decode_side),
        preview_spec(800),
    )
    assert not list(part.parent.glob(".*"))  # no temporary part left behind


def test_an_old_v1_cache_file_is_left_alone(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / OLD_DB_NAME
    sqlite3.connect(old).executescript(
        "CREATE TABLE embeddings (namespace TEXT, sha256 TEXT, vector BLOB);"
        "INSERT INTO embeddings VALUES ('ns', 'x', x'00');"
    )
    before = old.read_bytes()
    result, embedder = build(colour_folder, tmp_path / "site", cache)
    assert (result.embedded, embedder.calls) == (12, 1)  # never read
    warm, embedder = build(colour_folder, tmp_path / "site", cache)
    assert (warm.embedded, embedder.calls) == (0, 0)
    assert old.read_bytes() == before
    assert {"cache-v1.sqlite", "cache-v2.sqlite", "rows"} <= {p.name for p in cache.iterdir()}


def test_a_warm_build_with_previews_gives_the_same_site(colour_folder, tmp_path) -> None:
    cache = tmp_path / "cache"
    options = {"thumb_size": 64, "preview_size": 96}
    cold, _ = build(colour_folder, tmp_path / "a", cache, **options)
    warm, embedder = build(colour_folder, tmp_path / "b", cache, **options)
    assert (cold.embedded, warm.embedded, embedder.calls) == (12, 0, 0)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert len(parts_in(cache)) == 1


def test_a_thumbnail_size_change_keeps_the_vectors_in_a_sibling_space(colour_folder, tmp_path):
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "a", cache)
    small, embedder = build(colour_folder, tmp_path / "b", cache, thumb_size=48)
    assert (small.embedded, embedder.calls) == (0, 0)
    spaces = sorted(p.parent.name for p in parts_in(cache))
    assert len(set(spaces)) == 2 and len(spaces) == 2  # one part each, one namespace
    again, embedder = build(colour_folder, tmp_path / "c", cache, thumb_size=48)
    assert (again.embedded, embedder.calls) == (0, 0)
    assert tree(tmp_path / "b") == tree(tmp_path / "c")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_part_is_removed_and_its_rows_made_again(
    colour_folder, tmp_path, damage, caplog
) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "a", cache)
    make_image(colour_folder / "new" / "n1.png", (250, 250, 0), noise=5, seed=1)
    build(colour_folder, tmp_path / "a", cache)
    first, second = parts_in(cache)
    data = second.read_bytes()
    second.write_bytes(b"not parquet" * 50 if damage == "garbage" else data[: len(data) // 2])
    result, embedder = build(colour_folder, tmp_path / "b", cache)
    assert (result.images, result.embedded, embedder.calls) == (13, 1, 1)  # only n1.png again
    assert f"cached rows {second} are damaged" in caplog.text
    assert not second.exists() and first.exists()
    assert rows_in(cache) == (13, 2)
    caplog.clear()
    again, embedder = build(colour_folder, tmp_path / "c", cache)
    assert (again.embedded, embedder.calls) == (0, 0) and "WARNING" not in caplog.text
    assert tree(tmp_path / "b") == tree(tmp_path / "c")


def test_a_part_that_cannot_be_read_is_kept_and_left_out(
    colour_folder, tmp_path, monkeypatch, caplog
) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "a", cache)
    (part,) = parts_in(cache)
    before = part.read_bytes()
    real = store.open_store

    def failing(location):
        if location == part:
            raise PermissionError(13, "Permission denied", str(part))
        return real(location)

    monkeypatch.setattr(cachestore, "open_store", failing)
    result, embedder = build(colour_folder, tmp_path / "b", cache)
    assert (result.images, result.embedded) == (12, 12)  # built without that part
    assert f"cannot read the cached rows {part} ([Errno 13] Permission denied" in caplog.text
    assert "they are kept as they are" in caplog.text
    assert part.read_bytes() == before
    monkeypatch.undo()
    assert rows_in(cache) == (12, 2)  # the rows made again went into a part of their own
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_a_part_failing_while_served_is_decoded_again(colour_folder, tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    build(colour_folder, tmp_path / "a", cache)
    (part,) = parts_in(cache)
    real = cachestore.CacheSpace.index

    def index_then_lose(self):  # another build compacts it away once it is indexed
        rows = real(self)
        part.unlink(missing_ok=True)
        return rows

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cachestore.CacheSpace, "index", index_then_lose)
        result, embedder = build(colour_folder, tmp_path / "b", cache)
    assert result.images == 12 and result.embedded == 12 and not result.skipped
    assert f"cannot read the cached rows {part}" in caplog.text
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert rows_in(cache) == (12, 1)  # the rows made again were kept
    again, embedder = build(colour_folder, tmp_path / "c", cache)
    assert (again.embedded, embedder.calls) == (0, 0)


def test_rows_with_non_finite_vectors_are_not_kept_nor_served(tmp_path, caplog) -> None:
    from generator.types import Row

    meta = store.model_metadata(FakeEmbedder.info, 192, None)
    space = cachestore.CacheSpace(tmp_path / "space", meta)
    thumb = make_thumb()
    good = Row("a", "a" * 64, (4, 3), thumb, (4, 3), np.ones(4, np.float32))
    bad = replace(good, sha256="b" * 64, vector=np.array([np.nan, 1, 1, 1], np.float32))
    space.add([good, bad, replace(good, sha256="c" * 64, thumb=None)])
    space.finish()
    again = cachestore.CacheSpace(tmp_path / "space", meta)
    assert again.has(["a" * 64, "b" * 64, "c" * 64]) == ({"a" * 64},) * 2 + (set(),)
    np.testing.assert_array_equal(again.vector("a" * 64), np.ones(4))
    # a part someone else wrote with NaN in it: left out as a whole, with a warning, and kept
    foreign = tmp_path / "space" / "part-9.parquet"
    rows = [replace(good, sha256="d" * 64), replace(bad, sha256="e" * 64)]
    pq.write_table(store.table(rows, 4, meta), foreign)
    third = cachestore.CacheSpace(tmp_path / "space", meta)
    assert third.has(["a" * 64, "d" * 64, "e" * 64])[0] == {"a" * 64}
    assert f"cannot read the cached rows {foreign}" in caplog.text and foreign.exists()
    (ours,) = [p for p in (tmp_path / "space").glob("part-*") if p != foreign]
    before = pq.read_table(ours)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cachestore, "COMPACT_AT", 0)
        third.finish()  # compacts what passed the checks only
    (merged,) = [p for p in (tmp_path / "space").glob("part-*") if p != foreign]
    assert merged != ours and not ours.exists() and foreign.exists()
    assert pq.read_table(merged).equals(before)


def make_thumb() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(out, "WEBP")
    return out.getvalue()


def test_a_read_only_rows_folder_builds_without_saving(
    colour_folder, tmp_path, monkeypatch, caplog
) -> None:
    import pyarrow.parquet

    cache = tmp_path / "cache"

    def read_only(where, *args, **kwargs):  # root ignores file modes: fail as a read-only FS
        raise OSError(30, "Read-only file system", str(where))

    monkeypatch.setattr(pyarrow.parquet, "ParquetWriter", read_only)
    cold, _ = build(colour_folder, tmp_path / "a", cache)
    assert (cold.images, cold.embedded) == (12, 12)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "Read-only file system" in warnings[0]
    assert warnings[0].startswith("cannot write into the embedding cache ")
    assert "building without saving new results there this time" in warnings[0]
    assert parts_in(cache) == [] and not list((cache / "rows").rglob(".*.tmp"))
    monkeypatch.undo()
    build(colour_folder, tmp_path / "b", cache)
    warm, embedder = build(colour_folder, tmp_path / "c", cache)
    assert (warm.embedded, embedder.calls) == (0, 0)
    assert tree(tmp_path / "a") == tree(tmp_path / "c")


def test_two_builds_at_once_both_succeed_and_a_digest_is_served_once(
    colour_folder, tmp_path
) -> None:
    import threading

    cache = tmp_path / "cache"
    go = threading.Barrier(2)
    results: dict[str, object] = {}

    class Waiting(FakeEmbedder):
        def __call__(self, pixels):  # both builds embed before either has written its part
            go.wait(timeout=60)
            return super().__call__(pixels)

    def run(name: str) -> None:
        try:
            results[name] = build(colour_folder, tmp_path / name, cache, embedder=Waiting())[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [getattr(results[n], "embedded", results[n]) for n in "ab"] == [12, 12]
    assert rows_in(cache) == (12, 2)  # each wrote its own part under its own name
    warm, embedder = build(colour_folder, tmp_path / "c", cache)
    assert (warm.embedded, embedder.calls, warm.images) == (0, 0, 12)
    assert tree(tmp_path / "a") == tree(tmp_path / "c") == tree(tmp_path / "b")


def test_many_small_parts_are_compacted(colour_folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cachestore, "COMPACT_AT", 2)
    cache = tmp_path / "cache"
    counts = []
    for i in range(4):  # each build adds one image, so one small part
        make_image(colour_folder / "new" / f"n{i}.png", (250, 25 * i, 0), noise=5, seed=i)
        build(colour_folder, tmp_path / "site", cache)
        counts.append(rows_in(cache))
    assert counts == [(13, 1), (14, 2), (15, 1), (16, 2)]  # the third build merged three into one
    warm, embedder = build(colour_folder, tmp_path / "warm", cache)
    assert (warm.embedded, embedder.calls, warm.images) == (0, 0, 16)
    assert tree(tmp_path / "site") == tree(tmp_path / "warm")


@pytest.mark.parametrize(
    ("mode", "options"),
    [("RGB", {}), ("RGB", {"lossless": True}), ("RGBA", {}), ("RGBA", {"lossless": True})],
)
def test_a_served_images_size_is_read_from_its_webp_header(mode, options) -> None:
    import io

    from PIL import Image

    from generator.ingest.imaging import thumb_dimensions

    for size in ((1, 1), (191, 77), (16383, 2)):
        out = io.BytesIO()
        Image.new(mode, size).save(out, "WEBP", **options)
        data = out.getvalue()
        assert store._webp_size(data) == size == thumb_dimensions(data)
    out = io.BytesIO()
    Image.new("RGB", (5, 3)).save(out, "PNG")
    assert store._webp_size(out.getvalue()) is None
    assert store.image_size(out.getvalue()) == (5, 3)  # not WebP: Pillow reads it
