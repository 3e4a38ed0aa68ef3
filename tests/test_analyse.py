"""Stage 4: PCA and the K-means sweep, on fixed synthetic features (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from generator.analysis.analyse import MAX_COMPONENTS, analyse
from generator.errors import InputError
from generator.i18n import Message


def blobs(n_per: int = 20, dim: int = 384, centres: int = 3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 10, size=(centres, dim))
    return np.concatenate([m + rng.normal(0, 1, size=(n_per, dim)) for m in means]).astype(
        np.float32
    )


def test_pca_keeps_50_components_and_records_variance() -> None:
    features = blobs(n_per=40)
    result = analyse(features, k_max=10, seed=0)
    assert result.coords.shape == (120, MAX_COMPONENTS)
    assert result.explained_variance_ratio.shape == (MAX_COMPONENTS,)
    assert np.all(np.diff(result.explained_variance_ratio) <= 1e-12)  # sorted, largest first
    assert 0 < result.explained_variance_ratio.sum() <= 1 + 1e-9
    assert result.notes == ()
    # PC1 separates the blobs: almost all variance is in the first two components
    assert result.explained_variance_ratio[:2].sum() > 0.9


def test_k_range_sizes_and_labels() -> None:
    features = blobs()
    result = analyse(features, k_max=10, seed=0)
    assert sorted(result.clusterings) == list(range(2, 11))
    for k, c in result.clusterings.items():
        assert c.labels.shape == (60,)
        assert set(c.labels.tolist()) <= set(range(k))
        assert sum(c.sizes) == 60
        if k == 2:  # ids start ordered by size; from k = 3 on they follow the overlap matching
            assert list(c.sizes) == sorted(c.sizes, reverse=True)
        assert c.sizes == tuple(np.bincount(c.labels, minlength=k).tolist())


def test_three_blobs_are_found_exactly_at_k3() -> None:
    result = analyse(blobs(), k_max=5, seed=0)
    labels = result.clusterings[3].labels
    for start in (0, 20, 40):
        assert len(set(labels[start : start + 20].tolist())) == 1
    assert result.clusterings[3].sizes == (20, 20, 20)


def test_each_centre_is_the_mean_of_its_members() -> None:
    result = analyse(blobs(), k_max=6, seed=0)
    for c in result.clusterings.values():
        for cluster in range(c.k):
            members = result.coords[c.labels == cluster]
            np.testing.assert_allclose(c.centers[cluster], members.mean(axis=0), atol=1e-9)


def test_inertia_is_the_sum_of_squared_distances() -> None:
    result = analyse(blobs(), k_max=4, seed=0)
    c = result.clusterings[4]
    expected = ((result.coords - c.centers[c.labels]) ** 2).sum()
    assert c.inertia == pytest.approx(expected)


def test_same_seed_same_result_and_k_max_caps_at_n() -> None:
    features = blobs(n_per=3)
    a = analyse(features, k_max=10, seed=7)
    b = analyse(features, k_max=10, seed=7)
    assert sorted(a.clusterings) == list(range(2, 10))  # N = 9
    np.testing.assert_array_equal(a.coords, b.coords)
    for k in a.clusterings:
        np.testing.assert_array_equal(a.clusterings[k].labels, b.clusterings[k].labels)


def test_small_n_pads_the_3d_view_and_says_so() -> None:
    features = blobs(n_per=1, centres=2)
    result = analyse(features, k_max=10, seed=0)
    assert result.coords.shape == (2, 2)
    assert result.view.shape == (2, 3)
    np.testing.assert_array_equal(result.view[:, 2], [0.0, 0.0])
    assert sorted(result.clusterings) == [2]
    assert result.clusterings[2].sizes == (1, 1)
    assert [str(note) for note in result.notes] == [
        "PCA kept 2 components: no more than the number of images."
    ]


def test_identical_features_do_not_crash() -> None:
    features = np.ones((5, 384), dtype=np.float32)
    result = analyse(features, k_max=4, seed=0)
    assert result.distinct_points == 1
    np.testing.assert_array_equal(result.explained_variance_ratio, np.zeros(5))
    assert sum(result.clusterings[4].sizes) == 5
    assert Message.of("note_distinct", distinct=1, n=5) in result.notes
    assert str(result.notes[-1]).startswith("Only 1 distinct feature vectors among 5 images")


def test_fewer_than_two_images_is_an_error() -> None:
    with pytest.raises(InputError, match="at least 2 images"):
        analyse(np.ones((1, 384), dtype=np.float32), k_max=10, seed=0)
