"""Headless Chromium for the browser tests: launch Debian's binary, open a page offline, read it.

`playwright install` cannot download a browser here, so the tests launch the system Chromium with
the flags that give software WebGL (see shared/testing/browser.md). Without those flags Plotly shows
"WebGL is not supported" and its newPlot promise still resolves, so tests must look at the pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/lib/chromium/chromium"
SKIP_ENV = "DINOCLUST_SKIP_BROWSER"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL = ("file:", "data:", "blob:")
READY_JS = "document.body && document.body.dataset.ready === 'true'"
TIMEOUT_MS = 60_000  # software WebGL is slow; wait on page state, generously


def wait_ready(where: Any, timeout: float = TIMEOUT_MS) -> None:
    """Until the page or frame says it is ready (body[data-ready=true]), through a selector, not
    wait_for_function: a frame that navigates while Playwright polls (an iframe's srcdoc replacing
    its first about:blank) has its predicate evaluated again under the report's CSP, which forbids
    eval (seen as an EvalError in one CI trial; microsoft/playwright#36982)."""
    where.locator("body[data-ready='true']").wait_for(state="attached", timeout=timeout)


def require_chromium() -> str:
    """A missing browser fails loudly: skipping would hide that nothing was checked."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: browser tests skipped")
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. Install it with `apt-get install -y chromium`, "
            f"point CHROMIUM_PATH at a Chromium binary, or set {SKIP_ENV}=1 to skip these tests.",
            pytrace=False,
        )
    return CHROMIUM


@contextmanager
def launch() -> Iterator[Browser]:
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Opened:
    """A loaded page plus what it did: requests that tried to leave file://, and errors."""

    page: Page
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def open_page(
    browser: Browser,
    html: Path | str,
    fragment: str = "",
    blocked: str | None = None,
    viewport: tuple[int, int] = (1200, 800),
    bypass_csp: bool = False,
    touch: bool = False,
    ready: bool = True,
    local: tuple[str, ...] = LOCAL,
) -> Iterator[Opened]:
    """Open `html` (+ `#fragment`) offline and wait until the page says its first render is done.
    A local file whose address contains `blocked` fails to load, as a broken copy would.
    `bypass_csp` lets a test inject a script of its own (axe-core); `touch` reads it as a phone
    does (a touch screen, no hover); `ready=False` does not wait for the page's ready flag (a page
    that frames the site). `html` may be an address (a str), served by a test's own server:
    `local` then names what the page may load (its origin); every other request is recorded."""
    width, height = viewport
    context = browser.new_context(
        viewport={"width": width, "height": height},
        bypass_csp=bypass_csp,
        has_touch=touch,
        is_mobile=touch,
    )
    page = context.new_page()
    opened = Opened(page)

    def route(r: Route) -> None:
        if blocked is not None and blocked in r.request.url:
            r.abort()
        elif r.request.url.startswith(local):
            r.continue_()
        else:
            opened.external.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    try:
        address = html if isinstance(html, str) else html.resolve().as_uri()
        url = address + (f"#{fragment}" if fragment else "")
        page.goto(url, timeout=TIMEOUT_MS)
        if ready:
            page.wait_for_function(READY_JS, timeout=TIMEOUT_MS)
        yield opened
    finally:
        context.close()


def wait_for_k(page: Page, k: int) -> None:
    """The page has switched to `k` and Plotly has redrawn with k centres."""
    page.wait_for_function(
        """k => document.body.dataset.k === String(k)
             && document.querySelectorAll('#grid > section[data-cluster]').length === k
             && (document.getElementById('plot').data || []).some(
                  t => t.name === 'Centres' && t.x.length === k)""",
        arg=k,
        timeout=TIMEOUT_MS,
    )


def hue_pixels(png: bytes, hex_colour: str, tolerance: int = 8) -> int:
    """Clearly coloured pixels with the hue of `hex_colour` (0–255 scale, ±`tolerance`).

    Hue, not exact RGB: marker opacity and anti-aliasing blend towards white and keep the hue,
    while axes, grid, text and the black centres have no saturation at all.
    """
    import numpy as np
    from PIL import Image

    swatch = Image.new("RGB", (1, 1), hex_colour).convert("HSV").getpixel((0, 0))
    hsv = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").convert("HSV"), dtype=np.int16)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    distance = np.abs(hue - swatch[0])  # type: ignore[index]
    distance = np.minimum(distance, 256 - distance)
    return int(((distance <= tolerance) & (saturation >= 50) & (value >= 40)).sum())


def point_step(report: dict) -> float:
    """How far the page's 3D positions may be from report.json's: they travel as 16-bit steps of
    each axis's range (payload.POINT_STEPS), half a step at most, plus float rounding."""
    points = report["points"]
    spans = [max(p[a] for p in points) - min(p[a] for p in points) for a in range(3)]
    return max(spans) / 65535 / 2 + 1e-9
