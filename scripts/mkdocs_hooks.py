"""mkdocs hooks (mkdocs.yml `hooks:`): small fixes to generated reference pages."""

from __future__ import annotations

from typing import Any


def on_page_content(html: str, **_: Any) -> str:
    """mkdocs-click prints click 8.3's "no default" sentinel as `Sentinel.UNSET`: say none."""
    return html.replace("Sentinel.UNSET", "none")
