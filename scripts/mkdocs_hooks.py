"""mkdocs hooks (mkdocs.yml `hooks:`): generated parts of the reference pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[1] / "generator" / "report.schema.json"
MARK = "<!-- report.schema.json -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """report.json's reference: its keys and the whole JSON Schema, from the file the code
    generates (`dinoclust schema`), so the page cannot drift from it."""
    if MARK not in markdown:
        return markdown
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    required = set(schema.get("required", []))
    rows = ["| key | JSON type | always present |", "|---|---|---|"]
    for key, spec in sorted(schema["properties"].items()):
        rows.append(f"| `{key}` | {_type(spec)} | {'yes' if key in required else 'no'} |")
    whole = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True)
    block = "\n".join(rows) + '\n\n??? note "The whole schema"\n    ```json\n'
    block += "\n".join(f"    {line}" for line in whole.splitlines()) + "\n    ```\n"
    return markdown.replace(MARK, block)


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return f"object ({spec['$ref'].rsplit('/', 1)[-1]})"
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    kind = spec.get("type", "any")
    if kind == "array" and "items" in spec:
        return f"array of {_type(spec['items'])}"
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def on_page_content(html: str, **_: Any) -> str:
    """mkdocs-click prints click 8.3's "no default" sentinel as `Sentinel.UNSET`: say none."""
    return html.replace("Sentinel.UNSET", "none")
