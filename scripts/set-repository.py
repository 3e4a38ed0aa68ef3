"""Point every link to the project's GitHub repository at OWNER/NAME (a fork, or a move).

    python scripts/set-repository.py someone/dinoclust

The repository is written once, in pyproject.toml's [project.urls] Repository; the Colab badge,
the notebook's DINOCLUST_SOURCE, the Action's usage example, the Pages workflow, mkdocs.yml and
the docs' links all name it. This rewrites them all; tests/test_docs.py checks that they agree
and that no placeholder is left.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "pyproject.toml",
    "mkdocs.yml",
    "README.md",
    "action.yml",
    ".github/workflows/pages.yml",
    "examples/colab.ipynb",
    *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "docs").rglob("*.md"))),
]


def current() -> str:
    """OWNER/NAME as pyproject.toml's [project.urls] Repository names it."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^Repository = "https://github\.com/([\w.-]+/[\w.-]+)"$', text, re.M)
    if found is None:
        sys.exit("Error: pyproject.toml has no [project.urls] Repository on github.com.")
    return found.group(1)


def main() -> None:
    if len(sys.argv) != 2 or not re.fullmatch(r"[\w.-]+/[\w.-]+", sys.argv[1]):
        sys.exit("usage: python scripts/set-repository.py OWNER/NAME")
    old, new = current(), sys.argv[1]
    for name in FILES:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        changed = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w-])", new, text)
        if changed != text:
            path.write_text(changed, encoding="utf-8")
            print(f"{name}: {old} -> {new}")


if __name__ == "__main__":
    main()
