"""dinoclust: turn a folder of images into a static website showing how they cluster.

The pipeline reads top to bottom: discover → decode → embed → analyse → render
(see :mod:`generator.pipeline`).
"""

from __future__ import annotations

__version__ = "0.1.0"
