"""Rows served without the model (a warm cache, an embed rerun) are read a chunk at a time, just
before they are handed out: their thumbnails and previews are never all in memory at once."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import generator.storage.store as store_module
from generator.commands.embed import embed_collection
from generator.config import EmbedConfig
from generator.engines import local
from generator.engines.local import EmbedOptions, LocalEngine
from generator.ingest.discover import discover
from generator.storage.cache import EmbeddingCache
from generator.storage.store import StoredRows, StoreWriter, _PartCursor
from generator.types import Row, no_progress
from tests.helpers import FakeEmbedder, make_image

OPTIONS = EmbedOptions(thumb_size=64, batch_size=4, preview_size=96)


def photos(root: Path, n: int = 10) -> Path:
    """Photos larger than a 96 px preview, and every third one small enough to need none."""
    for i in range(n):
        size = (60, 45) if i % 3 == 2 else (200, 150)
        make_image(root / f"p{i:02d}.jpg", (20 * i, 100, 200 - 10 * i), size, noise=20, seed=i)
    return root


def fields(row: Row) -> tuple:
    vector = None if row.vector is None else row.vector.tolist()
    return (row.rel, row.sha256, row.size, row.thumb, row.thumb_size, vector, row.preview,
            row.preview_size)  # fmt: skip


def warm_run(images, cache_dir: Path) -> tuple[LocalEngine, list[Row]]:
    with closing(EmbeddingCache(cache_dir)) as cache:
        engine = LocalEngine(FakeEmbedder(), cache, OPTIONS)
        return engine, list(engine.run(images, no_progress))


def test_a_warm_run_reads_thumbnails_and_previews_a_chunk_at_a_time(tmp_path, monkeypatch) -> None:
    images = discover([photos(tmp_path / "photos")]).images
    _, first = warm_run(images, tmp_path / "cache")
    assert sum(row.preview is not None for row in first) == 7  # the three small ones need none
    monkeypatch.setattr(local, "CHUNK", 4)
    monkeypatch.setattr(store_module, "SERVE_BATCH", 3)  # the cache's part read 3 rows at a time
    real, calls, handed = StoredRows.fetch, [], []
    real_restart, restarts = _PartCursor._restart, []

    def spy(self, digests):
        calls.append((len(digests), len(handed)))
        return real(self, digests)

    def restart(self):
        restarts.append(self.path)
        real_restart(self)

    monkeypatch.setattr(StoredRows, "fetch", spy)
    monkeypatch.setattr(_PartCursor, "_restart", restart)
    with closing(EmbeddingCache(tmp_path / "cache")) as cache:
        engine = LocalEngine(FakeEmbedder(), cache, OPTIONS)
        for row in engine.run(images, no_progress):
            handed.append(row)
    assert (engine.embedded, engine.served) == (0, 10)
    # each chunk's vectors, thumbnails and previews are read just before its first row goes out
    assert calls == [(4, 0), (4, 4), (2, 8)]
    assert len(restarts) == 1  # the cache's one part, read forward once
    assert [fields(r) for r in handed] == [fields(r) for r in first]


def test_a_thumbnail_gone_from_the_cache_meanwhile_is_decoded_again(
    tmp_path, monkeypatch, caplog
) -> None:
    images = discover([photos(tmp_path / "photos", n=4)]).images
    _, first = warm_run(images, tmp_path / "cache")
    real = StoredRows.fetch

    def vectors_only(self, digests):
        vectors, _, previews = real(self, digests)
        return vectors, {}, previews

    monkeypatch.setattr(StoredRows, "fetch", vectors_only)
    with caplog.at_level(logging.WARNING):
        engine, again = warm_run(images, tmp_path / "cache")
    assert engine.embedded == 0  # the vectors were still there
    assert [fields(r) for r in again] == [fields(r) for r in first]
    assert caplog.text.count("its cached thumbnail went missing; decoding it again") == 4


def embed(folder: Path, out: Path):
    config = EmbedConfig(inputs=(folder,), output=out, thumb_size=64, preview_size=96)
    return embed_collection(config, embedder=FakeEmbedder())


def read(store: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(store.glob("part-*.parquet")))


def test_an_embed_rerun_reads_the_parts_forward_a_chunk_at_a_time(tmp_path, monkeypatch) -> None:
    folder = photos(tmp_path / "photos")
    monkeypatch.setattr(store_module, "PART_ROWS", 4)  # parts of 4, 4 and 2 rows
    monkeypatch.setattr(store_module, "SERVE_BATCH", 3)  # a part is read 3 rows at a time
    monkeypatch.setattr(local, "CHUNK", 3)
    embed(folder, tmp_path / "emb")
    first = read(tmp_path / "emb")
    fetched, restarts, written = [], [], []
    real_fetch, real_restart, real_add = StoredRows.fetch, _PartCursor._restart, StoreWriter.add

    def fetch(self, digests):
        fetched.append((len(digests), len(written)))
        return real_fetch(self, digests)

    def restart(self):
        restarts.append(self.path.name)
        real_restart(self)

    def add(self, row):
        written.append(row.rel)
        real_add(self, row)

    monkeypatch.setattr(StoredRows, "fetch", fetch)
    monkeypatch.setattr(_PartCursor, "_restart", restart)
    monkeypatch.setattr(StoreWriter, "add", add)
    again = embed(folder, tmp_path / "emb")
    assert (again.embedded, again.kept) == (0, 10)
    assert fetched == [(3, 0), (3, 3), (3, 6), (1, 9)]  # each chunk read as its turn comes
    assert restarts == [f"part-g0001-{i:05d}.parquet" for i in range(3)]  # each read once
    assert read(tmp_path / "emb").equals(first)
    assert sum(p is not None for p in first.column("preview").to_pylist()) == 7
