"""The streamed report (`build --embeddings` above SAMPLED_ROWS rows) against the in-memory one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import generator.analysis.streamed as streamed
from generator.analysis.analyse import analyse
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.storage.store import open_store


def blobs(n: int = 90, dim: int = 24, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, dim))
    return (centres[np.arange(n) % 3] + rng.normal(0, 0.5, size=(n, dim))).astype(np.float32)


def write_store(
    folder: Path, vectors: np.ndarray, parts: int = 3, group: int | None = None
) -> Path:
    """`parts` Parquet files, each of row groups of `group` rows (None: one per file)."""
    folder.mkdir()
    n, dim = vectors.shape
    for i, rows in enumerate(np.array_split(np.arange(n), parts)):
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors[rows].ravel()), dim)
        paths = [f"img/{j:04d}.png" for j in rows]
        table = pa.table({"path": paths, "embedding": embedding})
        pq.write_table(table, folder / f"{i}.parquet", row_group_size=group)
    return folder


def test_the_streamed_pca_and_labels_equal_the_in_memory_ones(tmp_path) -> None:
    vectors = blobs()
    store = open_store(write_store(tmp_path / "emb", vectors))
    projection = streamed.project(store, sample_size=len(vectors))  # the sample: every row
    assert projection.rows == 90 and list(projection.sample) == list(range(90))
    memory = analyse(vectors, 6, 0)
    coords = projection(vectors)
    assert coords.shape == memory.coords.shape == (90, 24)
    signs = np.sign((coords * memory.coords).sum(axis=0))  # the same PCA up to sign
    np.testing.assert_allclose(coords * signs, memory.coords, atol=1e-4)
    np.testing.assert_allclose(
        projection.explained_variance_ratio, memory.explained_variance_ratio, atol=1e-9
    )
    fitted = streamed.fit(projection, vectors, 6, 0)
    sizes = streamed.assign(store, projection, fitted, tmp_path / "assignments.parquet")
    for k, clustering in memory.clusterings.items():
        assert fitted.clusterings[k].labels.tolist() == clustering.labels.tolist()
        assert sizes[k] == list(clustering.sizes)
    table = pq.read_table(tmp_path / "assignments.parquet")
    assert table.num_rows == 90
    assert table.column("cluster_k3").to_pylist() == memory.clusterings[3].labels.tolist()
    np.testing.assert_allclose(
        table.column("distance_k3").to_numpy(), memory.clusterings[3].distances, atol=1e-3
    )


def test_the_sample_is_deterministic_whatever_the_parts(tmp_path) -> None:
    vectors = blobs()
    one = open_store(write_store(tmp_path / "one", vectors, parts=1))
    five = open_store(write_store(tmp_path / "five", vectors, parts=5))
    groups = open_store(write_store(tmp_path / "groups", vectors, parts=2, group=7))
    assert len(streamed.chunks(groups)) == 14  # 45 rows a part: six row groups of 7, one of 3
    a, b = streamed.project(one, sample_size=20), streamed.project(five, sample_size=20)
    c = streamed.project(groups, sample_size=20)
    assert a.sample.tolist() == b.sample.tolist() == c.sample.tolist() and len(a.sample) == 20
    np.testing.assert_array_equal(a.sample_vectors, vectors[a.sample])
    np.testing.assert_array_equal(c.sample_vectors, vectors[a.sample])
    np.testing.assert_allclose(c.components, a.components, atol=1e-9)
    ranks = streamed.path_rank([f"img/{j:04d}.png" for j in range(90)])
    assert a.sample.tolist() == sorted(np.argsort(ranks, kind="stable")[:20].tolist())


def test_above_the_threshold_the_site_holds_the_sample_and_the_totals(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(streamed, "SAMPLED_ROWS", 50)
    monkeypatch.setattr(streamed, "SAMPLE_SIZE", 30)
    store = write_store(tmp_path / "emb", blobs())
    site = tmp_path / "site"
    build_site(BuildConfig(embeddings=store, output=site, k_max=4))
    report = json.loads((site / "report.json").read_text())
    assert report["sampled"] is True and report["rows"] == 90 and report["skipped_rows"] == 0
    assert len(report["images"]) == 30 and len(report["clusterings"]["3"]["labels"]) == 30
    for k in ("2", "3", "4"):
        assert sum(report["clusterings"][k]["sizes_all"]) == 90
        assert sum(report["clusterings"][k]["sizes"]) == 30
    assert report["notes_i18n"] == [{"key": "note_sampled", "args": {"rows": "90", "shown": "30"}}]
    assignments = pq.read_table(site / "assignments.parquet")
    assert assignments.num_rows == 90
    assert assignments.column_names == ["path"] + [
        f"{what}_k{k}" for k in (2, 3, 4) for what in ("cluster", "distance")
    ]
    assert len(list((site / "thumbs").iterdir())) == 30
    again = tmp_path / "again"
    build_site(BuildConfig(embeddings=store, output=again, k_max=4))
    assert (again / "report.json").read_bytes() == (site / "report.json").read_bytes()
    assert (again / "assignments.parquet").read_bytes() == (
        site / "assignments.parquet"
    ).read_bytes()


def test_a_sampled_rebuild_keeps_what_someone_added_to_the_site(tmp_path, monkeypatch) -> None:
    """The sampled report once published without carrying the old site's other files over."""
    monkeypatch.setattr(streamed, "SAMPLED_ROWS", 50)
    monkeypatch.setattr(streamed, "SAMPLE_SIZE", 30)
    store = write_store(tmp_path / "emb", blobs())
    site = tmp_path / "site"
    build_site(BuildConfig(embeddings=store, output=site, k_max=4))
    (site / "CNAME").write_text("clusters.example.org", encoding="utf-8")
    (site / "static" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    build_site(BuildConfig(embeddings=store, output=site, k_max=3))
    assert (site / "CNAME").read_text(encoding="utf-8") == "clusters.example.org"
    assert (site / "static" / "logo.svg").read_text(encoding="utf-8") == "<svg/>"
    assert sorted(json.loads((site / "report.json").read_text())["clusterings"]) == ["2", "3"]


@pytest.mark.parametrize("rows", [50])
def test_below_the_threshold_nothing_is_sampled(tmp_path, rows) -> None:
    store = write_store(tmp_path / "emb", blobs(rows))
    build_site(BuildConfig(embeddings=store, output=tmp_path / "site", k_max=3))
    report = json.loads((tmp_path / "site" / "report.json").read_text())
    assert "sampled" not in report and len(report["images"]) == rows
    # every row's clusters in assignments.parquet here too, in the report's order
    table = pq.read_table(tmp_path / "site" / "assignments.parquet")
    assert table.column_names == ["path"] + [
        f"{what}_k{k}" for k in (2, 3) for what in ("cluster", "distance")
    ]
    assert table.column("path").to_pylist() == [image["path"] for image in report["images"]]
    for k in ("2", "3"):
        clustering = report["clusterings"][k]
        assert table.column(f"cluster_k{k}").to_pylist() == clustering["labels"]
        np.testing.assert_allclose(
            table.column(f"distance_k{k}").to_numpy(), clustering["distances"], atol=1e-5
        )
    assert table.schema.field("cluster_k2").type == pa.int32()
    build_site(BuildConfig(embeddings=store, output=tmp_path / "again", k_max=3))
    again = (tmp_path / "again" / "assignments.parquet").read_bytes()
    assert again == (tmp_path / "site" / "assignments.parquet").read_bytes()


def test_each_stage_logs_its_rate_and_the_time_left(caplog) -> None:
    now = [0.0]
    seen: list[int] = []
    rate = streamed._Logged("Assigning every row", 10_000_000, seen.append, lambda: now[0])
    with caplog.at_level("INFO", logger="generator.analysis.streamed"):
        rate(1_000_000)  # at once: no line yet
        now[0] = 40.0
        rate(1_000_000)
        now[0] = 50.0
        rate(1_000_000)  # ten seconds after the last line: none
        now[0] = 200.0
        rate(7_000_000)
    assert seen == [1_000_000, 1_000_000, 1_000_000, 7_000_000]
    assert [r.getMessage() for r in caplog.records] == [
        "Assigning every row: 2,000,000 of 10,000,000 (50,000/s, about 3 min left)",
        "Assigning every row: 10,000,000 of 10,000,000 (50,000/s, done in 3 min)",
    ]


def test_above_the_threshold_export_embeddings_is_refused_before_any_work(
    tmp_path, monkeypatch
) -> None:
    """A sampled build cannot write N x 384 for every row (it once ignored the option without a
    word): refused before anything is written, in the CLI's words and in the API's."""
    from generator.errors import ConfigError

    monkeypatch.setattr(streamed, "SAMPLED_ROWS", 50)
    store = write_store(tmp_path / "emb", blobs())
    site = tmp_path / "site"
    with pytest.raises(ConfigError) as caught:
        build_site(BuildConfig(embeddings=store, output=site, export_embeddings=True))
    said = (
        "{}: {} holds 90 rows, more than the 50 a build holds in memory, so the page shows a "
        "sample. Their vectors are in its Parquet files already (the embedding column), and each "
        "row's clusters go to assignments.parquet: build without {}."
    )
    assert str(caught.value) == said.format("--export-embeddings", store, "--export-embeddings")
    api = "export_embeddings=True"
    assert caught.value.api == said.format(api, store, api)
    assert not site.exists()


def test_a_sampled_site_says_when_its_sample_has_fewer_distinct_points_than_clusters(
    tmp_path, monkeypatch
) -> None:
    """The in-memory analysis says so; the sampled one said only that it was a sample."""
    monkeypatch.setattr(streamed, "SAMPLED_ROWS", 50)
    monkeypatch.setattr(streamed, "SAMPLE_SIZE", 30)
    two = np.repeat(blobs(2), 45, axis=0)  # 90 rows, two distinct vectors
    store = write_store(tmp_path / "emb", two)
    build_site(BuildConfig(embeddings=store, output=tmp_path / "site", k_max=4))
    report = json.loads((tmp_path / "site" / "report.json").read_text())
    assert report["notes_i18n"] == [
        {"key": "note_sampled", "args": {"rows": "90", "shown": "30"}},
        {"key": "note_distinct", "args": {"distinct": "2", "n": "30"}},
    ]
