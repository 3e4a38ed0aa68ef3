"""The display sample: deterministic, independent of k, every cluster of every k in it, size
min(N, M); and the page data that carries it decodes to exactly the report's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generator.analysis.analyse import analyse
from generator.analysis.sample import display_sample, hash_ranks
from generator.config import DISPLAY_POINTS, BuildConfig
from generator.errors import ConfigError
from generator.options import build_config
from generator.site.payload import ImageRecord, build_report, page_data, page_distances
from generator.site.render import render_index
from generator.types import ModelInfo
from tests import pagedata

INFO = ModelInfo("m", "w", "w:1", False, "cpu", "fp32")


def clustered_labels(n: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Labels for k = 2…10 with some tiny clusters, which a plain hash sample would miss."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(2, 11):
        labels = rng.integers(0, k - 1, size=n)
        labels[rng.choice(n, size=2, replace=False)] = k - 1  # a cluster of two images
        out[k] = labels
    return out


def test_sample_is_deterministic_covers_every_cluster_and_has_size_min_n_m() -> None:
    keys = [f"photos/{i:06d}.jpg" for i in range(20_000)]
    labels = clustered_labels(len(keys))
    sample = display_sample(keys, labels, 1_000)
    assert len(sample) == 1_000 == len(set(sample.tolist()))
    assert sample.tolist() == sorted(sample.tolist())
    for k, ids in labels.items():
        assert set(ids[sample].tolist()) == set(range(k)), k  # the two-image clusters too
    again = display_sample(list(keys), {k: v.copy() for k, v in labels.items()}, 1_000)
    assert again.tolist() == sample.tolist()
    # apart from the few points that keep a tiny cluster in, the lowest hash ranks
    ranks = hash_ranks(keys)
    lowest = set(np.argsort(ranks)[:1_000].tolist())
    assert len(lowest - set(sample.tolist())) <= 2 * len(labels)
    # independent of k: fewer k values, the same hash-ranked core
    fewer = display_sample(keys, {2: labels[2]}, 1_000)
    assert len(set(fewer.tolist()) & set(sample.tolist())) >= 1_000 - 2 * len(labels)


@pytest.mark.parametrize("m", [None, 50, 49, 200])
def test_sample_of_few_images_is_all_of_them(m: int | None) -> None:
    keys = [f"{i}.png" for i in range(50)]
    labels = clustered_labels(50)
    sample = display_sample(keys, labels, m)
    assert len(sample) == (50 if m is None else min(50, m))
    for k, ids in labels.items():
        assert set(ids[sample].tolist()) == set(range(k))


def test_hash_ranks_follow_sha256_of_the_path() -> None:
    import hashlib

    keys = ["b.png", "a.png", "c/d.png"]
    by_hash = sorted(range(3), key=lambda i: hashlib.sha256(keys[i].encode()).hexdigest())
    ranks = hash_ranks(keys)
    assert [int(ranks[i]) for i in by_hash] == [0, 1, 2]


def test_display_points_option() -> None:
    assert build_config(["x"], display_points="all").display_points is None
    assert build_config(["x"], display_points="5,000").display_points == 5_000
    assert build_config(["x"]).display_points == DISPLAY_POINTS == 5_000
    with pytest.raises(ConfigError, match="at least 1,000"):
        BuildConfig(inputs=(Path("x"),), display_points=10)
    with pytest.raises(ConfigError, match="a number or 'all'"):
        build_config(["x"], display_points="many")


def report(n: int, display_points: int | None, previews: bool = False) -> dict:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(n, 16)) + np.repeat(rng.normal(0, 4, size=(4, 16)), n // 4, 0)
    analysis = analyse(features, k_max=5, seed=0)
    images = [
        ImageRecord(
            f"trip/{'猫' if i % 7 == 0 else 'day'}/🐱{i:05d}.jpg",
            f"thumbs/{i:020x}.webp",
            (192, 144 - i % 3),
            (4000, 3000),
            preview=f"previews/{i:020x}.webp" if previews and i % 2 else None,
            preview_size=(800, 600) if previews and i % 2 else None,
        )
        for i in range(n)
    ]
    return build_report("t", images, [], analysis, INFO, 0, display_points=display_points)


def test_page_data_decodes_to_the_report() -> None:
    typed = report(4_000, 1_000, previews=True)
    full = typed.to_json()
    assert (
        full["display_sample"]
        == display_sample(
            [i["path"] for i in full["images"]],
            {int(k): np.array(c["labels"]) for k, c in full["clusterings"].items()},
            1_000,
        ).tolist()
    )
    page = pagedata.decode(render_index(typed, "p.js"))
    assert page["display_sample"] == full["display_sample"]
    for mine, theirs in zip(page["images"], full["images"], strict=True):
        assert mine == {key: theirs[key] for key in mine}
    assert (
        np.abs(page["points"] - np.array(full["points"])).max()
        <= 1e-9 + max(hi - lo for lo, hi in page["meta"]["points_range"]) / 65535 / 2
    )
    for k, c in full["clusterings"].items():
        assert page["clusterings"][k]["labels"] == c["labels"]
        assert pagedata.distances(page_distances(typed, k)) == c["distances"]  # exactly
        assert page["clusterings"][k]["sizes"] == c["sizes"]
    assert "points" not in page["meta"] and "images" not in page["meta"]


def test_page_data_is_compact() -> None:
    """What the page loads at open, per image: far less than report.json's share."""
    typed = report(4_000, 1_000)
    full = typed.to_json()
    page = page_data(typed)
    opening = len(json.dumps(page.meta)) + sum(len(c) for c in page.columns.values())
    report_bytes = len(json.dumps(full))
    assert opening < report_bytes / 4
    assert set(full) >= {"images", "points", "clusterings", "display_sample"}  # report keeps all


REPORT_KEYS = {  # README, "report.json schema (version 1)": the contract, plus display_sample
    "schema_version", "generator", "title", "title_i18n", "model", "seed", "images", "points",
    "display_sample", "pca", "k_values", "clusterings", "suggested_k", "suggested_k_rule",
    "labels", "label_names", "neighbours", "neighbour_similarity", "duplicates", "provenance",
    "distinct_points", "notes", "notes_i18n", "skipped", "aliases",
}  # fmt: skip


def test_report_json_keeps_its_keys() -> None:
    full = report(400, None).to_json()
    assert set(full) == REPORT_KEYS
    assert set(full["clusterings"]["2"]) == {
        "labels", "centers", "sizes", "inertia", "distances", "metrics", "flows_to_next",
    }  # fmt: skip
    assert set(full["images"][0]) == {
        "path", "thumb", "thumb_width", "thumb_height", "width", "height", "preview",
        "preview_width", "preview_height",
    }  # fmt: skip
    assert full["display_sample"] == list(range(400))  # all, when nothing is sampled
