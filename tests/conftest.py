from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import FakeEmbedder, make_colour_folder


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return make_colour_folder(tmp_path / "photos")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()
