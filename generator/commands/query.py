"""`dinoclust query PHOTO... --site SITE`: where each photo belongs in a site built with --query.

The page's "Find where a photo belongs" in Python, for scripts and the page's own test: each
photo goes through the build's decoder and the model the options name (the site's weights id),
then through the numbers of the site's query/index.js, which the page reads too: for every k the
nearest centre in PCA space and that cluster's typical range (p50, p90 of its members'
distances), and the 12 most similar images by cosine over the int8 index the page searches.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.config import QueryConfig
from generator.errors import ConfigError, InputError, ModelError
from generator.ingest.imaging import DecodeError, decode
from generator.model.vit import PREPROCESS
from generator.report import read_report
from generator.site.query import NEIGHBOURS, how_to_name, read_index, unb64

if TYPE_CHECKING:
    from generator.model.embed import LazyEmbedder

log = logging.getLogger(__name__)

MAX_QUERY_PIXELS = 50_000_000  # a larger photo is refused, as the page refuses it (memory)


@dataclass(frozen=True)
class Placement:
    """The photo's cluster at one k: the nearest centre, and the cluster's typical distances."""

    k: int
    cluster: int
    distance: float
    typical: tuple[float, float]  # p50, p90 of the members' distances to their centre


@dataclass(frozen=True)
class Similar:
    index: int  # in report.json's `images`
    path: str
    cosine: float  # through the int8 index, as the page computes it


@dataclass(frozen=True)
class Answer:
    photo: str
    coords: tuple[float, ...]  # the photo's PCA coordinates (the 3D view's point: the first 3)
    clusters: tuple[Placement, ...]
    similar: tuple[Similar, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "photo": self.photo,
            "coords": [round(c, 6) for c in self.coords],
            "clusters": {
                str(p.k): {
                    "cluster": p.cluster,
                    "distance": round(p.distance, 6),
                    "typical": [round(t, 6) for t in p.typical],
                }
                for p in self.clusters
            },
            "similar": [
                {"index": s.index, "path": s.path, "cosine": round(s.cosine, 6)}
                for s in self.similar
            ],
        }


@dataclass(frozen=True)
class SiteIndex:
    """A site's query/index.js, decoded: what every query is compared with."""

    weights_id: str
    vectors: np.ndarray  # (N, dim) int8
    scales: np.ndarray  # (N,) float32
    mean: np.ndarray  # (dim,) float32
    components: np.ndarray  # (d, dim) float32
    centres: dict[int, np.ndarray]  # k → (k, d) float32
    typical: dict[int, list[tuple[float, float]]]
    paths: tuple[str, ...]
    sizes: tuple[int, int]  # the build's thumbnail and preview sizes: decode() as it did
    model: tuple[str, str]  # the build's precision and backend

    @classmethod
    def read(cls, site: Path) -> SiteIndex:
        if not site.is_dir():
            raise InputError(
                f"--site {site}: no such folder. Name the folder a `dinoclust build --query` wrote."
            )
        if not (site / "report.json").is_file():
            raise InputError(
                f"--site {site}: no report.json, so not a dinoclust site. Name the folder a "
                "`dinoclust build --query` wrote."
            )
        report = read_report(site / "report.json")
        data = read_index(site)
        n, dim = int(data["n"]), int(data["dim"])
        mean = unb64(data["pca"]["mean"], "<f4")
        components = unb64(data["pca"]["components"], "<f4")
        d = len(components) // dim
        centres, typical = {}, {}
        for key, c in data["clusterings"].items():
            k = int(key)
            centres[k] = unb64(c["centres"], "<f4", (k, d))
            typical[k] = [(float(p50), float(p90)) for p50, p90 in c["typical"]]
        return cls(
            weights_id=data["model"]["weights_id"],
            vectors=unb64(data["vectors"], "i1", (n, dim)),
            scales=unb64(data["scales"], "<f4"),
            mean=mean,
            components=components.reshape(d, dim),
            centres=dict(sorted(centres.items())),
            typical=typical,
            paths=tuple(image.path for image in report.images),
            sizes=(int(data["decode"]["thumb_size"]), int(data["decode"]["preview_size"])),
            model=(report.model.precision, report.model.backend),
        )

    def answer(self, photo: str, feature: np.ndarray) -> Answer:
        """Where `feature` (the raw CLS feature, as the build stored it) belongs."""
        x = np.asarray(feature, dtype=np.float32)
        coords = (x - self.mean).astype(np.float32) @ self.components.T
        placements = []
        for k, centres in self.centres.items():
            distances = np.linalg.norm(centres - coords, axis=1)
            cluster = int(np.argmin(distances))  # the lowest id on a tie
            p50, p90 = self.typical[k][cluster]
            placements.append(Placement(k, cluster, float(distances[cluster]), (p50, p90)))
        norm = float(np.linalg.norm(x))
        unit = x / norm if norm > 0 else x
        scores = (self.vectors.astype(np.float32) @ unit) * self.scales
        best = np.argsort(-scores, kind="stable")[:NEIGHBOURS]  # ties: the earlier image
        similar = tuple(Similar(int(i), self.paths[i], float(scores[i])) for i in best)
        return Answer(photo, tuple(float(c) for c in coords), tuple(placements), similar)


