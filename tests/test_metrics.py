"""Issue 5: quality metrics, stable ids, known labels, duplicates, exports — end to end with the
fake embedder, every number checked against scikit-learn computed here from the exported files."""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from generator.analysis import duplicates
from generator.analysis import metrics as gm
from generator.analysis.analyse import analyse, match_ids
from generator.analysis.duplicates import find_duplicates
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.errors import InputError
from generator.ingest.discover import Discovery
from generator.ingest.labels import TOP_LEVEL, assign_labels, read_labels
from generator.types import SourceImage
from tests.helpers import FakeEmbedder, make_colour_folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("metrics")
    photos = make_colour_folder(root / "photos", per_colour=5)
    shutil.copy(photos / "red" / "red_0.png", photos / "red" / "red_copy.png")
    config = BuildConfig(
        inputs=(photos,), output=root / "site", labels="folders", export_embeddings=True, k_max=7
    )
    result = build_site(config, embedder=FakeEmbedder())
    return root / "site", result.report


def test_quality_metrics_match_scikit_learn(built) -> None:
    site, report = built
    coords = np.load(site / "pca.npy")
    assert coords.shape == (len(report["images"]), report["pca"]["n_components"])
    for k in report["k_values"]:
        c = report["clusterings"][str(k)]
        labels = np.array(c["labels"])
        m = c["metrics"]
        assert set(m) >= {"inertia", "silhouette", "calinski_harabasz", "davies_bouldin"}
        centres = np.stack([coords[labels == i].mean(axis=0) for i in range(k)])
        assert m["inertia"] == pytest.approx(((coords - centres[labels]) ** 2).sum(), abs=1e-5)
        assert m["silhouette"] == pytest.approx(skm.silhouette_score(coords, labels), abs=1e-5)
        assert m["calinski_harabasz"] == pytest.approx(
            skm.calinski_harabasz_score(coords, labels), rel=1e-5
        )
        assert m["davies_bouldin"] == pytest.approx(
            skm.davies_bouldin_score(coords, labels), abs=1e-5
        )
        distances = np.linalg.norm(coords - centres[labels], axis=1)
        np.testing.assert_allclose(c["distances"], distances, atol=1e-5)


def test_label_metrics_and_tables_match_scikit_learn(built) -> None:
    site, report = built
    n = len(report["images"])
    truth = [p.split("/")[0] for p in (i["path"] for i in report["images"])]
    assert report["labels"] == truth
    assert report["label_names"] == ["blue", "green", "red"]
    for k in report["k_values"]:
        c = report["clusterings"][str(k)]
        table = np.array(c["label_table"])
        assert table.shape == (3, k) and table.sum() == n
        assert table.sum(axis=0).tolist() == c["sizes"]
        expected = skm.cluster.contingency_matrix(truth, c["labels"])
        used = [i for i in range(k) if c["sizes"][i]]
        np.testing.assert_array_equal(table[:, used], expected)
        m = c["metrics"]
        assert m["purity"] == pytest.approx(expected.max(axis=0).sum() / n, abs=1e-6)
        assert m["ari"] == pytest.approx(skm.adjusted_rand_score(truth, c["labels"]), abs=1e-6)
        assert m["nmi"] == pytest.approx(
            skm.normalized_mutual_info_score(truth, c["labels"]), abs=1e-6
        )
        rows = list(csv.reader(io.StringIO((site / f"tables/labels_k{k}.csv").read_text())))
        assert rows[0] == ["label", *(f"cluster {i}" for i in range(k)), "total"]
        assert rows[-1][-1] == str(n)
        assert sum(int(r[-1]) for r in rows[1:-1]) == n
        md = (site / f"tables/labels_k{k}.md").read_text().splitlines()
        assert md[-1].startswith("| total |") and md[-1].endswith(f"| {n} |")
    assert report["clusterings"]["3"]["metrics"]["purity"] == 1.0  # the colours are separable


def test_metrics_csv_one_row_per_k(built) -> None:
    site, report = built
    rows = list(csv.DictReader(io.StringIO((site / "metrics.csv").read_text())))
    assert [int(r["k"]) for r in rows] == report["k_values"]
    for row in rows:
        m = report["clusterings"][row["k"]]["metrics"]
        for key in ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "purity"):
            assert float(row[key]) == pytest.approx(m[key])
        assert row["suggested"] == str(int(int(row["k"]) == report["suggested_k"]))


