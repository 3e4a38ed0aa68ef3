"""The mapper: a decoded batch in, one row per image out (clip-retrieval's shape).

A row is what every later stage needs from one file: its relative path, content hash, size,
thumbnail and feature vector, or the reason it was skipped. The local engine feeds the mapper
batches from its decode processes; a distributed engine would call the same mapper per partition.
`store.table` turns rows into the Parquet schema; the site stage reads rows back (pipeline.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generator.i18n import Message
from generator.ingest.imaging import Decoded
from generator.model.embed import Embedder


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


class Mapper:
    """Calls the model once per batch; loads nothing itself (the embedder may load lazily)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, batch: Sequence[tuple[str, Decoded]]) -> list[Row]:
        if not batch:
            return []
        vectors = self.embedder(np.stack([decoded.pixels for _, decoded in batch]))
        vectors = np.asarray(vectors, dtype=np.float32)
        return [
            Row(
                rel,
                d.sha256,
                d.size,
                d.thumb,
                d.thumb_size,
                vector,
                preview=d.preview,
                preview_size=d.preview_size,
            )
            for (rel, d), vector in zip(batch, vectors, strict=True)
        ]
