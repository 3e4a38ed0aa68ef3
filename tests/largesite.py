"""A large site without images or a model, for the browser test at ~30k points and for
benchmarks/bench_page.py --synthetic: blob features through the real analysis, the real report
and page, and one small WebP thumbnail per image (a colour per blob)."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from generator.analysis.analyse import Analysis, analyse
from generator.analysis.sample import DEFAULT_DISPLAY_POINTS
from generator.report import Report
from generator.site.payload import ImageRecord, SampledTotals, build_report
from generator.site.render import render_site
from generator.types import ModelInfo

INFO = ModelInfo("synthetic", "none", "synthetic:1", False, "cpu", "fp32")
GROUPS = 12


def thumbs(groups: int = GROUPS) -> list[bytes]:
    from PIL import Image

    out = []
    for g in range(groups):
        image = Image.new("RGB", (48, 36), ((37 * g) % 256, (91 * g) % 256, (173 * g) % 256))
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=60)
        out.append(buffer.getvalue())
    return out


def large_site(
    site: Path,
    n: int,
    k_max: int = 10,
    display_points: int | None = DEFAULT_DISPLAY_POINTS,
    sampled: Callable[[Analysis], SampledTotals] | None = None,
) -> Report:
    """Write a site of `n` synthetic images into `site`; its report. Paths are in sorted order,
    as discovery gives them: a folder per blob. `sampled`: the totals, if the images stand for
    a sample of a larger store (given the analysis)."""
    group = np.arange(n) * GROUPS // n
    analysis = _analysis(n, k_max)
    (site / "thumbs").mkdir(parents=True, exist_ok=True)
    pictures = thumbs()
    images = []
    for i in range(n):
        rel = f"thumbs/{i:020x}.webp"
        (site / rel).write_bytes(pictures[group[i]])
        images.append(ImageRecord(f"g{group[i]:02d}/img_{i:06d}.jpg", rel, (48, 36), (4000, 3000)))
    totals = sampled(analysis) if sampled else None
    report = build_report(
        "Synthetic", images, [], analysis, INFO, 0, display_points=display_points, sampled=totals
    )
    render_site(report, site)
    return report


@functools.lru_cache(maxsize=2)
def _analysis(n: int, k_max: int) -> Analysis:
    rng = np.random.default_rng(n)
    group = np.arange(n) * GROUPS // n
    centres = rng.normal(0, 6, size=(GROUPS, 32))
    features = (centres[group] + rng.normal(size=(n, 32))).astype(np.float32)
    return analyse(features, k_max=k_max, seed=0)
