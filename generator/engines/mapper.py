"""The mapper: a decoded batch in, one row per image out (clip-retrieval's shape).

A row is what every later stage needs from one file: its relative path, content hash, size,
thumbnail and feature vector, or the reason it was skipped. The local engine feeds the mapper
batches from its decode processes; the Ray engine's model actors call the same mapper on the
batches its decode tasks made. `store.table` turns rows into the Parquet schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from generator.engines.decode import row
from generator.ingest.imaging import Decoded
from generator.types import Embedder, Row


class Mapper:
    """Calls the model once per batch; loads nothing itself (the embedder may load lazily)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, batch: Sequence[tuple[str, Decoded]]) -> list[Row]:
        if not batch:
            return []
        vectors = self.embedder(np.stack([decoded.pixels for _, decoded in batch]))
        vectors = np.asarray(vectors, dtype=np.float32)
        return [row(rel, d, vector) for (rel, d), vector in zip(batch, vectors, strict=True)]