def test_suggested_k_follows_its_rule(built) -> None:
    _, report = built
    scores = {k: report["clusterings"][str(k)]["metrics"]["silhouette"] for k in report["k_values"]}
    best = max(scores.values())
    assert report["suggested_k"] == min(k for k, s in scores.items() if s == best)
    assert report["suggested_k"] == 3
    assert "highest mean silhouette" in report["suggested_k_rule"]
    assert "smaller k" in report["suggested_k_rule"]
    assert (
        gm.suggest_k({2: {"silhouette": 0.5}, 3: {"silhouette": 0.5}, 4: {"silhouette": 0.1}}) == 2
    )
    assert gm.suggest_k({2: {"silhouette": None}}) is None


def test_embeddings_export_in_images_order(built) -> None:
    site, report = built
    embeddings = np.load(site / "embeddings.npy")
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (len(report["images"]), 16)  # the fake model's width
    coords = np.load(site / "pca.npy")
    np.testing.assert_allclose(coords[:, :3], report["points"], atol=1e-5)


def test_duplicates_are_listed(built) -> None:
    _, report = built
    paths = [i["path"] for i in report["images"]]
    exact = [[paths[i] for i in g] for g in report["duplicates"]["exact"]]
    assert exact == [["red/red_0.png", "red/red_copy.png"]]
    assert report["duplicates"]["near_threshold"] == 0.97


def test_provenance(built) -> None:
    _, report = built
    p = report["provenance"]
    assert p["weights_id"] == "fake:1" and p["precision"] == "fp32" and p["seed"] == 0
    assert p["pca_components"] == report["pca"]["n_components"]
    assert p["labels"] == "folders"
    assert p["packages"]["scikit-learn"] and p["packages"]["numpy"]


def test_stable_ids_are_a_maximal_overlap_assignment() -> None:
    rng = np.random.default_rng(3)
    means = rng.normal(0, 6, size=(6, 20))
    features = np.concatenate([m + rng.normal(0, 1, size=(15, 20)) for m in means])
    result = analyse(features, k_max=8, seed=0)
    ks = sorted(result.clusterings)
    assert list(result.clusterings[2].sizes) == sorted(result.clusterings[2].sizes, reverse=True)
    for before, after in itertools.pairwise(ks):
        prev, new = result.clusterings[before].labels, result.clusterings[after].labels
        assert sorted(set(new.tolist())) == list(range(after))  # k distinct ids, none shared
        overlap = np.zeros((before, after), dtype=int)
        np.add.at(overlap, (prev, new), 1)
        kept = sum(overlap[i, i] for i in range(before))
        best = max(
            sum(overlap[i, perm[i]] for i in range(before))
            for perm in itertools.permutations(range(after), before)
        )
        assert kept == best


def test_match_ids_gives_every_cluster_its_own_id() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = int(rng.integers(3, 9))
        previous = rng.integers(0, k - 1, size=40)
        labels = rng.integers(0, k, size=40)
        mapping = match_ids(previous, labels, k)
        assert sorted(mapping.tolist()) == list(range(k))


def test_silhouette_sample_above_threshold(monkeypatch) -> None:
    monkeypatch.setattr(gm, "SILHOUETTE_SAMPLE", 30)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 12))
    result = analyse(features, k_max=3, seed=5)
    labels = result.clusterings[3].labels
    expected = skm.silhouette_score(result.coords, labels, sample_size=30, random_state=5)
    assert result.clusterings[3].metrics["silhouette"] == pytest.approx(expected)


def test_identical_features_leave_metrics_undefined() -> None:
    result = analyse(np.ones((5, 8), dtype=np.float32), k_max=3, seed=0)
    assert result.clusterings[3].metrics["silhouette"] is None
    assert gm.suggest_k({k: c.metrics for k, c in result.clusterings.items()}) is None


