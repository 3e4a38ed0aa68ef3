"""Analysis results → report.json (public, stable), and apart from it the page's own compact data.

Kept apart from rendering so that tests can assert on the data without a browser. Floats are
rounded and keys sorted when written, so the same inputs give byte-identical files. The page does
not read report.json: page_data() packs every N-sized list as a little-endian typed array
(base64), so that 100,000 images load in a few MB (see README, "The page with large collections").
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from generator.analysis.analyse import N_INIT, Analysis, LabelComparison, flows, to_view
from generator.analysis.duplicates import NEAR_DUPLICATE_COSINE, Duplicates, Neighbours
from generator.analysis.metrics import SILHOUETTE_SAMPLE, SUGGESTED_K_RULE, suggest_k
from generator.analysis.sample import DEFAULT_DISPLAY_POINTS, display_sample
from generator.i18n import Message
from generator.model.vit import PREPROCESS
from generator.report import (
    Alias,
    Clustering,
    Generator,
    I18n,
    Image,
    KMeans,
    Model,
    Pca,
    Preprocess,
    Provenance,
    Report,
    Skipped,
    json_default,
    json_fields,
)
from generator.report import Duplicates as ReportDuplicates
from generator.site.exports import csv_text
from generator.types import Alias as AliasPath
from generator.types import ModelInfo, SkippedImage
from generator.version import __version__, package_version

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
    aliases: tuple[AliasPath, ...] = ()  # further paths to images already included
    notes: tuple[Message, ...] = ()  # caveats the analysis does not know of (e.g. about labels)


@dataclass(frozen=True)
class SampledTotals:
    """What a sampled report (a store above SAMPLED_ROWS) counts over every row, not the sample:
    the rows with an embedding, those without, and each k's cluster sizes."""

    rows: int
    skipped_rows: int
    sizes_all: Mapping[int, Sequence[int]]


def build_report(
    title: str | Message,
    images: Sequence[ImageRecord],
    skipped: Sequence[SkippedImage],
    analysis: Analysis,
    model: ModelInfo,
    seed: int,
    extras: ReportExtras | None = None,
    lang: str = "en",
    display_points: int | None = DEFAULT_DISPLAY_POINTS,
    sampled: SampledTotals | None = None,
) -> Report:
    """The whole report, built once (its keys are report.json's: generator/report.py).

    `display_points`: how many images the 3D view draws at most (None: all), see sample.py.
    `sampled`: the totals over every row, when the images are a sample of a store."""
    extras = extras or ReportExtras()
    drawn = display_sample(
        [r.rel for r in images],
        {k: c.labels for k, c in analysis.clusterings.items()},
        display_points,
    )
    ratio = analysis.explained_variance_ratio
    notes = (*analysis.notes, *extras.notes)
    section = _model(model, analysis.feature_dim)
    pca = Pca(analysis.n_components, _floats(ratio), _floats(np.cumsum(ratio)))
    k_values = tuple(sorted(analysis.clusterings))
    duplicates = _duplicates(extras.duplicates)
    return Report(
        schema_version=SCHEMA_VERSION,
        generator=Generator("dinoclust", __version__),
        title=title.text(lang) if isinstance(title, Message) else title,
        title_i18n=_i18n(title) if isinstance(title, Message) else None,
        model=section,
        seed=seed,
        images=tuple(_image(r) for r in images),
        points=_rows(analysis.view),
        display_sample=tuple(drawn.tolist()),
        pca=pca,
        k_values=k_values,
        clusterings=_clusterings(analysis, extras.labels, sampled),
        suggested_k=suggest_k({k: c.metrics for k, c in analysis.clusterings.items()}),
        suggested_k_rule=SUGGESTED_K_RULE,
        distinct_points=analysis.distinct_points,
        notes=tuple(str(note) for note in notes),
        notes_i18n=tuple(_i18n(note) for note in notes),
        skipped=tuple(Skipped(s.rel, s.reason, _i18n(s.why)) for s in skipped),
        aliases=tuple(Alias(a.rel, a.same_as) for a in extras.aliases),
        labels=tuple(extras.labels.names) if extras.labels else None,
        label_names=tuple(extras.labels.distinct) if extras.labels else (),
        duplicates=duplicates,
        **_neighbours(extras.neighbours, len(images)),
        provenance=provenance(section, seed, pca, k_values, duplicates, model, extras.label_source),
        sampled=True if sampled else None,
        rows=sampled.rows if sampled else None,
        skipped_rows=sampled.skipped_rows if sampled else None,
    )


