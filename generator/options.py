"""From the build's options, as the CLI and the Python API name them, to one BuildConfig.

The one place where an option's meaning beyond BuildConfig's own fields is decided (the cache
folder, the single file's default name, `--max-size` as text), so that `dinoclust build` and
`generator.build` cannot drift apart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from generator.config import (
    BACKENDS,
    DEVICES,
    DISPLAY_POINTS,
    LANGS,
    MAX_FILE_SIZE,
    PRECISIONS,
    BuildConfig,
)
from generator.errors import ConfigError
from generator.ingest.discover import readable_text
from generator.sizes import parse_size

DEFAULT_OUTPUT = Path("site")
DEFAULT_SINGLE = Path("report.html")  # --single-file without -o

StrPath = str | PathLike[str]


def build_config(
    inputs: Iterable[StrPath],
    *,
    output: StrPath | None = None,
    cache_dir: StrPath | None = None,
    no_cache: bool = False,
    max_size: int | str | None = None,
    max_file_size: int | str = MAX_FILE_SIZE,
    zip_file: StrPath | None = None,
    labels: StrPath | None = None,
    display_points: int | str | None = DISPLAY_POINTS,
    **options: Any,
) -> BuildConfig:
    """The BuildConfig for these options; `output=None` means the default (site/ or report.html).

    Raises ConfigError, with the CLI's messages, for options out of range or at odds.
    """
    from generator.storage.cache import check_cache_dir, default_cache_dir

    inputs = tuple(inputs)
    _check_choices(options)
    if isinstance(options.get("title"), str):  # a terminal's bytes that are not UTF-8
        options["title"] = readable_text(options["title"])
    single = bool(options.get("single_file"))
    if cache_dir is not None and not no_cache:
        check_cache_dir(Path(cache_dir), [Path(p) for p in inputs])
    return BuildConfig(
        inputs=tuple(Path(p) for p in inputs),
        output=Path(output) if output is not None else DEFAULT_SINGLE if single else DEFAULT_OUTPUT,
        cache_dir=None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir(),
        max_size=_size(max_size),
        max_file_size=_size(max_file_size, "--max-file-size") or MAX_FILE_SIZE,
        zip_file=Path(zip_file) if zip_file is not None else None,
        labels=os.fspath(labels) if labels is not None else None,  # "folders" or a CSV's path
        display_points=parse_points(display_points),
        **options,
    )


def _check_choices(options: dict[str, Any]) -> None:
    """The options with a fixed list of values, refused in the words click uses for the CLI."""
    for name, choices in (
        ("device", DEVICES),
        ("precision", PRECISIONS),
        ("lang", LANGS),
        ("backend", BACKENDS),
    ):
        value = options.get(name)
        if value is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"Invalid value for '--{name}': {value!r} is not one of {allowed}.")


def _size(value: int | str | None, option: str = "--max-size") -> int | None:
    """Bytes, or text such as `20MB` (generator.sizes), as `--max-size` takes it."""
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_size(str(value))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def parse_points(value: int | str | None) -> int | None:
    """`--display-points N|all`: a number of points, or None for all of them."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower().replace(",", "").replace("_", "")
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--display-points must be a number or 'all' (got {value!r}).") from None


def log_level(verbose: int, quiet: bool) -> int:
    """-q: errors only; default: warnings; -v: info; -vv: debug."""
    if quiet:
        return logging.ERROR
    if verbose > 1:
        return logging.DEBUG
    return logging.INFO if verbose else logging.WARNING
