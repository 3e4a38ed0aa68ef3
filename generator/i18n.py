"""The UI's words: every string the page or a skip reason shows, in each language, lives in one
file (templates/i18n.json). A Message is a string's key and arguments, so the log can say it in
English while the page says it in the reader's language and re-says it when they switch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
LANGS = ("en", "ja")  # every UI string exists in each


def templates_dir() -> Path:
    """Inside an installed wheel the templates sit in the package; in a checkout, beside it."""
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError("dinoclust's templates/ folder is missing; reinstall the package.")


@cache
def ui_strings() -> dict[str, dict[str, str]]:
    strings = json.loads((templates_dir() / "i18n.json").read_text(encoding="utf-8"))
    return {lang: strings[lang] for lang in LANGS}


def translate(lang: str, key: str, **args: Any) -> str:
    """`key` in `lang` with its {placeholders} filled (lang.js does the same). An argument named
    `x_key` names a UI string that fills {x}, so that it too follows a language switch."""
    strings = ui_strings()[lang]
    text = strings[key]
    for name, value in args.items():
        if name.endswith("_key"):
            name, value = name.removesuffix("_key"), strings[value]
        text = text.replace("{" + name + "}", str(value))
    return text


@dataclass(frozen=True)
class Message:
    """A UI string's key and its arguments (as text); str() is the English the log shows."""

    key: str
    args: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, key: str, **args: object) -> Message:
        return cls(key, tuple(sorted((name, str(value)) for name, value in args.items())))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls.of(data["key"], **data["args"])

    def text(self, lang: str = "en") -> str:
        return translate(lang, self.key, **dict(self.args))

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "args": dict(self.args)}

    def __str__(self) -> str:
        return self.text()
