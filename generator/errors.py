"""Library errors. Each message names the file involved and says what to do next.

Only the CLI turns these into click exceptions, so the library stays usable without click.
"""

from __future__ import annotations


class GeneratorError(Exception):
    """Base class: a build cannot go on, for a reason the user can act on."""


class ConfigError(GeneratorError):
    """An option is out of range or inconsistent with another."""


class InputError(GeneratorError):
    """The inputs hold nothing usable, or are unsafe to use (e.g. inside the output folder)."""


class OutputError(GeneratorError):
    """The output folder cannot be written or replaced safely."""


class ModelError(GeneratorError):
    """The model or its weights cannot be loaded."""


class BudgetError(GeneratorError):
    """What is to be sent cannot fit the size asked for with --max-size."""


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters), for a one-line message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