def _i18n(message: Message) -> I18n:
    return I18n(message.key, MappingProxyType(dict(message.args)))


def _model(model: ModelInfo, feature_dim: int) -> Model:
    return Model(
        name=model.name,
        weights=model.weights,
        weights_i18n=_i18n(model.weights_i18n) if model.weights_i18n else None,
        random_weights=model.random_weights,
        precision=model.precision,
        backend=model.backend,
        feature_dim=feature_dim,
        preprocess=Preprocess(
            PREPROCESS.size, tuple(PREPROCESS.mean), tuple(PREPROCESS.std), PREPROCESS.resize
        ),
    )


def _image(r: ImageRecord) -> Image:
    preview = r.preview_size or (None, None)
    return Image(r.rel, r.thumb, *r.thumb_size, *r.size, r.preview, *preview)


def _clusterings(
    analysis: Analysis, labels: LabelComparison | None, sampled: SampledTotals | None
) -> Mapping[str, Clustering]:
    out = {}
    for k in sorted(analysis.clusterings):
        c = analysis.clusterings[k]
        after = analysis.clusterings.get(k + 1)
        metrics = {**c.metrics, **(labels.metrics[k] if labels else {})}
        out[str(k)] = Clustering(
            labels=tuple(c.labels.tolist()),
            centers=_rows(to_view(c.centers)),
            sizes=tuple(int(n) for n in c.sizes),
            inertia=round(c.inertia, DECIMALS),
            distances=_floats(c.distances),
            metrics=MappingProxyType({key: _float(value) for key, value in metrics.items()}),
            flows_to_next=tuple(
                tuple(f) for f in (flows(c.labels, after.labels, after.k) if after else [])
            ),
            label_table=tuple(map(tuple, labels.tables[k].tolist())) if labels else None,
            sizes_all=tuple(int(n) for n in sampled.sizes_all[k]) if sampled else None,
        )
    return MappingProxyType(out)


def _duplicates(found: Duplicates | None) -> ReportDuplicates:
    if found is None:
        return ReportDuplicates((), (), NEAR_DUPLICATE_COSINE)
    return ReportDuplicates(
        tuple(map(tuple, found.exact)), tuple(map(tuple, found.near)), found.threshold
    )


def _neighbours(found: Neighbours | None, n: int) -> dict[str, Any]:
    if found is None:
        return {key: ((),) * n for key in NEIGHBOUR_KEYS}
    return {
        "neighbours": tuple(map(tuple, found.indices.tolist())),
        "neighbour_similarity": _rows(found.similarity),
    }


# What the page reads as the report has it: everything that does not grow with N.
PAGE_KEYS = (
    "schema_version", "generator", "title", "title_i18n", "model", "seed", "pca", "k_values",
    "suggested_k", "suggested_k_rule", "distinct_points", "notes", "notes_i18n", "skipped",
    "aliases", "label_names", "duplicates", "provenance", "sampled", "rows", "skipped_rows",
)  # fmt: skip
CLUSTERING_KEYS = tuple(f.name for f in fields(Clustering))
PER_K = ("labels", "distances")  # the N-sized lists of each clustering: packed, not copied
HASHED = re.compile(r"^(.*?)([0-9a-f]{20})(\.[A-Za-z0-9]+)$")  # thumbs/<key>.webp
MICRO = 1_000_000  # distances travel as whole millionths: exactly the report's 6 decimals
POINT_STEPS = 65_535  # PC coordinates as 16-bit steps of their range: far below a pixel


@dataclass(frozen=True)
class PageData:
    """The page's data: `meta` (JSON) and its columns, name → base64 of a little-endian array.

    Which dtype each column has is in meta["columns"]; the page decodes them once (data.js)."""

    meta: dict[str, Any]
    columns: dict[str, str]


