"""dinoclust: turn a folder of images into a static website showing how they cluster.

The pipeline reads top to bottom: discover → decode → embed → analyse → render
(see :mod:`generator.commands.build`). The promised Python API is what this module exports:
`build`, `query`, `show`, `BuildResult`, `GeneratorError` and `DEMO_IMAGES` (see
:mod:`generator.api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.api import DEMO_IMAGES, build, query, show  # light: heavy modules load on first call
from generator.errors import GeneratorError
from generator.version import __version__

if TYPE_CHECKING:
    from generator.commands.build import BuildResult

__all__ = [
    "DEMO_IMAGES",
    "BuildResult",
    "GeneratorError",
    "__version__",
    "build",
    "query",
    "show",
]


def __getattr__(name: str) -> Any:
    """`generator.BuildResult` without importing numpy when `dinoclust --help` starts."""
    if name == "BuildResult":
        from generator.commands.build import BuildResult

        return BuildResult
    raise AttributeError(f"module 'generator' has no attribute {name!r}")
