"""Plain data handed from one pipeline stage to the next."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # `import generator` (and so `dinoclust --help`) stays without numpy
    import numpy as np

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


@dataclass(frozen=True)
class ModelInfo:
    """Which model, weights, device and precision; never holds an absolute path.

    `weights_id` identifies the weights exactly (hub id, checkpoint hash, random seed): with the
    preprocessing and precision it keys the embedding cache. `weights` says it in English;
    `weights_i18n`, where given, is the same as a UI string for the page.
    """

    name: str
    weights: str
    weights_id: str
    random_weights: bool
    device: str
    precision: str
    weights_i18n: Message | None = None
    backend: str = "torch"  # what runs the model: "torch" or "openvino" (--backend)


class Embedder(Protocol):
    """Anything that maps uint8 pixels (B, H, W, 3) to features (B, D); tests pass fakes."""

    info: ModelInfo

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Row:
    """One input file's result. `vector` is None exactly when `error` says why it was skipped."""

    rel: str
    sha256: str | None = None
    size: tuple[int, int] | None = None  # original (width, height) after orientation
    thumb: bytes | None = None  # encoded WebP, metadata-free
    thumb_size: tuple[int, int] | None = None
    vector: np.ndarray | None = None  # (D,) float32
    error: Message | None = None
    preview: bytes | None = None  # the preview dialog's larger image (--preview-size)
    preview_size: tuple[int, int] | None = None

    @classmethod
    def skipped(cls, rel: str, why: Message, sha256: str | None = None) -> Row:
        return cls(rel, sha256=sha256, error=why)


class Progress(Protocol):
    """`with progress(label, total) as advance: advance(n)` — the CLI draws a bar, tests don't."""

    def __call__(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...


@contextmanager
def no_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class CachedThumb:
    data: bytes
    thumb_size: tuple[int, int]
    size: tuple[int, int]
