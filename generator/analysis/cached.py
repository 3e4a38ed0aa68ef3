"""A rebuild with the same features and options reuses its PCA and K-means: the result is packed
here and kept in the cache's SQLite table as bytes (the cache knows nothing of analyses)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from generator.analysis.analyse import Analysis, Clustering, analyse
from generator.config import BuildConfig
from generator.i18n import Message
from generator.storage.cache import CACHE_VERSION, EmbeddingCache
from generator.types import PHASE_LOGGER
from generator.version import package_version

phase = logging.getLogger(PHASE_LOGGER)

# A change to the code that computes or packs the results invalidates old ones.
ANALYSIS_SOURCES = ("analyse.py", "metrics.py", "cached.py")
ANALYSIS_PACKAGES = ("numpy", "scikit-learn", "scipy")  # their versions key cached analyses


def analysis_key(features: np.ndarray, k_max: int, seed: int) -> str:
    """Everything PCA/K-means results depend on, including the code that computes them."""
    digest = hashlib.sha256()
    for name in ANALYSIS_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    options = {
        "version": CACHE_VERSION,
        "k_max": k_max,
        "seed": seed,
        "shape": features.shape,
        "packages": {p: package_version(p) for p in ANALYSIS_PACKAGES},
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(features, dtype="<f4").tobytes())
    return digest.hexdigest()


def pack_analysis(analysis: Analysis) -> bytes:
    """Arrays as .npz, everything else as JSON inside it: no pickle, exact floats."""
    arrays = {"coords": analysis.coords, "ratio": analysis.explained_variance_ratio}
    if analysis.pca_mean is not None and analysis.pca_components is not None:
        arrays |= {"pca_mean": analysis.pca_mean, "pca_components": analysis.pca_components}
    meta: dict = {
        "feature_dim": analysis.feature_dim,
        "distinct_points": analysis.distinct_points,
        "notes": [note.to_json() for note in analysis.notes],
        "clusterings": {},
    }
    for k, c in analysis.clusterings.items():
        arrays |= {
            f"labels_{k}": c.labels,
            f"centers_{k}": c.centers,
            f"distances_{k}": c.distances,
        }
        meta["clusterings"][str(k)] = {
            "sizes": list(c.sizes),
            "inertia": c.inertia,
            "metrics": c.metrics,
        }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def unpack_analysis(data: bytes) -> Analysis:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    clusterings = {
        int(k): Clustering(
            k=int(k),
            labels=arrays[f"labels_{k}"],
            centers=arrays[f"centers_{k}"],
            sizes=tuple(c["sizes"]),
            inertia=c["inertia"],
            distances=arrays[f"distances_{k}"],
            metrics=c["metrics"],
        )
        for k, c in meta["clusterings"].items()
    }
    return Analysis(
        arrays["coords"],
        arrays["ratio"],
        clusterings,
        meta["feature_dim"],
        meta["distinct_points"],
        tuple(Message.from_json(note) for note in meta["notes"]),
        arrays.get("pca_mean"),  # absent in an analysis packed before --query: None
        arrays.get("pca_components"),
    )


def cached_analysis(
    features: np.ndarray, config: BuildConfig, cache: EmbeddingCache | None
) -> Analysis:
    """A rebuild with the same features and options reuses the result: no scikit-learn import."""
    if cache is None:
        return _analyse(features, config)
    key = analysis_key(features, config.k_max, config.seed)
    data = cache.analysis(key)
    if data is not None:
        # a damaged entry is computed again, never a crash
        with contextlib.suppress(ValueError, KeyError, OSError, TypeError):
            return unpack_analysis(data)
    analysis = _analyse(features, config)
    cache.put_analysis(key, pack_analysis(analysis))
    return analysis


def _analyse(features: np.ndarray, config: BuildConfig) -> Analysis:
    if len(features) >= 2:
        phase.info("clustering k = 2…%d…", min(config.k_max, len(features)))
    return analyse(features, config.k_max, config.seed)
