"""Read the page's own data back in Python, as data.js decodes it: tests assert on what the
page holds (payload.page_data), not on report.json."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

BLOCK = re.compile(
    r'<script type="application/(?:json|octet-stream)" id="dinoclust-([a-z]+)-?([\w-]*)">'
    r"(.*?)</script>",
    re.DOTALL,
)
DTYPES = {"u1": "<u1", "u2": "<u2", "u4": "<u4", "f8": "<f8"}


def column(meta: dict[str, Any], name: str, encoded: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype=DTYPES[meta["columns"][name]])


def distances(packed: dict[str, str]) -> list[float]:
    raw = np.frombuffer(
        base64.b64decode(packed["data"]), dtype="<u4" if packed["dtype"] == "micro" else "<f8"
    )
    return [float(v) / 1e6 for v in raw] if packed["dtype"] == "micro" else raw.tolist()


def decode(html: str) -> dict[str, Any]:
    """The page data of `html`: meta, images (path, thumb, preview), points, per-k labels and,
    where the page holds them inline (the single file), distances."""
    meta: dict[str, Any] = {}
    columns: dict[str, str] = {}
    inline: dict[str, dict[str, str]] = {}
    for what, name, text in BLOCK.findall(html):
        if what == "data":
            meta = json.loads(text)
        elif what == "col":
            columns[name] = text
        elif what == "distances":
            inline[name] = json.loads(text)
    cols = {name: column(meta, name, text) for name, text in columns.items()}
    n = meta["n"]
    paths, previous = [], ""
    for shared, rest in zip(cols["path_shared"], meta["path_rest"], strict=True):
        units = previous.encode("utf-16-le")[: 2 * int(shared)].decode("utf-16-le")
        previous = units + rest
        paths.append(previous)

    def names(spec: dict[str, Any] | None, i: int) -> str | None:
        if spec is None:
            return None
        if "list" in spec:
            return spec["list"][i]
        keys = cols["thumb_hex"].reshape(n, -1)
        return spec["prefix"] + keys[i].tobytes().hex() + spec["suffix"]

    previews = meta["previews"]
    has_preview = cols.get("preview_width", np.zeros(n))
    images = [
        {
            "path": paths[i],
            "thumb": names(meta["thumbs"], i),
            "thumb_width": int(cols["thumb_width"][i]),
            "thumb_height": int(cols["thumb_height"][i]),
            "preview": names(previews, i) if has_preview[i] else None,
        }
        for i in range(n)
    ]
    q = cols["points"].reshape(n, 3).astype(np.float64)
    ranges = np.array(meta["points_range"])
    points = ranges[:, 0] + q * (ranges[:, 1] - ranges[:, 0]) / 65535
    clusterings = {
        k: {**c, "labels": cols[f"labels_{k}"].tolist()} for k, c in meta["clusterings"].items()
    }
    for k, packed in inline.items():
        clusterings[k]["distances"] = distances(packed)
    return {
        "meta": meta,
        "images": images,
        "points": points,
        "clusterings": clusterings,
        "display_sample": cols["display_sample"].tolist(),
        "labels": [meta["label_names"][i] for i in cols["label_index"]]
        if "label_index" in cols
        else None,
    }
