"""Issue 28 on the page, in real Chromium: the files the walk saw but cannot read are counted near
the top, in English and Japanese."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.ingest.discover import unsupported_notes
from tests.browser import open_page
from tests.helpers import COLOURS, FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

# what the walk meets beside the images: most first, then by name (discover.Discovery)
BESIDE = {".svg": 53, ".pdf": 2, "": 1, ".txt": 1, ".docx": 1}
NOTES_EN = [
    "53 .svg files are not supported, so they were not read.",
    "2 .pdf files are not supported, so they were not read.",
    "1 .docx file is not supported, so it was not read.",
    "2 more files, of 2 other types, are not supported, so they were not read.",
]
NOTES_JA = [
    ".svg ファイル 53 件は対応していない形式のため、読み込んでいません。",
    ".pdf ファイル 2 件は対応していない形式のため、読み込んでいません。",
    ".docx ファイル 1 件は対応していない形式のため、読み込んでいません。",
    "ほかの 2 種類のファイル 2 件も対応していない形式のため、読み込んでいません。",
]
# the header's notes on what was not read (a small collection also has PCA's note)
NOTES_JS = """() => [...document.querySelectorAll('header > p.note')]
  .filter(p => p.querySelector('[data-i18n^="note_unsupported"]')).map(p => p.innerText)"""


def photos(root: Path, beside: dict[str, int]) -> Path:
    for name, colour in COLOURS.items():
        for i in range(3):
            make_image(root / name / f"{name}_{i}.png", colour, noise=8 + 9 * i, seed=i)
    (root / "broken.png").write_bytes(b"not an image")  # skipped: decoded, and failed
    for ext, n in beside.items():
        for i in range(n):
            (root / "other" / f"file{i}{ext}").parent.mkdir(exist_ok=True)
            (root / "other" / f"file{i}{ext}").write_text("not an image\n")
    return root


def build(root: Path, lang: str = "en", beside: dict[str, int] = BESIDE) -> Path:
    config = BuildConfig(inputs=(photos(root / "photos", beside),), output=root / "site", lang=lang)
    build_site(config, embedder=FakeEmbedder())
    return root / "site" / "index.html"


@pytest.mark.parametrize(("lang", "notes"), [("en", NOTES_EN), ("ja", NOTES_JA)])
def test_the_page_counts_the_files_it_could_not_read(browser: Browser, tmp_path, lang, notes):
    index = build(tmp_path, lang)
    with open_page(browser, index) as opened:
        page = opened.page
        assert page.evaluate(NOTES_JS) == notes
        skipped = page.locator("header .meta a[href='#skipped']").inner_text()
        assert skipped == {"en": "1 skipped", "ja": "1 件をスキップ"}[lang]  # broken.png
        top = page.locator("header > p.note:has([data-i18n^='note_unsupported'])").first
        box = top.bounding_box()
        assert box is not None and box["y"] < 300  # read before the slider and the pictures
        other = "ja" if lang == "en" else "en"
        page.locator(f".lang-switch button[data-lang='{other}']").click()
        assert page.evaluate(NOTES_JS) == (NOTES_JA if other == "ja" else NOTES_EN)
        assert opened.errors == []


def test_without_such_files_the_header_has_no_note(tmp_path: Path) -> None:
    html = build(tmp_path, beside={}).read_text(encoding="utf-8")
    assert 'data-i18n="note_unsupported' not in html


def test_notes_name_at_most_three_types_and_sum_up_the_rest() -> None:
    counts = ((".svg", 53), (".pdf", 1), ("extension-less", 2))
    assert [str(n) for n in unsupported_notes(counts)] == [
        "53 .svg files are not supported, so they were not read.",
        "1 .pdf file is not supported, so it was not read.",
        "2 extension-less files are not supported, so they were not read.",
    ]
    ja = [n.text("ja") for n in unsupported_notes(counts)]
    assert ja[2] == "拡張子のない ファイル 2 件は対応していない形式のため、読み込んでいません。"
    assert unsupported_notes(()) == ()
