"""Test helpers: generated images and a fake embedder, so stage tests need no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from generator.types import ModelInfo

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220)}


def make_image(
    path: Path,
    colour: tuple[int, int, int] = (200, 50, 50),
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    noise: int = 0,
    seed: int = 0,
) -> Path:
    """Write a solid (optionally noisy) image; the format follows the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.empty((size[1], size[0], 3), dtype=np.int16)
    pixels[:] = colour
    if noise:
        pixels += rng.integers(-noise, noise + 1, size=pixels.shape, dtype=np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode)
    image.save(path)
    return path


def make_colour_folder(root: Path, per_colour: int = 4) -> Path:
    """root/<colour>/<colour>_<i>.png: three clearly separated groups."""
    for name, colour in COLOURS.items():
        for i in range(per_colour):
            make_image(root / name / f"{name}_{i}.png", colour, noise=12, seed=i)
    return root


class FakeEmbedder:
    """Features from mean colour and a few pixel statistics: similar images get similar vectors."""

    info = ModelInfo("fake-model", "fake weights", "fake:1", False, "cpu", "fp32")

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.calls = 0

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        self.calls += 1
        x = pixels.astype(np.float32) / 255.0
        mean = x.mean(axis=(1, 2))  # (B, 3)
        std = x.std(axis=(1, 2))
        base = np.concatenate([mean, std], axis=1)  # (B, 6)
        reps = -(-self.dim // base.shape[1])
        return np.tile(base, (1, reps))[:, : self.dim] * np.linspace(1, 2, self.dim)