def test_near_duplicates_by_cosine() -> None:
    features = np.array([[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], float)
    found = find_duplicates(["a", "b", "c", "c", "e"], features)
    assert found.exact == ((2, 3),)
    assert found.near == ((0, 1),)  # 2 and 3 are one content: not a near-duplicate pair


@pytest.mark.parametrize("seed", range(4))
def test_near_duplicate_groups_are_the_connected_components_of_the_cosine_graph(
    seed, monkeypatch
) -> None:
    """Blocks of 600 similarities (a few rows each) must give the components of the whole graph,
    chains included (a ~ b ~ c with a ≁ c is one group)."""
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    base = rng.normal(size=(250, 6))
    near = base[rng.integers(0, 250, 90)] + 0.02 * rng.normal(size=(90, 6))
    chain = base[:1] + np.linspace(0, 0.4, 12)[:, None] * rng.normal(size=(1, 6))
    features = np.concatenate([base, near, chain])
    monkeypatch.setattr(duplicates, "BLOCK_ENTRIES", 600)
    found = find_duplicates([f"d{i}" for i in range(len(features))], features, threshold=0.995)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    _, label = connected_components((unit @ unit.T >= 0.995).astype(np.int8), directed=False)
    expected = sorted(
        tuple(int(i) for i in np.flatnonzero(label == c))
        for c in np.unique(label)
        if (label == c).sum() > 1
    )
    assert list(found.near) == expected and len(expected) > 10


def _found(*images: tuple[str, str]) -> Discovery:
    return Discovery(tuple(SourceImage(Path(rel), rel, folder) for rel, folder in images), ())


def test_folder_labels() -> None:
    source = read_labels("folders")
    found = _found(("cats/a.png", "cats"), ("cats/sub/b.png", "cats"), ("top.png", ""))
    assert assign_labels(source, found).by_rel == {
        "cats/a.png": "cats",
        "cats/sub/b.png": "cats",
        "top.png": TOP_LEVEL,
    }


def test_csv_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text('path,label\n./a.png,cat\nsub\\b.png,"dog, big"\nunused.png,x\n')
    source = read_labels(str(path))
    found = _found(("a.png", ""), ("sub/b.png", "sub"))
    assert assign_labels(source, found).by_rel == {"a.png": "cat", "sub/b.png": "dog, big"}
    with pytest.raises(InputError, match=r"1 image\(s\) have no row, first c\.png"):
        assign_labels(source, _found(("a.png", ""), ("c.png", "")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.png,cat\nb.png\n", r"labels\.csv, line 2: expected 2 columns \(path,label\), found 1"),
        ("a.png,cat\nb.png,x,y\n", r"line 2: expected 2 columns .* found 3"),
        ("a.png,cat\n\n,dog\n", r"line 3: empty path"),
        ("a.png,\n", r"line 1: empty label"),
        ("a.png,cat\na.png,dog\n", r"line 2: a\.png already has the label 'cat' \(line 1\)"),
        ("path,label\n", r"labels\.csv: no path,label rows"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_labels(str(path))


def test_missing_or_binary_csv(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_labels(str(tmp_path / "nope.csv"))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(InputError, match="cannot read it as UTF-8"):
        read_labels(str(tmp_path / "bin.csv"))


def test_cli_labels_error_is_exit_1(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from generator.cli import cli

    photos = make_colour_folder(tmp_path / "photos", per_colour=1)
    bad = tmp_path / "l.csv"
    bad.write_text("red/red_0.png,red,extra\n")
    result = CliRunner().invoke(
        cli, ["build", str(photos), "-o", str(tmp_path / "site"), "--labels", str(bad), "-q"]
    )
    assert result.exit_code == 1
    assert f"Error: {bad}, line 1: expected 2 columns" in result.output


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=3)
    outputs = []
    for name in ("a", "b"):
        config = BuildConfig(
            inputs=(photos,), output=tmp_path / name, labels="folders", export_embeddings=True
        )
        build_site(config, embedder=FakeEmbedder())
        outputs.append(tmp_path / name)
    files = sorted(p.relative_to(outputs[0]) for p in outputs[0].rglob("*") if p.is_file())
    assert Path("metrics.csv") in files and Path("tables/labels_k2.md") in files
    for rel in files:
        assert (outputs[0] / rel).read_bytes() == (outputs[1] / rel).read_bytes(), rel
    report = json.loads((outputs[0] / "report.json").read_text())
    assert report["labels"] is not None
