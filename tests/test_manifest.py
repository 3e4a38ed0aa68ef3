"""`dinoclust embed --manifest FILE`, and a killed run losing only its unfinished part (the store
writer both engines share)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import generator.storage.store as store_module
from generator.cli import cli
from generator.commands.embed import embed_collection
from generator.config import EmbedConfig
from generator.errors import ConfigError, InputError
from tests.helpers import FakeEmbedder, make_colour_folder


@pytest.fixture
def photos(tmp_path) -> Path:
    return make_colour_folder(tmp_path / "photos", per_colour=3)


def embed_manifest(manifest: Path, out: Path, embedder=None):
    config = EmbedConfig(inputs=(), manifest=manifest, output=out, batch_size=2)
    return embed_collection(config, embedder=embedder or FakeEmbedder())


def test_a_text_manifest_keeps_its_order_and_relative_paths(photos, tmp_path) -> None:
    manifest = tmp_path / "files.txt"
    manifest.write_text("# two of them\nphotos/red/red_1.png\n\nphotos/blue/blue_0.png\n")
    result = embed_manifest(manifest, tmp_path / "emb")
    table = pq.read_table(tmp_path / "emb")
    assert table.column("path").to_pylist() == ["photos/red/red_1.png", "photos/blue/blue_0.png"]
    assert result.embedded == 2


def test_a_parquet_manifest_of_absolute_paths_shows_them_relative(photos, tmp_path) -> None:
    manifest = tmp_path / "files.parquet"
    paths = [str(photos / "green" / "green_2.png"), str(photos / "red" / "red_0.png")]
    pq.write_table(pa.table({"path": paths}), manifest)
    embed_manifest(manifest, tmp_path / "emb")
    rows = pq.read_table(tmp_path / "emb").column("path").to_pylist()
    assert rows == ["green/green_2.png", "red/red_0.png"]


def test_bad_manifests_are_named(photos, tmp_path) -> None:
    twice = tmp_path / "twice.txt"
    twice.write_text("photos/red/red_1.png\nphotos/red/red_1.png\n")
    with pytest.raises(InputError) as raised:
        embed_manifest(twice, tmp_path / "emb")
    assert str(raised.value) == (
        f"{twice}, entry 2: photos/red/red_1.png is listed twice (first at entry 1). List each "
        "image once."
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(InputError, match="the manifest lists no images"):
        embed_manifest(empty, tmp_path / "emb")
    with pytest.raises(ConfigError, match="Give either image INPUTS or --manifest FILE"):
        EmbedConfig(inputs=(photos,), manifest=twice, output=tmp_path / "emb")
    run = CliRunner().invoke(cli, ["embed", "--ray-address", "auto", "--manifest", str(twice)])
    assert run.exit_code == 2 and "--ray-address only applies with --engine ray." in run.output
    # --workers is the decode processes without Ray (the actors with it): the manifest is read
    run = CliRunner().invoke(cli, ["embed", "--workers", "2", "--manifest", str(twice)])
    assert run.exit_code == 1 and "is listed twice" in run.output


class Dies(FakeEmbedder):
    """Killed (as by Ctrl-C) during its `at`-th batch."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def __call__(self, pixels):
        if self.calls + 1 == self.at:
            raise KeyboardInterrupt
        return super().__call__(pixels)


def test_a_killed_run_loses_only_its_unfinished_part(photos, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "PART_ROWS", 4)
    store = tmp_path / "emb"
    config = EmbedConfig(inputs=(photos,), output=store, batch_size=2)
    with pytest.raises(KeyboardInterrupt):  # batches 1-2 made part 0 (4 rows), batch 3 died
        embed_collection(config, embedder=Dies(at=4))
    assert sorted(p.name for p in store.iterdir()) == [
        ".dinoclust-embeddings",
        "part-g0001-00000.parquet",
    ]
    rerun = embed_collection(config, embedder=FakeEmbedder())
    assert (rerun.kept, rerun.embedded, rerun.rows) == (4, 5, 9)
    paths = pq.read_table(store).column("path").to_pylist()
    assert len(set(paths)) == len(paths) == 9
    assert sorted(p.name for p in store.glob("*.parquet")) == [
        "part-g0002-00000.parquet",
        "part-g0002-00001.parquet",
        "part-g0002-00002.parquet",
    ]
    fresh = tmp_path / "fresh"
    embed_collection(EmbedConfig(inputs=(photos,), output=fresh), embedder=FakeEmbedder())
    assert pq.read_table(store).to_pylist() == pq.read_table(fresh).to_pylist()
