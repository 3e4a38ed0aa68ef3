"""Every report.json the tests make is checked against the shipped JSON Schema (and read back as
a typed Report) when the session ends: a session fixture, imported by conftest.py, walks pytest's
temporary base folder. A violation fails the run, naming the file and the first few errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from generator.report import SCHEMA_FILE, Report

SHOWN = 5  # errors listed per file


@cache
def validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(path: Path) -> list[str]:
    """What is wrong with one report.json: schema errors, or why it does not read as a Report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    found = [
        f"at /{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator().iter_errors(data)
    ]
    if not found:
        try:
            Report.from_json(data)
        except (KeyError, TypeError) as exc:
            found.append(f"does not read as a Report: {exc!r}")
    return found


def reports_below(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("report.json")) if p.is_file())


@pytest.fixture(scope="session", autouse=True)
def every_report_json_matches_the_schema(tmp_path_factory) -> Iterator[None]:
    yield
    base = tmp_path_factory.getbasetemp()
    failed = []
    for path in reports_below(base):
        if found := problems(path):
            listed = "\n    ".join(found[:SHOWN])
            failed.append(f"{path.relative_to(base)} ({len(found)} problem(s)):\n    {listed}")
    if failed:
        pytest.fail("report.json against the schema:\n" + "\n".join(failed), pytrace=False)
