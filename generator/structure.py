"""Plain data handed from one pipeline stage to the next."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceImage:
    """An image file found by discovery; `rel` is what the site shows (POSIX, never absolute)."""

    path: Path
    rel: str


@dataclass(frozen=True)
class SkippedImage:
    """A file the build could not use, and why (shown on the page and in report.json)."""

    rel: str
    reason: str
