"""Similar images: each image's 12 nearest neighbours by cosine, from the near-duplicate pass."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from generator.analysis import duplicates
from generator.analysis.duplicates import NEIGHBOURS, find_similar
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.site.payload import page_neighbours
from tests.helpers import FakeEmbedder, make_image


def brute_force(features: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Top `count` by cosine in float64, self excluded, ties to the smaller index."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit.astype(np.float64) @ unit.astype(np.float64).T
    np.fill_diagonal(sims, -np.inf)
    order = np.array([np.lexsort((np.arange(len(row)), -row))[:count] for row in sims])
    return order, np.take_along_axis(sims, order, axis=1)


def assert_same_neighbours(indices, similarity, features, count) -> None:
    """Equal similarities may come in either order between float32 and float64 products, so rows
    are compared by similarity value, and the indices wherever the values are distinct."""
    expected, expected_sims = brute_force(features, count + 1)  # one more: ties at the edge
    np.testing.assert_allclose(similarity, expected_sims[:, :count], atol=1e-5)
    for row, (got, want, sims) in enumerate(zip(indices, expected, expected_sims, strict=True)):
        distinct = np.abs(np.diff(np.concatenate([[2.0], sims, [-2.0]]))) > 1e-5
        clear = (distinct[:-1] & distinct[1:])[:count]  # tied with neither neighbour in the order
        want = want[:count]
        assert list(got[clear]) == list(want[clear]), row
        assert row not in got


@pytest.mark.parametrize("sample", [13, 16, duplicates.SAMPLE_COLUMNS])
@pytest.mark.parametrize("block", [50, 600, duplicates.BLOCK_ENTRIES])
def test_neighbours_equal_a_brute_force_top_12_whatever_the_blocks(
    block, sample, monkeypatch
) -> None:
    """Whatever the blocks and however few columns bound each row's 12th largest value."""
    rng = np.random.default_rng(block + sample)
    monkeypatch.setattr(duplicates, "SAMPLE_COLUMNS", sample)
    base = rng.normal(size=(80, 8)).astype(np.float32)
    features = np.concatenate([base, base[:10], base[5:8] * 3])  # exact and scaled copies: ties
    monkeypatch.setattr(duplicates, "BLOCK_ENTRIES", block)
    _, found = find_similar([f"d{i}" for i in range(len(features))], features)
    assert found.indices.shape == (len(features), NEIGHBOURS)
    assert_same_neighbours(found.indices, found.similarity, features, NEIGHBOURS)
    for i in range(10):  # a copy (exact or scaled: cosine 1) is the most similar image
        copies = {80 + i} | ({85 + i} if 5 <= i < 8 else set())
        assert found.indices[i, 0] in copies and found.similarity[i, 0] == pytest.approx(1)


def test_ties_go_to_the_smaller_index() -> None:
    features = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]], dtype=np.float32)
    _, found = find_similar([f"d{i}" for i in range(6)], features, count=3)
    assert found.indices.tolist()[:2] == [[1, 2, 3], [0, 2, 3]]
    assert found.indices.tolist()[5] == [0, 1, 2]


def test_fewer_images_fewer_neighbours() -> None:
    features = np.eye(4, dtype=np.float32) + 0.1
    _, found = find_similar(["a", "b", "c", "d"], features)
    assert found.indices.shape == (4, 3)
    _, one = find_similar(["a"], features[:1])
    assert one.indices.shape == (1, 0)


def decode(packed: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """What neighbours.js does, in Python."""
    raw = np.frombuffer(base64.b64decode(packed["data"]), dtype=np.uint8).reshape(
        -1, packed["bytes"]
    )
    values = np.zeros(len(raw), dtype=np.int64)
    for column in range(packed["bytes"]):
        values = values * 256 + raw[:, column]
    base = 2 ** packed["sim_bits"]
    step = (packed["hi"] - packed["lo"]) / (base - 1) if packed["hi"] > packed["lo"] else 0
    shape = (n, packed["count"])
    return (values // base).reshape(shape), (packed["lo"] + (values % base) * step).reshape(shape)


@pytest.mark.parametrize("n", [20, 1000, 100_000, 140_000])
def test_the_page_gets_the_neighbours_packed_within_budget(n) -> None:
    """3 bytes a neighbour up to 2^17 images (4.8 MB of base64 at 100,000), 4 beyond."""
    rng = np.random.default_rng(n)
    indices = rng.integers(0, n, size=(n, NEIGHBOURS))
    sims = np.round(np.sort(rng.uniform(0.2, 1.0, size=(n, NEIGHBOURS)), axis=1)[:, ::-1], 6)
    # what page_neighbours reads of a Report
    report = SimpleNamespace(images=[None] * n, neighbours=indices, neighbour_similarity=sims)
    packed = page_neighbours(report)  # type: ignore[arg-type]
    got_indices, got_sims = decode(packed, n)
    assert (got_indices == indices).all()
    step = (packed["hi"] - packed["lo"]) / (2 ** packed["sim_bits"] - 1)
    assert np.abs(got_sims - sims).max() <= step / 2 + 1e-9
    assert packed["bytes"] == (3 if n <= 1 << 17 else 4)
    if n == 100_000:
        assert len(json.dumps(packed)) <= 4_800_200  # ≤ 5 MB of page data at 100k images


def test_report_neighbours_match_the_exported_embeddings(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(20):
        make_image(photos / f"p{i:02d}.png", (10 * i, 200 - 7 * i, 90 + 3 * i), noise=20, seed=i)
    make_image(photos / "copy.png", (0, 200, 90), noise=20, seed=0)  # same bytes as p00.png
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", export_embeddings=True)
    report = build_site(config, embedder=FakeEmbedder()).report
    features = np.load(tmp_path / "site" / "embeddings.npy")
    indices = np.array(report["neighbours"])
    assert indices.shape == (21, 12)
    assert_same_neighbours(indices, np.array(report["neighbour_similarity"]), features, 12)
    paths = [image["path"] for image in report["images"]]
    copy, original = paths.index("copy.png"), paths.index("p00.png")
    assert report["neighbours"][copy][0] == original
    assert report["neighbour_similarity"][copy][0] == 1.0
    site = json.loads((tmp_path / "site" / "report.json").read_text(encoding="utf-8"))
    assert site["neighbours"] == report["neighbours"]
    data_js = (tmp_path / "site" / "data" / "neighbours.js").read_text(encoding="utf-8")
    packed = json.loads(data_js.split("window.dinoclustNeighbours = ", 1)[1].rstrip(";\n"))
    assert decode(packed, 21)[0].tolist() == report["neighbours"]
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    block = page.split('id="dinoclust-data">', 1)[1].split("</script>", 1)[0]
    assert "neighbours" not in json.loads(block)  # the page loads them on the first preview
    assert 'id="dinoclust-neighbours"' not in page
