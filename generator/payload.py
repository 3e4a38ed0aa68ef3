"""Analysis results → report.json, the one data object the page reads.

Kept apart from rendering so that tests can assert on the data without a browser. Floats are
rounded and keys sorted when written, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generator import __version__
from generator.analyse import N_INIT, Analysis, LabelComparison, flows, to_view
from generator.duplicates import NEAR_DUPLICATE_COSINE, Duplicates, Neighbours
from generator.embed import PREPROCESS, ModelInfo
from generator.exports import csv_text
from generator.i18n import Message
from generator.metrics import SILHOUETTE_SAMPLE, SUGGESTED_K_RULE, suggest_k
from generator.structure import Alias, SkippedImage

SCHEMA_VERSION = 1
DECIMALS = 6
NEIGHBOUR_KEYS = ("neighbours", "neighbour_similarity")  # in report.json; the page gets them packed
PACKAGES = ("numpy", "scikit-learn", "scipy", "torch", "timm", "pillow", "plotly", "jinja2")


@dataclass(frozen=True)
class ImageRecord:
    """A used image: where it came from (relative) and where its thumbnail is in the site."""

    rel: str
    thumb: str
    thumb_size: tuple[int, int]
    size: tuple[int, int]
    digest: str = ""  # content hash (sha256 hex): byte-identical files share it
    preview: str | None = None  # the larger image in the site; None: the thumbnail is all
    preview_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ReportExtras:
    """What a build may add to the analysis: known labels and duplicates."""

    labels: LabelComparison | None = None
    label_source: str | None = None  # "folders" or the CSV's file name
    duplicates: Duplicates | None = None
    neighbours: Neighbours | None = None
    aliases: tuple[Alias, ...] = ()  # further paths to images already included
    notes: tuple[Message, ...] = ()  # caveats the analysis does not know of (e.g. about labels)


def build_report(
    title: str | Message,
    images: Sequence[ImageRecord],
    skipped: Sequence[SkippedImage],
    analysis: Analysis,
    model: ModelInfo,
    seed: int,
    extras: ReportExtras | None = None,
    lang: str = "en",
) -> dict[str, Any]:
    """The whole report as plain JSON-able data (the schema is documented in README)."""
    extras = extras or ReportExtras()
    ratio = analysis.explained_variance_ratio
    report = {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "dinoclust", "version": __version__},
        "title": title.text(lang) if isinstance(title, Message) else title,
        "title_i18n": title.to_json() if isinstance(title, Message) else None,
        "model": {
            "name": model.name,
            "weights": model.weights,
            "weights_i18n": model.weights_i18n.to_json() if model.weights_i18n else None,
            "random_weights": model.random_weights,
            "precision": model.precision,
            "backend": model.backend,
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
                "preview": r.preview,
                "preview_width": r.preview_size[0] if r.preview_size else None,
                "preview_height": r.preview_size[1] if r.preview_size else None,
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
        "clusterings": _clusterings(analysis, extras.labels),
        "suggested_k": suggest_k({k: c.metrics for k, c in analysis.clusterings.items()}),
        "suggested_k_rule": SUGGESTED_K_RULE,
        "distinct_points": analysis.distinct_points,
        "notes": [str(note) for note in (*analysis.notes, *extras.notes)],
        "notes_i18n": [note.to_json() for note in (*analysis.notes, *extras.notes)],
        "skipped": [
            {"path": s.rel, "reason": s.reason, "reason_i18n": s.why.to_json()} for s in skipped
        ],
        "aliases": [{"path": a.rel, "same_as": a.same_as} for a in extras.aliases],
        "labels": list(extras.labels.names) if extras.labels else None,
        "label_names": list(extras.labels.distinct) if extras.labels else [],
        "duplicates": _duplicates(extras.duplicates),
        **_neighbours(extras.neighbours, len(images)),
    }
    report["provenance"] = provenance(report, model, extras.label_source)
    return report


def _clusterings(analysis: Analysis, labels: LabelComparison | None) -> dict[str, Any]:
    out = {}
    ks = sorted(analysis.clusterings)
    for k in ks:
        c = analysis.clusterings[k]
        after = analysis.clusterings.get(k + 1)
        metrics = {**c.metrics, **(labels.metrics[k] if labels else {})}
        out[str(k)] = {
            "labels": c.labels.tolist(),
            "centers": _floats(to_view(c.centers)),
            "sizes": list(c.sizes),
            "inertia": round(c.inertia, DECIMALS),
            "distances": _floats(c.distances),
            "metrics": {key: _float(value) for key, value in metrics.items()},
            "flows_to_next": [
                list(f) for f in (flows(c.labels, after.labels, after.k) if after else [])
            ],
        }
        if labels:
            out[str(k)]["label_table"] = labels.tables[k].tolist()
    return out


def _duplicates(found: Duplicates | None) -> dict[str, Any]:
    return {
        "exact": [list(g) for g in found.exact] if found else [],
        "near": [list(g) for g in found.near] if found else [],
        "near_threshold": found.threshold if found else NEAR_DUPLICATE_COSINE,
    }


def _neighbours(found: Neighbours | None, n: int) -> dict[str, Any]:
    if found is None:
        return {key: [[] for _ in range(n)] for key in NEIGHBOUR_KEYS}
    return {
        "neighbours": found.indices.tolist(),
        "neighbour_similarity": _floats(found.similarity),
    }


def page_data(report: dict[str, Any]) -> dict[str, Any]:
    """The data object inlined in the page: the report without the neighbour lists, which come
    packed (page_neighbours) and only when the first preview opens."""
    return {key: value for key, value in report.items() if key not in NEIGHBOUR_KEYS}


def page_neighbours(report: dict[str, Any]) -> dict[str, Any]:
    """Every image's neighbours packed as base64: one big-endian integer of `bytes` bytes per
    neighbour, `index << sim_bits | q`, the similarity quantised to q = 0 … 2^sim_bits - 1 over
    [lo, hi]. At 100,000 images a neighbour takes 3 bytes (17 bits of index, 7 of similarity: a
    step of (hi - lo) / 127), so 12 neighbours cost 48 base64 characters per image: 4.8 MB."""
    indices = np.asarray(report["neighbours"], dtype=np.int64)
    sims = np.asarray(report["neighbour_similarity"], dtype=np.float64)
    n = len(report["images"])
    count = indices.shape[1] if indices.ndim == 2 else 0
    width = 3 if n <= 1 << 17 else 4
    index_bits = max(1, (n - 1).bit_length())
    sim_bits = min(16, 8 * width - index_bits)
    lo, hi = (float(sims.min()), float(sims.max())) if sims.size else (0.0, 0.0)
    scale = (2**sim_bits - 1) / (hi - lo) if hi > lo else 0.0
    q = np.rint((sims - lo) * scale).astype(np.int64) if sims.size else np.zeros_like(indices)
    packed = (indices << sim_bits) | q
    raw = packed.astype(">u4").view(np.uint8).reshape(-1, 4)[:, 4 - width :]
    return {
        "count": int(count),
        "bytes": width,
        "sim_bits": sim_bits,
        "lo": round(lo, DECIMALS),
        "hi": round(hi, DECIMALS),
        "data": base64.b64encode(raw.tobytes()).decode("ascii"),
    }


def provenance(
    report: dict[str, Any], model: ModelInfo, label_source: str | None
) -> dict[str, Any]:
    """How the numbers were made, enough to reproduce them (no paths, no machine names)."""
    return {
        "model": model.name,
        "weights": model.weights,
        "weights_id": model.weights_id,
        "precision": model.precision,
        "backend": model.backend,
        "preprocess": report["model"]["preprocess"],
        "seed": report["seed"],
        "feature_dim": report["model"]["feature_dim"],
        "pca_components": report["pca"]["n_components"],
        "kmeans": {"n_init": N_INIT, "k_values": report["k_values"]},
        "silhouette_sample": SILHOUETTE_SAMPLE,
        "near_duplicate_cosine": report["duplicates"]["near_threshold"],
        "labels": label_source,
        "packages": {"dinoclust": __version__, **{p: _version(p) for p in PACKAGES}},
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def assignments_csv(report: dict[str, Any]) -> str:
    """`path,k2,k3,…`: one row per image, the cluster id at each k."""
    ks = report["k_values"]
    rows: list[list[Any]] = [["path", *(f"k{k}" for k in ks)]]
    for i, image in enumerate(report["images"]):
        rows.append([image["path"], *(report["clusterings"][str(k)]["labels"][i] for k in ks)])
    return csv_text(rows)


def _float(value: float | None) -> float | None:
    return None if value is None else round(float(value), DECIMALS)


def _floats(values: np.ndarray) -> Any:
    return np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist()
