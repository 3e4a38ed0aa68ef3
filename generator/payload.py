"""Analysis results → report.json, the one data object the page reads.

Kept apart from rendering so that tests can assert on the data without a browser. Floats are
rounded and keys sorted when written, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generator import __version__
from generator.analyse import Analysis, to_view
from generator.embed import PREPROCESS, ModelInfo
from generator.structure import SkippedImage

SCHEMA_VERSION = 1
DECIMALS = 6


@dataclass(frozen=True)
class ImageRecord:
    """A used image: where it came from (relative) and where its thumbnail is in the site."""

    rel: str
    thumb: str
    thumb_size: tuple[int, int]
    size: tuple[int, int]


def build_report(
    title: str,
    images: Sequence[ImageRecord],
    skipped: Sequence[SkippedImage],
    analysis: Analysis,
    model: ModelInfo,
    seed: int,
) -> dict[str, Any]:
    """The whole report as plain JSON-able data (the schema is documented in README)."""
    ratio = analysis.explained_variance_ratio
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "dinoclust", "version": __version__},
        "title": title,
        "model": {
            "name": model.name,
            "weights": model.weights,
            "random_weights": model.random_weights,
            "precision": model.precision,
            "feature_dim": analysis.feature_dim,
            "preprocess": {
                "size": PREPROCESS.size,
                "mean": list(PREPROCESS.mean),
                "std": list(PREPROCESS.std),
                "resize": PREPROCESS.resize,
            },
        },
        "seed": seed,
        "images": [
            {
                "path": r.rel,
                "thumb": r.thumb,
                "thumb_width": r.thumb_size[0],
                "thumb_height": r.thumb_size[1],
                "width": r.size[0],
                "height": r.size[1],
            }
            for r in images
        ],
        "points": _floats(analysis.view),
        "pca": {
            "n_components": analysis.n_components,
            "explained_variance_ratio": _floats(ratio),
            "cumulative_explained_variance_ratio": _floats(np.cumsum(ratio)),
        },
        "k_values": sorted(analysis.clusterings),
        "clusterings": {
            str(k): {
                "labels": c.labels.tolist(),
                "centers": _floats(to_view(c.centers)),
                "sizes": list(c.sizes),
                "inertia": round(c.inertia, DECIMALS),
            }
            for k, c in sorted(analysis.clusterings.items())
        },
        "distinct_points": analysis.distinct_points,
        "notes": list(analysis.notes),
        "skipped": [{"path": s.rel, "reason": s.reason} for s in skipped],
    }


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def assignments_csv(report: dict[str, Any]) -> str:
    """`path,k2,k3,…`: one row per image, the cluster id at each k."""
    ks = report["k_values"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", *(f"k{k}" for k in ks)])
    for i, image in enumerate(report["images"]):
        writer.writerow([image["path"], *(report["clusterings"][str(k)]["labels"][i] for k in ks)])
    return out.getvalue()


def _floats(values: np.ndarray) -> Any:
    return np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist()
