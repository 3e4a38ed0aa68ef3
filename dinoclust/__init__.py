"""dinoclust: turn a folder of images into a static website showing how they cluster.

`import dinoclust` is the Python API: `build` a site (or a zip, or one HTML file) from folders of
images, `show` it under a notebook cell. The code lives in the package `generator` (a name the
design fixes); this module re-exports its public API under the project's own name, which no
other package uses.

    import dinoclust

    result = dinoclust.build("photos/", "site", k_max=6)
    dinoclust.show(result)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator import DEMO_IMAGES, GeneratorError, __version__, build, query, show
from generator.errors import ConfigError

if TYPE_CHECKING:
    from generator.commands.build import BuildResult

__all__ = [
    "DEMO_IMAGES",
    "BuildResult",
    "ConfigError",
    "GeneratorError",
    "__version__",
    "build",
    "query",
    "show",
]


def __getattr__(name: str) -> Any:
    """`dinoclust.BuildResult` without importing numpy on `import dinoclust`."""
    if name == "BuildResult":
        from generator.commands.build import BuildResult

        return BuildResult
    raise AttributeError(f"module 'dinoclust' has no attribute {name!r}")
