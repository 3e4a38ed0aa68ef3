"""The N² pass decides exactly: the same neighbours and near-duplicate groups as the exact
cosines of every pair, whichever products (NumPy float32, torch float32, torch bfloat16) chose
the candidates, however the rows fall into blocks, and right at the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from generator.analysis import duplicates
from generator.analysis.duplicates import (
    NEAR_DUPLICATE_COSINE,
    exact_similarity,
    find_similar,
    unit_rows,
)

LIMIT = np.float32(NEAR_DUPLICATE_COSINE)


def reference(features: np.ndarray, m: int, threshold: float = NEAR_DUPLICATE_COSINE):
    """Every pair in float64, rounded to float32; top m by value, ties to the smaller index;
    components of the graph "cosine ≥ threshold"."""
    x = unit_rows(features).astype(np.float64)
    sims = (x @ x.T).astype(np.float32)
    np.fill_diagonal(sims, -np.inf)
    n = len(sims)
    order = np.array([np.lexsort((np.arange(n), -row))[:m] for row in sims])
    graph = (sims >= np.float32(threshold)).astype(np.int8)
    labels = connected_components(graph, directed=False)[1]
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    near = sorted(tuple(g) for g in groups.values() if len(g) > 1)
    return order, np.take_along_axis(sims, order, axis=1), near


@pytest.fixture(params=["numpy", "torch-fp32", "torch-bf16", "torch-bf16-then-fp32"])
def products(request, monkeypatch):
    """Each way of computing the products, with small blocks so that rows span several."""
    if request.param == "numpy":
        monkeypatch.setattr(duplicates, "BLOCK_ENTRIES", 5000)
        monkeypatch.setattr(duplicates, "TORCH_ROWS", 10**9)
    else:
        pytest.importorskip("torch")
        import generator.model.embed

        bf16 = request.param.startswith("torch-bf16")
        monkeypatch.setattr(generator.model.embed, "cpu_has_bf16", lambda: bf16)
        if request.param == "torch-bf16-then-fp32":  # dense: float32 after the first block
            monkeypatch.setattr(duplicates, "DENSE", 0)
        monkeypatch.setattr(duplicates, "TORCH_ROWS", 0)
        monkeypatch.setattr(duplicates, "TORCH_BLOCK_ENTRIES", 200 * 1024)
    return request.param


def clustered(n: int, dim: int, seed: int, noise: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim)).astype(np.float32)
    features = centres[rng.integers(0, 12, n)] + noise * rng.normal(size=(n, dim))
    features = features.astype(np.float32)
    features[:40] = features[40:80] + 0.02 * rng.normal(size=(40, dim)).astype(np.float32)
    features[80:90] = features[90:100]  # exact copies: ties
    return features


def bf16_products(features: np.ndarray) -> np.ndarray:
    torch = pytest.importorskip("torch")
    q = torch.from_numpy(unit_rows(features)).to(torch.bfloat16).double().numpy()
    return q @ q.T


@pytest.mark.parametrize("seed", range(2))
def test_neighbours_and_groups_equal_every_pair_exactly(products, seed) -> None:
    features = clustered(1003, 48, seed)  # 1003: not a multiple of the runs of 32 columns
    dup, found = find_similar([f"d{i}" for i in range(len(features))], features)
    order, sims, near = reference(features, 12)
    assert (found.indices == order).all()
    assert (found.similarity == sims).all()  # bit for bit: the exact cosines
    assert list(dup.near) == near and len(near) >= 40
    # the test has teeth: bfloat16 products alone would rank some rows differently
    approx = bf16_products(features)
    np.fill_diagonal(approx, -np.inf)
    by_approx = np.argsort(-approx, axis=1, kind="stable")[:, :12]
    assert (by_approx != order).any(axis=1).sum() > 50


def pair_at(target: np.float32, dim: int, seed: int) -> np.ndarray:
    """Two float32 vectors whose exact cosine, as float32, is `target`: bisection on the angle,
    then a scan of the last bits of one component."""
    rng = np.random.default_rng(seed)
    u, w = rng.normal(size=(2, dim))
    u /= np.linalg.norm(u)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    lo, hi = 0.0, np.pi / 2  # the cosine falls as the angle grows
    for _ in range(60):
        angle = (lo + hi) / 2
        cosine = np.cos(angle) * u + np.sin(angle) * w
        lo, hi = (angle, hi) if cosine @ u > target else (lo, angle)
    first = u.astype(np.float32)
    second = np.repeat(cosine.astype(np.float32)[None], 4001, axis=0)
    k = int(np.argmax(np.abs(w)))  # the component that moves the cosine most
    second[:, k] += np.arange(-2000, 2001) * np.spacing(second[0, k])
    x = unit_rows(np.concatenate([first[None], second]))
    values = exact_similarity(x, np.zeros(4001, dtype=np.int64), np.arange(1, 4002))
    hits = np.flatnonzero(values == target)
    assert len(hits), f"no pair at {target}"
    return np.stack([first, second[hits[0]]])


def test_pairs_at_one_float32_step_around_the_threshold(products) -> None:
    """At the threshold is near, one step below is not; padded with unrelated images."""
    below, above = np.nextafter(LIMIT, np.float32(0)), np.nextafter(LIMIT, np.float32(2))
    dim = 64
    pairs = [pair_at(t, dim, seed) for seed, t in enumerate([LIMIT, below, above, below])]
    rng = np.random.default_rng(7)
    filler = rng.normal(size=(200, dim)).astype(np.float32)
    features = np.concatenate([*pairs, filler])
    dup, found = find_similar([f"d{i}" for i in range(len(features))], features)
    assert list(dup.near) == [(0, 1), (4, 5)]
    assert found.similarity[0, 0] == LIMIT and found.similarity[2, 0] == below
    assert found.indices[0, 0] == 1 and found.indices[3, 0] == 2


def test_pairs_on_the_wrong_side_of_the_threshold_in_bfloat16(products) -> None:
    """Pairs whose bfloat16 product is below the threshold though the exact cosine reaches it,
    and above it though the cosine does not: the exact cosine decides."""
    rng = np.random.default_rng(3)
    dim, misled = 64, {True: [], False: []}
    for _ in range(2000):
        u, w = rng.normal(size=(2, dim))
        w -= (w @ u) / (u @ u) * u
        angle = np.arccos(LIMIT + rng.uniform(-4e-3, 4e-3))
        pair = np.stack([u / np.linalg.norm(u), w / np.linalg.norm(w)])
        pair = np.stack([pair[0], np.cos(angle) * pair[0] + np.sin(angle) * pair[1]])
        pair = pair.astype(np.float32)
        near = bool(exact_similarity(unit_rows(pair), np.array([0]), np.array([1]))[0] >= LIMIT)
        if (bf16_products(pair)[0, 1] >= LIMIT) != near and len(misled[near]) < 3:
            misled[near].append(pair)
        if all(len(found) == 3 for found in misled.values()):
            break
    pairs = misled[True] + misled[False]
    filler = rng.normal(size=(120, dim)).astype(np.float32)
    features = np.concatenate([*pairs, filler])
    dup, _ = find_similar([f"d{i}" for i in range(len(features))], features)
    assert list(dup.near) == [(0, 1), (2, 3), (4, 5)]


def test_everything_near_is_one_group(products) -> None:
    """Untrained weights: every pair is near; the blocks join one component."""
    rng = np.random.default_rng(5)
    features = (1 + 0.01 * rng.normal(size=(300, 16))).astype(np.float32)
    dup, found = find_similar([f"d{i}" for i in range(300)], features)
    assert dup.near == (tuple(range(300)),)
    order, sims, _ = reference(features, 12)
    assert (found.indices == order).all() and (found.similarity == sims).all()


def test_the_bfloat16_bound_holds() -> None:
    """The per-row bound of the torch pass is at least the largest error of bfloat16 products."""
    torch = pytest.importorskip("torch")
    features = clustered(500, 384, 1)
    x = unit_rows(features)
    q = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    rounding = np.linalg.norm(q - x, axis=1)
    bound = rounding * np.linalg.norm(q, axis=1).max() + rounding.max()
    error = np.abs(q.astype(np.float64) @ q.T.astype(np.float64) - x.astype(np.float64) @ x.T)
    assert (error.max(axis=1) <= bound).all()
    assert error.max() > 1e-4  # bfloat16 is far from exact: the re-score matters


def partition(labels: np.ndarray) -> list[tuple[int, ...]]:
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(i)
    return sorted(tuple(g) for g in groups.values())


@pytest.mark.parametrize("seed", range(3))
def test_join_gives_scipys_components(seed) -> None:
    """The NumPy union–find that joins each block's pairs: the same partition as SciPy's
    connected components of every edge so far, on random graphs, paths in any order and
    edges into components already joined; each label is its component's smallest member."""
    from scipy.sparse import coo_array

    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(1, 400))
        component, edges = np.arange(n), [np.empty(0, np.int64)] * 2
        for _ in range(3):
            if rng.random() < 0.3:  # a path through the nodes in a random order
                order = rng.permutation(n)
                rows, cols = order[:-1], order[1:]
            else:
                e = int(rng.integers(0, 2 * n))
                rows, cols = rng.integers(0, n, e), rng.integers(0, n, e)
            component = duplicates._join(component, rows, cols)
            edges = [np.concatenate([edges[0], rows]), np.concatenate([edges[1], cols])]
            graph = coo_array((np.ones(len(edges[0]), np.int8), tuple(edges)), shape=(n, n))
            want = connected_components(graph, directed=False)[1]
            assert partition(component) == partition(want)
            assert all(component[g[0]] == g[0] for g in partition(component))
