"""The files of "Find where a photo belongs" (`build --query`), in the site's query/ folder:
model.js (the ONNX model, base64), index.js (every image's feature as an int8 row, the PCA's mean
and components, each k's centres and typical distances, the build's decode sizes: query_index)
and onnxruntime-web's WASM runtime, from the vendored copy in generator/vendor/onnxruntime-web/.
A query's coordinates are (x - mean) @ components.T, x the raw feature (not the normalised
row). The page and `dinoclust query` read the same index.js, so they compare against the same
numbers. docs/query.md describes the files for readers; little-endian, floats float32.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from generator.analysis.analyse import Analysis
from generator.errors import GeneratorError, ModelError
from generator.model.export import QUERY_PRECISION, onnx_model
from generator.model.vit import MODEL_NAME, weights_id
from generator.report import Query, Report
from generator.site.exports import write_text
from generator.site.payload import b64
from generator.types import ModelInfo

QUERY_DIR = "query"
MODEL_JS = "query/model.js"
INDEX_JS = "query/index.js"
MODEL_GLOBAL = "DINOCLUST_QUERY_MODEL"
INDEX_GLOBAL = "DINOCLUST_QUERY_INDEX"
INDEX_VERSION = 1
NEIGHBOURS = 12  # the most similar images a query shows
# the vendored runtime (the page side's), as npm's dist/ has it or already wrapped
VENDOR = Path(__file__).resolve().parent.parent / "vendor" / "onnxruntime-web"
ORT_JS = "ort.wasm.min.js"  # a classic script: copied as it is
WASM = "ort-wasm-simd-threaded.wasm"  # → query/ort-wasm.js, a base64 global
GLUE = "ort-wasm-simd-threaded.mjs"  # → query/ort-glue.js, its text as a global
RUNTIME = {  # the site's file → (a vendored file copied as it is, the raw one it is made from)
    "query/ort.wasm.min.js": (ORT_JS, None),
    "query/ort-wasm.js": ("ort-wasm.js", WASM),
    "query/ort-glue.js": ("ort-glue.js", GLUE),
}


def unb64(text: str, dtype: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.frombuffer(base64.b64decode(text), dtype=dtype)
    return array.reshape(shape) if shape is not None else array


def quantise_rows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row L2-normalised, then int8 with its own scale: row ≈ int8 × scale. A zero row
    stays zero (scale 0), and so has cosine 0 with every query."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    peak = np.abs(unit).max(axis=1, keepdims=True) if len(unit) else np.zeros((0, 1))
    q = np.divide(127.0 * unit, peak, out=np.zeros_like(unit), where=peak > 0)
    return np.rint(q).astype(np.int8), (peak[:, 0] / 127.0).astype(np.float32)


def query_index(
    features: np.ndarray, analysis: Analysis, info: ModelInfo, sizes: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """index.js's object: rows in report.json's `images` order. `sizes`: the build's thumbnail
    and preview sizes, which decide how far a large image is reduced before the model's resize
    (imaging.decode keeps max(thumb, preview) px on the long side): a query decodes the same."""
    if analysis.pca_mean is None or analysis.pca_components is None:
        raise GeneratorError("--query needs the PCA's mean and components; build again.")
    n, dim = features.shape
    vectors, scales = quantise_rows(features)
    clusterings = {}
    for k, c in sorted(analysis.clusterings.items()):
        typical = []
        for cluster in range(k):
            member = c.distances[c.labels == cluster]
            p50, p90 = np.percentile(member, [50, 90]) if len(member) else (0.0, 0.0)
            typical.append([round(float(p50), 6), round(float(p90), 6)])
        clusterings[str(k)] = {"centres": b64(c.centers, "<f4"), "typical": typical}
    return {
        "version": INDEX_VERSION,
        "n": int(n),
        "dim": int(dim),
        "model": {"name": info.name, "weights_id": info.weights_id},
        "vectors": b64(vectors, "i1"),
        "scales": b64(scales, "<f4"),
        "pca": {
            "mean": b64(analysis.pca_mean, "<f4"),
            "components": b64(analysis.pca_components, "<f4"),
        },
        "clusterings": clusterings,
        "decode": {"thumb_size": int(sizes[0]), "preview_size": int(sizes[1])},
    }


def write_query(site: Path, model: bytes, index: Mapping[str, Any]) -> int:
    """query/model.js, query/index.js and the runtime into `site` (a staging folder); returns
    their size together."""
    folder = site / QUERY_DIR
    folder.mkdir(exist_ok=True)
    model_text = base64.b64encode(model).decode("ascii")
    write_text(site / MODEL_JS, f'window.{MODEL_GLOBAL} = "{model_text}";\n')
    write_text(site / INDEX_JS, index_script(index))
    write_runtime(site)
    return sum(path.stat().st_size for path in folder.iterdir())


def index_script(index: Mapping[str, Any]) -> str:
    """query/index.js's text: the index as one sorted-key JSON global."""
    data = json.dumps(index, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return f"window.{INDEX_GLOBAL} = {data};\n"


def write_runtime(site: Path) -> None:
    """onnxruntime-web's runtime into query/: its script copied; its .wasm as a base64 global
    and its glue module's text as a string global (a file:// page can fetch neither)."""
    for rel, (wrapped, raw) in RUNTIME.items():
        if (VENDOR / wrapped).is_file():
            shutil.copyfile(VENDOR / wrapped, site / rel)
        elif raw == WASM and (VENDOR / raw).is_file():
            wasm = base64.b64encode((VENDOR / raw).read_bytes()).decode("ascii")
            write_text(site / rel, f'window.DINOCLUST_ORT_WASM = "{wasm}";\n')
        elif raw == GLUE and (VENDOR / raw).is_file():
            glue = json.dumps((VENDOR / raw).read_text(encoding="utf-8"), ensure_ascii=True)
            write_text(site / rel, f"window.DINOCLUST_ORT_GLUE = {glue};\n")
        else:
            raise GeneratorError(
                f"--query: this installation lacks onnxruntime-web's runtime "
                f"({VENDOR / wrapped}). Reinstall dinoclust (or, in a source checkout, run "
                "scripts/update-ort-web.sh), or build without --query."
            )


def block_id(rel: str) -> str:
    """The id of a query file's data block in the single file (query.js derives the same)."""
    return "dinoclust-" + re.sub(r"[/.]", "-", rel)


_GLOBAL = re.compile(r"window\.[A-Z_]+ = (.*);\s*", re.DOTALL)


def query_blocks(report: Report, site: Path) -> tuple[tuple[str, Any], ...]:
    """The single file's copy of the query files, which it cannot load: for each, in load
    order, its block id and the value its script sets (the runtime's own script: its text,
    which the page runs from a blob: URL). Read back from the built `site`, so the single
    file carries exactly the folder site's bytes."""
    if report.query is None:
        return ()
    blocks = []
    for rel in (*report.query.runtime, report.query.model, report.query.index):
        text = (site / rel).read_text(encoding="utf-8")
        if rel == f"{QUERY_DIR}/{ORT_JS}":
            blocks.append((block_id(rel), text))
            continue
        found = _GLOBAL.fullmatch(text)
        if found is None:
            raise GeneratorError(f"{site / rel} is not a query file; build the site again.")
        blocks.append((block_id(rel), json.loads(found.group(1))))
    return tuple(blocks)


def read_index(site: Path) -> dict[str, Any]:
    """A site's query/index.js as data; an error saying what to do when there is none."""
    path = site / INDEX_JS
    if not path.is_file():
        raise GeneratorError(
            f"{site} has no {INDEX_JS}: it was built without --query. Build it again with "
            "--query to search it by photo."
        )
    text = path.read_text(encoding="utf-8").strip()
    prefix = f"window.{INDEX_GLOBAL} = "
    try:
        if not (text.startswith(prefix) and text.endswith(";")):
            raise ValueError("not the expected global")
        data = json.loads(text[len(prefix) : -1])
        if data["version"] != INDEX_VERSION:
            raise ValueError(f"version {data['version']}")
    except (ValueError, KeyError, TypeError) as exc:
        raise GeneratorError(
            f"{path} is not a query index this version of dinoclust can read ({exc}). "
            "Build the site again with --query."
        ) from exc
    return data


# --- the build's step ------------------------------------------------------------------------


def add_query(
    report: Report, site: Path, features: np.ndarray, analysis: Analysis, model: QueryModel
) -> Report:
    """Write the query files into `site` and say so in the report (the page shows the control
    only then). The model is the one the vectors came from, exported to ONNX (cached)."""
    check_same_model(model)
    onnx = onnx_model(model.weights, model.seed, model.cache_dir, model.precision)
    index = query_index(features, analysis, model.info, model.sizes)
    size = write_query(site, onnx, index)  # write_runtime wrote every RUNTIME file, or raised
    return replace(report, query=Query(MODEL_JS, INDEX_JS, tuple(RUNTIME), model.precision, size))


@dataclass(frozen=True)
class QueryModel:
    """The model the page's queries go through: `weights`/`seed` as the options name them, and
    `info`, the identity of the model the site's vectors came from (they must agree)."""

    info: ModelInfo
    weights: str
    seed: int
    cache_dir: Path | None
    sizes: tuple[int, int] = (0, 0)  # the build's --thumb-size and --preview-size
    precision: str = QUERY_PRECISION


def check_same_model(model: QueryModel) -> None:
    """A query is only comparable with vectors of the same model and weights."""
    have = model.info.weights_id
    if model.info.name != MODEL_NAME:
        raise ModelError(
            f"--query: the vectors were made by {model.info.name}, not {MODEL_NAME}, the model "
            "the page can run. Build without --query, or embed the images with dinoclust."
        )
    want = weights_id(model.weights, model.seed)
    if want != have:
        raise ModelError(
            f"--query: the vectors were made with weights {have}, but --weights "
            f"{model.weights} --seed {model.seed} gives {want}. Pass {how_to_name(have)} so "
            "that the page's model is the one that made them."
        )


def how_to_name(weights: str) -> str:
    """The options that name the weights of a weights id."""
    kind, _, value = weights.partition(":")
    if kind == "random":
        return f"--weights random --seed {value}"
    if kind == "hub":
        return "--weights pretrained"
    return f"--weights PATH (the checkpoint whose SHA-256 is {value[:12]}…)"
