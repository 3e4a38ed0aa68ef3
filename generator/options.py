"""From the options, as the CLI and the Python API name them, to each command's config.

The one place where an option's meaning beyond the config's own fields is decided (the cache
folder, the single file's default name, `--max-size` as text), so that `dinoclust build` and
`generator.build` cannot drift apart; the options themselves (flags, defaults, values, help)
are written once in generator.config.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from generator.config import (
    CACHE_DIR,
    DISPLAY,
    FILE_SIZE,
    NO_CACHE,
    OUTPUT,
    SINGLE_OUTPUT,
    BuildConfig,
    EmbedConfig,
    ModelConfig,
    QueryConfig,
    SortConfig,
    option_error,
)
from generator.errors import ConfigError
from generator.ingest.discover import readable_text
from generator.sizes import parse_size

StrPath = str | PathLike[str]


def build_config(
    inputs: Iterable[StrPath],
    *,
    output: StrPath | None = None,
    cache_dir: StrPath | None = CACHE_DIR.default,
    no_cache: bool = NO_CACHE.default,
    max_size: int | str | None = None,
    max_file_size: int | str = FILE_SIZE.default,
    zip_file: StrPath | None = None,
    labels: StrPath | None = None,
    display_points: int | str | None = DISPLAY.default,
    embeddings: StrPath | None = None,
    images_root: StrPath | None = None,
    **options: Any,
) -> BuildConfig:
    """The BuildConfig for these options; `output=None` means the default (site/ or report.html).

    Raises ConfigError, with the CLI's messages, for options out of range or at odds.
    """
    inputs = tuple(inputs)
    if isinstance(options.get("title"), str):  # a terminal's bytes that are not UTF-8
        options["title"] = readable_text(options["title"])
    single = bool(options.get("single_file"))
    return BuildConfig(
        inputs=tuple(Path(p) for p in inputs),
        output=Path(output) if output is not None else SINGLE_OUTPUT if single else OUTPUT.default,
        cache_dir=cache_folder(cache_dir, no_cache, inputs),
        max_size=_size(max_size),
        max_file_size=_size(max_file_size, "max_file_size") or FILE_SIZE.default,
        zip_file=_path(zip_file),
        labels=os.fspath(labels) if labels is not None else None,  # "folders" or a CSV's path
        display_points=parse_points(display_points),
        embeddings=_path(embeddings),
        images_root=_path(images_root),
        **options,
    )


def embed_config(
    inputs: Iterable[StrPath],
    *,
    cache_dir: StrPath | None = CACHE_DIR.default,
    no_cache: bool = NO_CACHE.default,
    output: StrPath | None = None,
    manifest: StrPath | None = None,
    max_file_size: int | str = FILE_SIZE.default,
    **options: Any,
) -> EmbedConfig:
    """`dinoclust embed`'s config: build's model options go to its ModelConfig."""
    inputs = tuple(inputs)
    model = {k: options.pop(k) for k in ModelConfig.__dataclass_fields__ if k in options}
    return EmbedConfig(
        inputs=tuple(Path(p) for p in inputs),
        model=ModelConfig(**model),
        cache_dir=cache_folder(cache_dir, no_cache, inputs),
        manifest=_path(manifest),
        max_file_size=_size(max_file_size, "max_file_size") or FILE_SIZE.default,
        **({"output": Path(output)} if output is not None else {}),
        **options,
    )


def query_config(
    photos: Iterable[StrPath],
    *,
    site: StrPath,
    cache_dir: StrPath | None = CACHE_DIR.default,
    no_cache: bool = NO_CACHE.default,
    **options: Any,
) -> QueryConfig:
    """`dinoclust query`'s config: build's model options go to its ModelConfig."""
    model = {k: options.pop(k) for k in ModelConfig.__dataclass_fields__ if k in options}
    if options:
        raise ConfigError(f"Unknown option(s) for query: {', '.join(sorted(options))}.")
    return QueryConfig(
        tuple(Path(p) for p in photos),
        Path(site),
        ModelConfig(**model),
        cache_folder(cache_dir, no_cache, ()),
    )


def sort_config(
    inputs: Iterable[StrPath], *, output: StrPath, k: int | None = None, **options: Any
) -> SortConfig:
    """`dinoclust sort`'s config: DIR and build's model, cache and label options as a build's,
    so that a sort after a build with the same options only reads the cache."""
    mode = {"mode": options.pop("mode")} if "mode" in options else {}
    return SortConfig(build_config(inputs, output=output, **options), k=k, **mode)


def cache_folder(
    cache_dir: StrPath | None, no_cache: bool, inputs: Iterable[StrPath]
) -> Path | None:
    """--cache-dir, else $DINOCLUST_CACHE_DIR (each checked against the inputs), else the user
    cache folder; None with --no-cache."""
    from generator.storage.cache import check_cache_dir, default_cache_dir

    if no_cache:
        return None
    if cache_dir:
        check_cache_dir(Path(cache_dir), [Path(p) for p in inputs])
        return Path(cache_dir)
    folder = default_cache_dir()
    if os.environ.get("DINOCLUST_CACHE_DIR"):  # the same checks, named as the user set it
        check_cache_dir(folder, [Path(p) for p in inputs], "$DINOCLUST_CACHE_DIR ({folder})")
    return folder


def _path(value: StrPath | None) -> Path | None:
    return Path(value) if value is not None else None


def _size(value: int | str | None, option: str = "max_size") -> int | None:
    """Bytes, or text such as `20MB` (generator.sizes), as `--max-size` takes it."""
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_size(str(value))
    except ValueError as exc:
        raise option_error("Invalid value for '{" + option + "}': {why}", why=exc) from exc


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
        said = "{display_points} must be a number or 'all' (got {got})."
        raise option_error(said, got=repr(value)) from None


def log_level(verbose: int, quiet: bool) -> int:
    """-q: errors only; default: warnings; -v: info; -vv: debug."""
    if quiet:
        return logging.ERROR
    if verbose > 1:
        return logging.DEBUG
    return logging.INFO if verbose else logging.WARNING
