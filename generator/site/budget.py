"""Fit a size budget (--max-size): shrink the previews, then the thumbnails, until what is sent
fits.

Plotly and the page are a fixed floor; only the images scale with size and quality. The previews
(--preview-size) go first: smaller steps down to just above the thumbnails, then none (the dialog
then shows the thumbnail); then the thumbnails. Both are re-encoded from the build's own images (no
original is read again) along one ladder, binary-searched for the largest step that fits. Every
step tried is measured exactly, so the chosen one is known to fit.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from generator.errors import BudgetError
from generator.ingest.imaging import PREVIEW_METHOD, THUMB_METHOD, THUMB_QUALITY, encode_thumb
from generator.report import Image, Report
from generator.site.render import render_site, site_images
from generator.sizes import format_size, round_up

log = logging.getLogger(__name__)

LADDER_SIZES = (1024, 768, 512, 384, 320, 256, 224, 192, 160, 128, 112, 96, 80, 64, 48, 32)
LOW_QUALITY = 60
LOW_QUALITY_BYTES = 0.7  # WebP q60 / q80 bytes, roughly: orders the ladder by expected size
Step = tuple[int, int]  # (longest side in px, WebP quality)
Rung = tuple[int, int, int]  # (preview px, 0 = no previews; thumbnail px; thumbnail quality)
Measure = Callable[[Report, Path], int]  # (report, site) → bytes of what is sent


@dataclass(frozen=True)
class Fit:
    """The thumbnails chosen to meet the budget, and the size that was measured with them."""

    thumb_size: int
    quality: int
    size: int
    budget: int
    shrunk: bool  # False: the build's own thumbnails already fitted
    preview_size: int = 0  # the previews' longest side; 0: none (dropped, or never made)


def thumb_ladder(thumb_size: int) -> list[Step]:
    """Steps from the build's own thumbnails down to 32 px, largest expected size first."""
    sizes = [thumb_size, *(s for s in LADDER_SIZES if s < thumb_size)]
    steps = {(s, q) for s in sizes for q in (THUMB_QUALITY, min(LOW_QUALITY, THUMB_QUALITY))}
    weight = {THUMB_QUALITY: 1.0, LOW_QUALITY: LOW_QUALITY_BYTES}
    return sorted(steps, key=lambda step: (-(step[0] ** 2) * weight[step[1]], -step[0]))


def ladder(thumb_size: int, preview_size: int = 0) -> list[Rung]:
    """The build's own images first; then smaller previews, no previews, smaller thumbnails."""
    sides = [preview_size, *LADDER_SIZES] if preview_size else []
    previews = dict.fromkeys(p for p in sides if thumb_size < p <= preview_size)
    rungs = [(p, thumb_size, THUMB_QUALITY) for p in previews]
    return rungs + [(0, px, quality) for px, quality in thumb_ladder(thumb_size)]


@dataclass
class Fitter:
    """The pipeline's `finish` step: makes the staged site fit `budget` as `measure` counts it."""

    budget: int
    thumb_size: int
    measure: Measure
    what: str
    lang: str = "en"
    preview_size: int = 0
    fit: Fit | None = field(default=None, init=False)  # what the last call chose

    def __call__(self, report: Report, site: Path) -> Report:
        size = self.measure(report, site)
        log.info("%s with %d px thumbnails: %s", self.what, self.thumb_size, format_size(size))
        previews = self.preview_size if any(i.preview for i in report.images) else 0
        if size <= self.budget:
            self.fit = Fit(self.thumb_size, THUMB_QUALITY, size, self.budget, False, previews)
            return report
        originals = {rel: (site / rel).read_bytes() for rel in site_images(report)}
        rungs = ladder(self.thumb_size, previews)[1:]
        low, high, best, last = 0, len(rungs) - 1, None, None
        while low <= high:
            mid = (low + high) // 2
            trial = shrink_images(report, site, originals, rungs[mid], self.lang)
            last, size = mid, self.measure(trial, site)
            log.info(
                "%s with previews %d px, thumbnails %d px q%d: %s",
                self.what,
                *rungs[mid],
                format_size(size),
            )
            if size <= self.budget:
                best, high = (mid, trial, size), mid - 1
            else:
                low = mid + 1
        if best is None:
            _, px, quality = rungs[-1]
            raise BudgetError(
                f"{self.what} would be {format_size(size)} even with the smallest thumbnails "
                f"({px} px, quality {quality}): more than --max-size {format_size(self.budget)}. "
                f"Use --max-size {round_up(size)} or more, or build from fewer images"
                f"{query_share(report)}."
            )
        mid, trial, size = best
        if report.query is not None:
            log.warning(
                "--query: the model, index and runtime take %s of --max-size %s, so the "
                "thumbnails were made smaller",
                format_size(report.query.bytes),
                format_size(self.budget),
            )
        if last != mid:  # the search ended on a step that did not fit: go back to the best one
            trial = shrink_images(report, site, originals, rungs[mid], self.lang)
        preview_px, px, quality = rungs[mid]
        self.fit = Fit(px, quality, size, self.budget, True, preview_px)
        return trial


def query_share(report: Report) -> str:
    """What --query adds to a site that cannot fit: its files cannot be made smaller."""
    if report.query is None:
        return ""
    return (
        f"; the model, index and runtime of --query take {format_size(report.query.bytes)} of "
        "it and cannot be made smaller: build without --query to leave them out"
    )


def shrink_images(
    report: Report, site: Path, originals: dict[str, bytes], rung: Rung, lang: str = "en"
) -> Report:
    """Rewrite every thumbnail and preview at `rung` from `originals` (previews removed when the
    rung has none); re-render the page; the new report."""
    preview_px, px, quality = rung
    jobs = {image.thumb: (px, quality, THUMB_METHOD) for image in report.images}
    for rel in {image.preview for image in report.images if image.preview}:
        if preview_px:
            jobs[rel] = (preview_px, THUMB_QUALITY, PREVIEW_METHOD)
        else:
            (site / rel).unlink(missing_ok=True)  # written by this build, in its staging folder

    def one(rel: str) -> tuple[str, tuple[int, int]]:
        size, encoded = reencode(originals[rel], *jobs[rel])
        (site / rel).write_bytes(encoded)
        return rel, size

    with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="thumbs") as pool:
        sizes = dict(pool.map(one, sorted(jobs)))
    images = tuple(_resized(image, sizes, bool(preview_px)) for image in report.images)
    smaller = replace(report, images=images)
    render_site(smaller, site, lang=lang)
    return smaller


def _resized(image: Image, sizes: dict[str, tuple[int, int]], previews: bool) -> Image:
    width, height = sizes[image.thumb]
    preview = sizes.get(image.preview) if previews and image.preview else None
    return replace(
        image,
        thumb_width=width,
        thumb_height=height,
        preview=image.preview if preview else None,
        preview_width=preview[0] if preview else None,
        preview_height=preview[1] if preview else None,
    )


def reencode(data: bytes, px: int, quality: int, method: int) -> tuple[tuple[int, int], bytes]:
    """A thumbnail at most `px` on its longest side (never enlarged), encoded from bare pixels
    by imaging.encode_thumb: no metadata can reach the site."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
    image.thumbnail((px, px), Image.Resampling.LANCZOS)
    return image.size, encode_thumb(image, quality, method)
