"""The command line: help texts, exit codes, exact error lines, and real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.version import __version__


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", [[], *([name] for name in sorted(cli.commands))])
def test_every_command_has_help(runner, command) -> None:
    """Every command the group really has (not a list kept by hand): a help text, listed in the
    group's help, and a help line for each of its options."""
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli {' '.join(command)}".rstrip())
    if not command:
        listed = result.output.split("Commands:\n", 1)[1].splitlines()
        assert {line.split()[0] for line in listed if line.strip()} == set(cli.commands)
        return
    cmd = cli.commands[command[0]]
    assert cmd.help and cmd.help.strip()
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{command[0]} {param.opts}"
            assert param.opts[-1] in result.output


def test_version(runner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.output == f"dinoclust, version {__version__}\n"


def test_build_needs_an_input(runner) -> None:
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 2
    assert "Error: Missing argument 'INPUTS...'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k-max", "1"], "Error: --k-max must be at least 2 (got 1)."),
        (["--batch-size", "0"], "Error: --batch-size must be at least 1 (got 0)."),
        (["--thumb-size", "8"], "Error: --thumb-size must be between 32 and 1024 (got 8)."),
        (["--device", "tpu"], "Error: Invalid value for '--device': 'tpu' is not one of"),
        (["--lang", "fr"], "Error: Invalid value for '--lang': 'fr' is not one of 'en', 'ja'."),
    ],
)
def test_bad_options_are_usage_errors(runner, colour_folder, args, message) -> None:
    result = runner.invoke(cli, ["build", str(colour_folder), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_input_is_a_clear_error(runner, tmp_path) -> None:
    result = runner.invoke(cli, ["build", str(tmp_path / "nope"), "-o", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'nope'}: no such file or folder." in result.output


def test_folder_without_images_is_a_clear_error(runner, tmp_path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    result = runner.invoke(cli, ["build", str(tmp_path / "docs"), "-o", str(tmp_path / "s")])
    assert result.exit_code == 1
    expected = f"Error: No images found in {tmp_path / 'docs'} (looked for .arw .avif .bmp"
    assert expected in result.output


def test_unreachable_hub_exits_with_the_remedy(runner, colour_folder, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(cli, ["build", str(colour_folder), "-o", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert (
        "Error: Cannot get the pretrained weights timm/vit_small_patch16_224.dino" in result.output
    )
    assert "--weights PATH" in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.model
def test_build_with_random_weights(runner, colour_folder, tmp_path) -> None:
    site = tmp_path / "site"
    result = runner.invoke(
        cli, ["build", str(colour_folder), "-o", str(site), "--weights", "random", "--k-max", "4"]
    )
    assert result.exit_code == 0, result.output
    assert f"Built {site}/ from 12 images (0 skipped, 12 newly embedded) in " in result.stderr
    assert "the clusters are meaningless" in result.stderr
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    assert report["model"]["weights"] == "random (untrained, seed 0)"
    assert report["model"]["random_weights"] is True
    assert sorted(report["clusterings"]) == ["2", "3", "4"]
    assert 'id="random-banner"' in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.model
def test_demo_builds_from_bundled_images(runner, tmp_path) -> None:
    site = tmp_path / "demo"
    result = runner.invoke(cli, ["demo", "--weights", "random", "-o", str(site), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output == ""  # -q: silence
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    assert len(report["images"]) == 30
    folders = sorted({image["path"].split("/")[0] for image in report["images"]})
    assert folders == ["animals", "food", "transportation"]


def test_skipped_file_warning_names_the_file(runner, colour_folder, tmp_path, monkeypatch):
    from tests.helpers import FakeEmbedder

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    (colour_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = runner.invoke(cli, ["build", str(colour_folder), "-o", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "warning: skipped broken.png: " in result.stderr
    assert "(1 skipped, " in result.stderr


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "generator", "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("Usage: dinoclust [OPTIONS] COMMAND")


def test_a_title_typed_in_a_shift_jis_terminal_is_shown_as_japanese(
    runner, colour_folder, tmp_path, monkeypatch
) -> None:
    """Under a UTF-8 locale, Python hands other bytes over as surrogates, which no page can
    hold: the build once crashed writing it."""
    from tests.helpers import FakeEmbedder

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    title = os.fsdecode("旅行の写真".encode("cp932"))
    site = tmp_path / "s"
    result = runner.invoke(cli, ["build", str(colour_folder), "-o", str(site), "--title", title])
    assert result.exit_code == 0, result.output
    assert "<title>旅行の写真</title>" in (site / "index.html").read_text(encoding="utf-8")
