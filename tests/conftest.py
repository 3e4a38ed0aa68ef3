from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import FakeEmbedder, make_colour_folder
from tests.reportschema import every_report_json_matches_the_schema  # noqa: F401 (autouse)


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return make_colour_folder(tmp_path / "photos")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    """The CLI's default cache goes to a fresh folder per test, never to ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DINOCLUST_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (tests/browser.py says how it is launched)."""
    from tests.browser import launch

    with launch() as launched:
        yield launched
