"""The real `dinoclust` command with a slow fake model (no torch), for tests that need two runs
to overlap: `python -m tests.slow_cli build|sort|embed …`. Each batch takes SLOW_CLI_DELAY
seconds."""

from __future__ import annotations

import os
import time

import numpy as np

import generator.model.embed as model
from generator.cli import console
from tests.helpers import FakeEmbedder


class SlowEmbedder(FakeEmbedder):
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        time.sleep(float(os.environ.get("SLOW_CLI_DELAY", "0.5")))
        return super().__call__(pixels)


if __name__ == "__main__":
    model.load_embedder = lambda *args, **kwargs: SlowEmbedder()  # every command's model
    model.plan_model = lambda *args, **kwargs: FakeEmbedder.info
    console()  # what the `dinoclust` script runs
