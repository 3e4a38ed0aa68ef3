"""Screenshot a generated site in headless Chromium (README's picture, and for review).

    python scripts/screenshot.py site/index.html docs/screenshot.png [--k 3] [--full-page]
        [--height PX] [--scroll-to CSS]  # a taller window, or the window from an element down

Uses the browser tests' launcher (tests/browser.py): Debian's Chromium with software WebGL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import launch, open_page  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--full-page", action="store_true")
    parser.add_argument("--height", type=int, help="window height in pixels (default 800)")
    parser.add_argument("--scroll-to", help="CSS selector of the element to start the picture at")
    args = parser.parse_args()
    with launch() as browser, open_page(browser, args.page, f"k={args.k}") as opened:
        page = opened.page
        if args.height:
            page.set_viewport_size({"width": page.viewport_size["width"], "height": args.height})
        page.evaluate("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
        if args.scroll_to:
            page.locator(args.scroll_to).scroll_into_view_if_needed()
            page.evaluate("s => document.querySelector(s).scrollIntoView()", args.scroll_to)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.png), full_page=args.full_page)
    if opened.errors or opened.external:
        sys.exit(f"page problems: errors {opened.errors}, external requests {opened.external}")


if __name__ == "__main__":
    main()