def query_photos(config: QueryConfig) -> list[Answer]:
    """Every photo's answer, in the order given; the first unusable photo stops with its error."""
    from generator.model.vit import weights_id

    index = SiteIndex.read(config.site)
    have = weights_id(config.model.weights, config.model.seed)
    if have != index.weights_id:
        raise ModelError(
            f"{config.site} was built with weights {index.weights_id}, but --weights "
            f"{config.model.weights} --seed {config.model.seed} is {have}. Pass "
            f"{how_to_name(index.weights_id)}, the site's weights."
        )
    pixels = np.stack([photo_pixels(photo, index.sizes) for photo in config.photos])
    with closing(_site_model(config, index.model)) as lazy:
        features = np.asarray(lazy(pixels), dtype=np.float32)
    return [
        index.answer(str(photo), feature)
        for photo, feature in zip(config.photos, features, strict=True)
    ]


def _site_model(config: QueryConfig, site: tuple[str, str]) -> LazyEmbedder:
    """The model the options name; with --precision and --backend left at auto, the site's own
    precision and backend where they run here (a photo of the site then gets the build's
    vector), else auto's choice."""
    from generator.model.embed import plan_embedder

    model = config.model
    if (model.precision, model.backend) == ("auto", "auto"):
        try:
            same = replace(model, precision=site[0], backend=site[1])
            return plan_embedder(same, config.cache_dir)
        except (ModelError, ConfigError) as exc:
            log.info("the site's %s on %s cannot run here (%s): auto instead", *site, exc)
    return plan_embedder(model, config.cache_dir)


def photo_pixels(photo: Path, sizes: tuple[int, int]) -> np.ndarray:
    """The model's 224×224 input for `photo`, by the build's decoder as the build called it
    (`sizes`: its thumbnail and preview sizes); a clear error if none."""
    if not photo.is_file():
        raise InputError(f"{photo}: no such file. Name an image file (JPEG, PNG, WebP, …).")
    _check_pixels(photo)
    try:
        return decode(photo, PREPROCESS.size, *sizes).pixels
    except DecodeError as exc:
        raise InputError(f"{photo}: cannot be used: {exc}. Choose an image file.") from None


def _check_pixels(photo: Path) -> None:
    """A photo above MAX_QUERY_PIXELS is refused from its header, before it is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb warning: the size is said below
            with Image.open(photo) as image:
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return  # decode() says what is wrong with it, in the build's words
    if width * height > MAX_QUERY_PIXELS:
        raise InputError(
            f"{photo}: {width}×{height} is {width * height / 1e6:.0f} megapixels, more than a "
            f"query takes ({MAX_QUERY_PIXELS / 1e6:.0f}). Use a smaller copy of the photo."
        )


def answers_text(answers: list[Answer]) -> str:
    """What `dinoclust query` prints without --json: per photo, each k, then the 12 images."""
    lines = []
    for answer in answers:
        lines.append(answer.photo)
        for p in answer.clusters:
            lines.append(
                f"  k={p.k}: cluster {p.cluster}, distance {p.distance:.4f} "
                f"(typical {p.typical[0]:.4f}, 90% within {p.typical[1]:.4f})"
            )
        lines.append("  most similar:")
        lines.extend(f"    {s.cosine:.4f}  {s.path}" for s in answer.similar)
    return "\n".join(lines)
