"""The clusters' colours (templates/static/js/data.js): distinct up to k = 50, sort's limit.

Distance is CIELAB ΔE*ab (CIE76, D65 white): about 2.3 is a just-noticeable difference; the
palette keeps every pair, and so every pair of adjacent clusters, at least MIN_DELTA_E apart.
"""

from __future__ import annotations

import itertools
import re

from generator.i18n import templates_dir

K_LIMIT = 50  # sort's --k-max limit, and the page's
MIN_DELTA_E = 22.0  # Paul Tol's "muted" scheme itself has two colours 22.8 apart
TOL_MUTED = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
             "#DDCC77", "#CC6677", "#882255", "#AA4499", "#DDDDDD"]  # fmt: skip


def palette() -> list[str]:
    text = (templates_dir() / "static" / "js" / "data.js").read_text(encoding="utf-8")
    block = re.search(r"var PALETTE = \[(.*?)\];", text, re.S)
    assert block is not None
    return re.findall(r'"(#[0-9A-Fa-f]{6})"', block.group(1))


def lab(colour: str) -> tuple[float, float, float]:
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    fx, fy, fz = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(a: str, b: str) -> float:
    return sum((p - q) ** 2 for p, q in zip(lab(a), lab(b), strict=True)) ** 0.5


def test_the_first_ten_are_todays_colours() -> None:
    assert palette()[:10] == TOL_MUTED


def test_fifty_clusters_have_fifty_distinct_colours() -> None:
    colours = [c.upper() for c in palette()]
    assert len(colours) >= K_LIMIT
    assert len(set(colours[:K_LIMIT])) == K_LIMIT  # cluster 10 is no longer cluster 0's indigo
    adjacent = min(delta_e(a, b) for a, b in itertools.pairwise(colours[:K_LIMIT]))
    anywhere = min(delta_e(a, b) for a, b in itertools.combinations(colours[:K_LIMIT], 2))
    assert adjacent >= MIN_DELTA_E, adjacent
    assert anywhere >= MIN_DELTA_E, anywhere
    # none is so light that it vanishes on the white page (Tol's pale grey #DDDDDD is the lightest)
    assert max(lab(c)[0] for c in colours[:K_LIMIT]) <= lab("#DDDDDD")[0] + 0.01
