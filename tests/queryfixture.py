"""A --query site for the page's browser tests, written strictly by the query contract
(briefs/query-contract.md, issue 29): query/model.js (the --weights random ViT exported to ONNX
with torch), query/index.js (from the build's own features, embeddings.npy) and the runtime
(generator.site.query_runtime). `reference` answers a photo as the Python side must: the build's
decode (imaging.decode) and model, then the contract's arithmetic on the index.

This is test scaffolding for the page; the build's own writer of query/ is the Python side's.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.ingest.imaging import decode
from generator.model.vit import MODEL_NAME, PREPROCESS, create_model
from generator.report import Report
from generator.site.render import render_site

CLIPART = Path("/usr/share/openclipart/png")
SIDE = 800  # imaging.decode's long side to keep: max(--thumb-size 192, --preview-size 800)
TOP = 12


@dataclass(frozen=True)
class QuerySite:
    site: Path
    report: Report
    index: dict[str, Any]  # decoded: vectors, scales, mean, components, centres, typical
    model: Any  # the torch model the build used (random weights, seed 0)


def clipart(count: int) -> list[Path]:
    """`count` clip-art PNGs spread over the folders (sorted, so the same every run)."""
    files = sorted(CLIPART.rglob("*.png"))
    step = max(1, len(files) // count)
    return files[::step][:count]


def build_query_site(root: Path, photos: Path, lang: str = "en") -> QuerySite:
    config = BuildConfig(
        inputs=(photos,),
        output=root / "site",
        title="Query test",
        weights="random",
        export_embeddings=True,
        k_max=6,
        lang=lang,
    )
    result = build_site(config)
    site, report = root / "site", result.typed_report
    features = np.load(site / "embeddings.npy").astype(np.float64)
    coords = np.load(site / "pca.npy")
    render_site(report, site, lang=lang, query=True)  # the control, its assets and the runtime
    index = write_query_files(site, report, features, coords)
    return QuerySite(site, report, index, create_model("random", seed=0).eval())


def write_query_files(
    site: Path, report: Report, features: np.ndarray, coords: np.ndarray
) -> dict[str, Any]:
    """query/model.js and query/index.js as the contract says; returns the index, decoded."""
    from sklearn.decomposition import PCA

    n, dim = features.shape
    pca = PCA(n_components=coords.shape[1], svd_solver="full", random_state=0).fit(features)
    assert np.allclose(pca.transform(features), coords, atol=1e-6), "not the build's PCA"
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    top = np.abs(unit).max(axis=1)
    vectors = np.rint(127 * unit / top[:, None]).astype(np.int8)
    scales = (top / 127).astype("<f4")
    clusterings, decoded = {}, {}
    for k in report.k_values:
        c = report.clustering(k)
        labels, distances = np.asarray(c.labels), np.asarray(c.distances)
        centres = np.stack([coords[labels == g].mean(axis=0) for g in range(k)]).astype("<f4")
        typical = [
            [float(np.percentile(distances[labels == g], q)) for q in (50, 90)] for g in range(k)
        ]
        clusterings[str(k)] = {"centres": _b64(centres), "typical": typical}
        decoded[str(k)] = {"centres": centres.astype(np.float64), "typical": typical}
    index = {
        "version": 1,
        "n": n,
        "dim": dim,
        "model": {"name": MODEL_NAME, "weights_id": report.provenance.weights_id},
        "vectors": _b64(vectors),
        "scales": _b64(scales),
        "pca": {
            "mean": _b64(pca.mean_.astype("<f4")),
            "components": _b64(pca.components_.astype("<f4")),
        },
        "clusterings": clusterings,
    }
    query = site / "query"
    text = json.dumps(index, sort_keys=True, separators=(",", ":"))
    (query / "index.js").write_text(f"window.DINOCLUST_QUERY_INDEX = {text};\n", encoding="utf-8")
    model = _b64_bytes(_onnx(create_model("random", seed=0).eval()))
    (query / "model.js").write_text(f'window.DINOCLUST_QUERY_MODEL = "{model}";\n', "utf-8")
    return {
        "vectors": vectors.astype(np.float64),
        "scales": scales.astype(np.float64),
        "mean": pca.mean_.astype("<f4").astype(np.float64),
        "components": pca.components_.astype("<f4").astype(np.float64),
        "clusterings": decoded,
    }


def _onnx(model: Any) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    example = torch.zeros(1, 3, PREPROCESS.size, PREPROCESS.size)
    torch.onnx.export(
        model,
        (example,),
        buffer,
        input_names=["pixels"],
        output_names=["embedding"],
        dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    return buffer.getvalue()


def reference(query: QuerySite, photo: Path) -> dict[str, Any]:
    """The answer from Python: the build's decode and model, the contract's arithmetic."""
    from generator.model.embed import embed_pixels

    pixels = decode(photo, PREPROCESS.size, SIDE).pixels
    feature = embed_pixels(query.model, pixels[None], PREPROCESS, "cpu")[0].astype(np.float64)
    ix = query.index
    q = feature / np.linalg.norm(feature)
    cosine = (ix["vectors"] @ q) * ix["scales"]
    order = sorted(range(len(cosine)), key=lambda i: (-cosine[i], i))[:TOP]
    coords = (feature - ix["mean"]) @ ix["components"].T
    clusters = {}
    for k, c in ix["clusterings"].items():
        d = np.linalg.norm(c["centres"] - coords, axis=1)
        clusters[k] = {"cluster": int(np.argmin(d)), "distance": float(d.min())}
    return {
        "pixels": pixels,
        "clusters": clusters,
        "top": [{"index": int(i), "cosine": float(cosine[i])} for i in order],
        "cosine": cosine,
        "coords": coords,
    }


def _b64(array: np.ndarray) -> str:
    return _b64_bytes(np.ascontiguousarray(array).tobytes())


def _b64_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
