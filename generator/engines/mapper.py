"""The mapper: a decoded batch in, one row per image out (clip-retrieval's shape). The local
engine feeds it batches from its decode processes; the Ray engine's model actors call it on the
batches its decode tasks made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from generator.types import Embedder, Row


class Mapper:
    """Calls the model once per batch; loads nothing itself (the embedder may load lazily)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, batch: Sequence[tuple[Row, np.ndarray]]) -> list[Row]:
        """Decoded rows (decode.row, no vector yet) with their model input → rows with vectors."""
        if not batch:
            return []
        vectors = self.embedder(np.stack([pixels for _, pixels in batch]))
        vectors = np.asarray(vectors, dtype=np.float32)
        return [replace(row, vector=v) for (row, _), v in zip(batch, vectors, strict=True)]
