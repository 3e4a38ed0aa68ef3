"""Plain data handed from one pipeline stage to the next."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generator.i18n import Message


@dataclass(frozen=True)
class SourceImage:
    """An image file found by discovery; `rel` is what the site shows (POSIX, never absolute)."""

    path: Path
    rel: str
    folder: str = ""  # first folder below its input root (--labels folders); "" when none


@dataclass(frozen=True)
class SkippedImage:
    """A file the build could not use, and why (shown on the page and in report.json)."""

    rel: str
    why: Message

    @property
    def reason(self) -> str:
        """In English, as the log and report.json's `reason` say it."""
        return self.why.text()


@dataclass(frozen=True)
class Alias:
    """A further path to an image already included (a symlink or a hard link to the same file):
    not used twice, but listed, so that every path found is accounted for."""

    rel: str
    same_as: str  # the `rel` of the image it reaches
    folder: str = ""


# One line per build phase that can take more than a second ("loading model…"): the CLI shows
# these between progress bars unless --quiet; a library caller sees them as INFO records.
PHASE_LOGGER = "generator.phase"