def page_data(report: Report) -> PageData:
    """Everything the page loads when it opens. The neighbours come later (page_neighbours) and
    each k's distances too (page_distances), when first needed."""
    images = report.images
    meta: dict[str, Any] = json_fields(report, PAGE_KEYS)
    meta["n"] = len(images)
    meta["clusterings"] = {
        k: json_fields(c, [f for f in CLUSTERING_KEYS if f not in PER_K])
        for k, c in report.clusterings.items()
    }
    arrays: dict[str, np.ndarray] = {}
    arrays["path_shared"], meta["path_rest"] = _front_coded([image.path for image in images])
    meta["thumbs"], stems = _names([image.thumb for image in images])
    if stems is not None:
        arrays["thumb_hex"] = stems
    meta["previews"] = _previews(images, meta["thumbs"])
    arrays["thumb_width"] = np.array([i.thumb_width for i in images])
    arrays["thumb_height"] = np.array([i.thumb_height for i in images])
    if meta["previews"] is not None:
        arrays["preview_width"] = np.array([i.preview_width or 0 for i in images])
        arrays["preview_height"] = np.array([i.preview_height or 0 for i in images])
    points = np.asarray(report.points, dtype=np.float64).reshape(-1, 3)
    meta["points_range"], arrays["points"] = _quantised(points)
    for k, c in report.clusterings.items():
        arrays[f"labels_{k}"] = np.asarray(c.labels, dtype=np.int64)
    if report.labels is not None:
        index = {name: i for i, name in enumerate(report.label_names)}
        arrays["label_index"] = np.array([index[name] for name in report.labels])
    arrays["display_sample"] = np.asarray(report.display_sample, dtype=np.int64)
    columns = {name: _packed(values) for name, values in arrays.items()}
    meta["columns"] = {name: dtype for name, (dtype, _) in columns.items()}
    return PageData(meta, {name: data for name, (_, data) in columns.items()})


def page_distances(report: Report, k: int | str) -> dict[str, str]:
    """One k's distances to the centre, as the page loads them when it first shows that k:
    whole millionths (uint32), so that they decode to exactly the report's numbers; float64
    where a distance is too large for that."""
    values = np.asarray(report.clustering(k).distances, dtype=np.float64)
    if values.size and float(values.max()) * MICRO >= 2**32 - 1:
        return {"dtype": "f8", "data": b64(values, "<f8")}
    return {"dtype": "micro", "data": b64(np.rint(values * MICRO), "<u4")}


