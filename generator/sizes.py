"""Byte sizes as people write them (`20MB`, `1.5 GB`, `500KiB`, `1048576`) and as we print them.

Decimal units (1 MB = 1,000,000 bytes) as mail providers and file managers count them; the binary
`KiB/MiB/GiB` are accepted too.
"""

from __future__ import annotations

import math
import re

UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(|k|m|g|ki|mi|gi)b?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`20MB` → 20000000; raises ValueError with the accepted forms."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a size: write e.g. 20MB, 1.5GB, 800KB or a number of bytes."
        )
    size = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    if size < 1:
        raise ValueError(f"{text!r} is not a size: it must be more than 0 bytes.")
    return size


def format_size(size: int) -> str:
    """2345678 → '2.35 MB' (decimal units, as parse_size reads them)."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= factor:
            value = size / factor
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{size} bytes"


def round_up(size: int) -> str:
    """A size at least `size`, written as an option value a person would type ('2.4MB')."""
    step = 10**5 if size < 10**7 else 10**6
    value = math.ceil(size / step) * step
    return f"{value / 10**6:g}MB"
