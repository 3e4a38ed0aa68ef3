"""The package's version, and installed distributions' versions (they key caches and stores)."""

from __future__ import annotations

__version__ = "0.1.0"


def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
