from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FakeEmbedder, make_colour_folder, use_fake_model
from tests.reportschema import every_report_json_matches_the_schema  # noqa: F401 (autouse)


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return make_colour_folder(tmp_path / "photos")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_models(monkeypatch) -> Callable[..., Any]:
    """A factory: `fake_models(model, load=..., plan=...)` puts a fake model at the model seam
    for this test (tests.helpers.use_fake_model); for a model of the test's own."""
    return functools.partial(use_fake_model, monkeypatch.setattr)


@pytest.fixture
def fake_model(fake_models) -> FakeEmbedder:
    """Every command (CLI, API, build_site) runs the returned FakeEmbedder: no torch, no weights;
    its `calls` count the batches it embedded."""
    return fake_models()


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
