"""`python -m generator` is the same as the `dinoclust` command."""

from __future__ import annotations

from generator.cli import console

if __name__ == "__main__":
    console()
