"""Fit a size budget (--max-size): shrink the thumbnails until what is sent fits.

Plotly and the page are a fixed floor; only the thumbnails scale with size and quality. They are
re-encoded from the build's own thumbnails (small, quick to decode: no original is read again)
along a ladder of sizes and qualities, binary-searched for the largest step that fits. Every step
tried is measured exactly, so the chosen one is known to fit.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.errors import BudgetError
from generator.imaging import THUMB_QUALITY, encode_thumb
from generator.render import render_site
from generator.sizes import format_size, round_up

log = logging.getLogger(__name__)

LADDER_SIZES = (1024, 768, 512, 384, 320, 256, 224, 192, 160, 128, 112, 96, 80, 64, 48, 32)
LOW_QUALITY = 60
LOW_QUALITY_BYTES = 0.7  # WebP q60 / q80 bytes, roughly: orders the ladder by expected size
Step = tuple[int, int]  # (longest side in px, WebP quality)
Measure = Callable[[dict[str, Any], Path], int]  # (report, site) → bytes of what is sent


@dataclass(frozen=True)
class Fit:
    """The thumbnails chosen to meet the budget, and the size that was measured with them."""

    thumb_size: int
    quality: int
    size: int
    budget: int
    shrunk: bool  # False: the build's own thumbnails already fitted


def thumb_ladder(thumb_size: int) -> list[Step]:
    """Steps from the build's own thumbnails down to 32 px, largest expected size first."""
    sizes = [thumb_size, *(s for s in LADDER_SIZES if s < thumb_size)]
    steps = {(s, q) for s in sizes for q in (THUMB_QUALITY, min(LOW_QUALITY, THUMB_QUALITY))}
    weight = {THUMB_QUALITY: 1.0, LOW_QUALITY: LOW_QUALITY_BYTES}
    return sorted(steps, key=lambda step: (-(step[0] ** 2) * weight[step[1]], -step[0]))


class Fitter:
    """The pipeline's `finish` step: makes the staged site fit `budget` as `measure` counts it."""

    def __init__(
        self, budget: int, thumb_size: int, measure: Measure, what: str, lang: str = "en"
    ) -> None:
        self.budget, self.thumb_size, self.measure, self.what = budget, thumb_size, measure, what
        self.lang = lang
        self.fit: Fit | None = None

    def __call__(self, report: dict[str, Any], site: Path) -> dict[str, Any]:
        size = self.measure(report, site)
        log.info("%s with %d px thumbnails: %s", self.what, self.thumb_size, format_size(size))
        if size <= self.budget:
            self.fit = Fit(self.thumb_size, THUMB_QUALITY, size, self.budget, shrunk=False)
            return report
        originals = {rel: (site / rel).read_bytes() for rel in _thumbs(report)}
        ladder = thumb_ladder(self.thumb_size)[1:]
        low, high, best, last = 0, len(ladder) - 1, None, None
        while low <= high:
            mid = (low + high) // 2
            trial = shrink_thumbs(report, site, originals, ladder[mid], self.lang)
            last, size = mid, self.measure(trial, site)
            log.info("%s with thumbnails %d px q%d: %s", self.what, *ladder[mid], format_size(size))
            if size <= self.budget:
                best, high = (mid, trial, size), mid - 1
            else:
                low = mid + 1
        if best is None:
            px, quality = ladder[-1]
            raise BudgetError(
                f"{self.what} would be {format_size(size)} even with the smallest thumbnails "
                f"({px} px, quality {quality}): more than --max-size {format_size(self.budget)}. "
                f"Use --max-size {round_up(size)} or more, or build from fewer images."
            )
        mid, trial, size = best
        if last != mid:  # the search ended on a step that did not fit: go back to the best one
            trial = shrink_thumbs(report, site, originals, ladder[mid], self.lang)
        self.fit = Fit(*ladder[mid], size, self.budget, shrunk=True)
        return trial


def shrink_thumbs(
    report: dict[str, Any], site: Path, originals: dict[str, bytes], step: Step, lang: str = "en"
) -> dict[str, Any]:
    """Rewrite every thumbnail at `step` from `originals`; re-render the page; the new report."""
    px, quality = step

    def one(item: tuple[str, bytes]) -> tuple[str, tuple[int, int]]:
        rel, data = item
        size, encoded = reencode(data, px, quality)
        (site / rel).write_bytes(encoded)
        return rel, size

    with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="thumbs") as pool:
        sizes = dict(pool.map(one, sorted(originals.items())))
    images = [
        {**image, "thumb_width": sizes[image["thumb"]][0], "thumb_height": sizes[image["thumb"]][1]}
        for image in report["images"]
    ]
    smaller = {**report, "images": images}
    render_site(smaller, site, lang=lang)
    return smaller


def reencode(data: bytes, px: int, quality: int) -> tuple[tuple[int, int], bytes]:
    """A thumbnail at most `px` on its longest side (never enlarged), encoded from bare pixels
    by imaging.encode_thumb: no metadata can reach the site."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
    image.thumbnail((px, px), Image.Resampling.LANCZOS)
    return image.size, encode_thumb(image, quality)


def _thumbs(report: dict[str, Any]) -> list[str]:
    return sorted({image["thumb"] for image in report["images"]})
