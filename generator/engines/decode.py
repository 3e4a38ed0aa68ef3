"""Decoding one file for the mapper, whichever engine runs it: the model input, the thumbnail
and preview, the content hash; a file that cannot be used becomes a skipped row, not an error."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from generator.i18n import Message
from generator.ingest.discover import file_sha256
from generator.ingest.imaging import Decoded, DecodeError, decode
from generator.model.vit import PREPROCESS
from generator.types import Row

log = logging.getLogger(__name__)

HASH_THREADS = 8  # hashlib releases the GIL: threads read and hash files in parallel


def try_decode(path: Path, thumb_size: int, preview_size: int) -> Decoded | DecodeError:
    try:
        return decode(path, PREPROCESS.size, thumb_size, preview_size)
    except DecodeError as exc:
        return exc


def try_hash(path: Path) -> str | OSError:
    try:
        return file_sha256(path)
    except OSError as exc:
        return exc


def hashes(paths: Sequence[Path]) -> Iterator[str | OSError]:
    """Content hashes in input order, read by a few threads of this process."""
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="hash") as pool:
        yield from pool.map(try_hash, paths)


def row(rel: str, decoded: Decoded, vector: np.ndarray | None) -> Row:
    """A decoded file's row (`vector` None: not through the model yet, on its way to it)."""
    return Row(
        rel,
        decoded.sha256,
        decoded.size,
        decoded.thumb,
        decoded.thumb_size,
        vector,
        preview=decoded.preview,
        preview_size=decoded.preview_size,
    )


def skip(rel: str, why: Message) -> Row:
    log.warning("skipped %s: %s", rel, why)
    return Row.skipped(rel, why)
