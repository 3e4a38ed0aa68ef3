"""`dinoclust build --open`: the finished page goes to the default browser (mocked here), `-q`
keeps it quiet, and without a display nothing is started (no text browser in the terminal)."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import pytest
from click.testing import CliRunner

import generator
from generator.cli import cli
from tests.helpers import FakeEmbedder


@pytest.fixture
def opened(monkeypatch) -> list[str]:

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    urls: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: urls.append(url) or True)
    monkeypatch.setattr("generator.api.sys.platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return urls


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["build", str(generator.DEMO_IMAGES), "--k-max", "3", *args])
    assert result.exit_code == 0, result.output
    return result.stderr


def test_open_hands_the_sites_index_to_the_browser(tmp_path, opened) -> None:
    err = run("-o", str(tmp_path / "site"), "--open")
    url = (tmp_path / "site" / "index.html").resolve().as_uri()
    assert opened == [url]
    assert err.endswith(  # the browser was asked: whether a window appeared, none can tell
        f"Asked the default browser to open {url}; if no window appears, open that address "
        "yourself.\n"
    )


def test_open_a_single_file_opens_that_file(tmp_path, opened, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run("--single-file", "--open")
    assert opened == [(tmp_path / "report.html").as_uri()]


def test_open_with_zip_opens_the_folder_site(tmp_path, opened) -> None:
    run("-o", str(tmp_path / "site"), "--zip", str(tmp_path / "a.zip"), "--open")
    assert opened == [(tmp_path / "site" / "index.html").as_uri()]


def test_quiet_open_opens_and_says_nothing(tmp_path, opened) -> None:
    err = run("-o", str(tmp_path / "site"), "--open", "-q")
    assert opened == [(tmp_path / "site" / "index.html").as_uri()]
    assert err == ""


def test_without_a_display_nothing_is_started(tmp_path, opened, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY")
    err = run("-o", str(tmp_path / "site"), "--open")
    url = (tmp_path / "site" / "index.html").as_uri()
    assert opened == []
    assert err.endswith(f"--open: no browser to open here (no display); open {url} yourself.\n")
    assert (tmp_path / "site" / "index.html").is_file()  # the build itself is untouched
    assert run("-o", str(tmp_path / "site"), "--open", "-q") == ""


def test_no_browser_found_says_so(tmp_path, opened, monkeypatch) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: False)
    err = run("-o", str(tmp_path / "site"), "--open")
    url = (tmp_path / "site" / "index.html").as_uri()
    assert err.endswith(
        f"--open: no browser to open here (no browser found); open {url} yourself.\n"
    )


def test_without_open_no_browser(tmp_path, opened) -> None:
    run("-o", str(tmp_path / "site"))
    assert opened == []


def test_api_open(tmp_path: Path, opened) -> None:
    result = generator.build(generator.DEMO_IMAGES, tmp_path / "site", k_max=3, open=True)
    assert opened == [(result.output / "index.html").resolve().as_uri()]
