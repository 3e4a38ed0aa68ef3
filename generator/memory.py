"""Handing freed memory back to the operating system (used by the engine and the cache)."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Give the memory freed by the last batch back to the OS. Under glibc, the model's freed
    temporaries and the decoded pixels otherwise stay in a fragmented heap: a 10,000-image build
    grew by about 90 KB per image. Returns whether anything could be asked of the C library."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