def _front_coded(paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each path as the number of UTF-16 units it shares with the one before (≤ 255) and the rest:
    sorted paths share most of their folders and name, so this halves what they weigh."""
    shared = np.zeros(len(paths), dtype=np.int64)
    rest: list[str] = []
    previous = ""
    for i, path in enumerate(paths):
        same = min(len(os.path.commonprefix([previous, path])), 255)
        while _utf16_units(path[:same]) > 255:
            same -= 1
        shared[i] = _utf16_units(path[:same])
        rest.append(path[same:])
        previous = path
    return shared, rest


def _utf16_units(text: str) -> int:
    """The text's length in JavaScript: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _names(names: list[str]) -> tuple[dict[str, Any], np.ndarray | None]:
    """Thumbnail names: one prefix and suffix and 10 bytes of hex key each, when they all have
    the form the site stage gives them; else (e.g. data: URIs in one file) the names as they are."""
    matches = [HASHED.match(name) for name in names]
    forms = {(m.group(1), m.group(3)) for m in matches if m}
    if names and all(matches) and len(forms) == 1:
        prefix, suffix = forms.pop()
        hexes = "".join(m.group(2) for m in matches if m)
        stems = np.frombuffer(bytes.fromhex(hexes), dtype=np.uint8).reshape(len(names), -1)
        return {"prefix": prefix, "suffix": suffix}, stems
    return {"list": names}, None


def _previews(images: Sequence[Image], thumbs: dict[str, Any]) -> dict[str, Any] | None:
    """The previews: none; each named like its thumbnail in another folder; or listed."""
    previews = [image.preview for image in images]
    if not any(previews):
        return None
    forms = set()
    for preview, image in zip(previews, images, strict=True):
        if not preview:
            continue
        mine, theirs = HASHED.match(preview), HASHED.match(image.thumb)
        if not (mine and theirs and mine.group(2) == theirs.group(2)):
            return {"list": previews}
        forms.add((mine.group(1), mine.group(3)))
    if "prefix" in thumbs and len(forms) == 1:
        prefix, suffix = forms.pop()
        return {"prefix": prefix, "suffix": suffix}
    return {"list": previews}


def _quantised(points: np.ndarray) -> tuple[list[list[float]], np.ndarray]:
    """PC1–PC3 as uint16 steps over each axis's range (the 3D view cannot show finer)."""
    if not len(points):
        return [[0.0, 0.0]] * 3, np.zeros((0, 3), dtype=np.int64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    steps = np.rint((points - lo) / span * POINT_STEPS).astype(np.int64)
    ranges = [
        [round(float(a), DECIMALS), round(float(b), DECIMALS)] for a, b in zip(lo, hi, strict=True)
    ]
    return ranges, steps


def _packed(values: np.ndarray) -> tuple[str, str]:
    """(dtype, base64) of non-negative integers in the smallest unsigned type that holds them."""
    top = int(values.max()) if values.size else 0
    dtype = "u1" if top < 1 << 8 else "u2" if top < 1 << 16 else "u4"
    return dtype, b64(values, "<" + dtype)


def b64(array: np.ndarray, dtype: str) -> str:
    """An array's bytes (little-endian `dtype`, row-major) as base64 text."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def page_neighbours(report: Report) -> dict[str, Any]:
    """Every image's neighbours packed as base64: one big-endian integer of `bytes` bytes per
    neighbour, `index << sim_bits | q`, the similarity quantised to q = 0 … 2^sim_bits - 1 over
    [lo, hi]. At 100,000 images a neighbour takes 3 bytes (17 bits of index, 7 of similarity: a
    step of (hi - lo) / 127), so 12 neighbours cost 48 base64 characters per image: 4.8 MB."""
    indices = np.asarray(report.neighbours, dtype=np.int64)
    sims = np.asarray(report.neighbour_similarity, dtype=np.float64)
    n = len(report.images)
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
        "data": b64(raw, "u1"),
    }


def provenance(
    model: Model,
    seed: int,
    pca: Pca,
    k_values: tuple[int, ...],
    duplicates: ReportDuplicates,
    info: ModelInfo,
    label_source: str | None,
) -> Provenance:
    """How the numbers were made, enough to reproduce them (no paths, no machine names)."""
    return Provenance(
        model=info.name,
        weights=info.weights,
        weights_id=info.weights_id,
        precision=info.precision,
        backend=info.backend,
        preprocess=model.preprocess,
        seed=seed,
        feature_dim=model.feature_dim,
        pca_components=pca.n_components,
        kmeans=KMeans(N_INIT, k_values),
        silhouette_sample=SILHOUETTE_SAMPLE,
        near_duplicate_cosine=duplicates.near_threshold,
        labels=label_source,
        packages=MappingProxyType(
            {"dinoclust": __version__, **{p: package_version(p) for p in PACKAGES}}
        ),
    )


def report_json(report: Report) -> str:
    """report.json's text: sorted keys, no spaces, UTF-8 as it is (byte-identical rebuilds)."""
    text = json.dumps(
        report, default=json_default, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return text + "\n"


def assignments_csv(report: Report) -> str:
    """`path,k2,k3,…`: one row per image, the cluster id at each k."""
    ks = report.k_values
    labels = [report.clustering(k).labels for k in ks]
    rows: list[list[Any]] = [["path", *(f"k{k}" for k in ks)]]
    for i, image in enumerate(report.images):
        rows.append([image.path, *(each[i] for each in labels)])
    return csv_text(rows)


def _float(value: float | None) -> float | None:
    return None if value is None else round(float(value), DECIMALS)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist())


def _rows(values: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(map(tuple, np.round(np.asarray(values, dtype=np.float64), DECIMALS).tolist()))
