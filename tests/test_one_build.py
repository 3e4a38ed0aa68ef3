"""Issue 13 items 4 and 5: one build per output at a time (two real processes), and a demo that
shows real clusters when it can and says why when it cannot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.deliver import is_our_zip
from generator.site.singlefile import is_single_file
from generator.site.sitedir import lock_path, output_lock
from tests.helpers import FakeEmbedder, make_colour_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_model(monkeypatch) -> None:

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)


def lock_message(target: Path, pid: int, option: str = "-o") -> str:
    return (
        f"Error: {target} is being written by another dinoclust run (process {pid}). "
        f"Wait for it to finish, or choose another {option}.\n"
    )


# --- item 4: one build per output -----------------------------------------------------------


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_CLI_DELAY": "0.6"}
    command = [sys.executable, "-m", "tests.slow_cli", "build", *args, "--batch-size", "1"]
    return subprocess.Popen(
        [*command, "--no-cache", "-q", "--k-max", "3"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["folder", "zip", "single-file"])
def test_two_concurrent_builds_one_fails_naming_the_other(tmp_path, mode) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)  # 6 images: 3.6 s of model
    site, archive, page = tmp_path / "site", tmp_path / "s.zip", tmp_path / "r.html"
    if mode == "folder":
        runs, target, option = [["-o", str(site)]] * 2, site, "-o"
    elif mode == "zip":  # two sites, one zip
        runs = [["-o", str(tmp_path / f"site{i}"), "--zip", str(archive)] for i in (1, 2)]
        target, option = archive, "--zip"
    else:
        runs, target, option = [["--single-file", "-o", str(page)]] * 2, page, "-o"
    builds = [start([str(photos), *args], tmp_path) for args in runs]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in builds]  # type: ignore[union-attr]
    codes = [code for code, _ in outcomes]
    assert sorted(codes) == [0, 1], outcomes
    failed, other = (0, 1) if codes[0] == 1 else (1, 0)
    assert outcomes[failed][1] == lock_message(target, builds[other].pid, option)
    assert outcomes[other][1] == ""
    # what remains is the winner's complete output, and no lock, staging or work folder
    if mode == "folder":
        report = json.loads((site / "report.json").read_text(encoding="utf-8"))
        assert len(report["images"]) == 6
        assert all((site / image["thumb"]).is_file() for image in report["images"])
    elif mode == "zip":
        assert is_our_zip(archive)
        assert "s/index.html" in zipfile.ZipFile(archive).namelist()
    else:
        assert is_single_file(page) and page.read_text(encoding="utf-8").count("data:image") >= 6
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("command", ["sort", "embed"])
def test_two_concurrent_sorts_or_embeds_one_fails_naming_the_other(tmp_path, command) -> None:
    """Without the lock, the second sort removed the first's staging folder as a leftover (a
    traceback), and two embeds wrote the same generation's parts over each other."""
    photos = make_colour_folder(tmp_path / "photos", per_colour=2)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_CLI_DELAY": "0.6"}
    args = [sys.executable, "-m", "tests.slow_cli", command, str(photos), "-o", str(out)]
    args += ["--batch-size", "1", "--no-cache", "-q"]
    runs = [
        subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in runs]  # type: ignore[union-attr]
    codes = [code for code, _ in outcomes]
    assert sorted(codes) == [0, 1], outcomes
    failed, other = (0, 1) if codes[0] == 1 else (1, 0)
    assert outcomes[failed][1] == lock_message(out, runs[other].pid)
    assert outcomes[other][1] == ""
    if command == "sort":
        assert len((out / "clusters.csv").read_text(encoding="utf-8").splitlines()) == 7
    else:
        assert len(list(out.glob("part-*.parquet"))) == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_build_refuses_an_output_another_build_holds(tmp_path, colour_folder, fake_model):
    site = tmp_path / "site"
    with output_lock(site):  # this process is the other build
        result = CliRunner().invoke(cli, ["build", str(colour_folder), "-o", str(site)])
    assert result.exit_code == 1
    assert result.output == lock_message(site, os.getpid())
    assert not site.exists()
    assert not lock_path(site).exists()  # released and removed


def test_the_lock_of_a_killed_build_is_taken_over(tmp_path, colour_folder, fake_model) -> None:
    site = tmp_path / "site"
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lock_path(site).write_text(f"{killed.pid}\n", encoding="utf-8")  # what it left behind
    killed.kill()
    killed.wait()
    result = CliRunner().invoke(cli, ["build", str(colour_folder), "-o", str(site), "-q"])
    assert result.exit_code == 0, result.output
    assert len(json.loads((site / "report.json").read_text(encoding="utf-8"))["images"]) == 12
    assert not lock_path(site).exists()


# --- item 5: the demo's weights -------------------------------------------------------------


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty model-hub cache, and a hub that refuses at once (a closed local port)."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return cache


def demo(tmp_path: Path, *args: str):
    site = tmp_path / "site"
    result = CliRunner().invoke(cli, ["demo", "-o", str(site), "--no-cache", "--k-max", "3", *args])
    report = json.loads((site / "report.json").read_text(encoding="utf-8"))
    return result, report, (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.model
def test_demo_offline_falls_back_to_random_weights_and_says_why(tmp_path, hub_cache) -> None:
    result, report, page = demo(tmp_path)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert re.fullmatch(
        r"warning: using random weights, so the clusters are meaningless: the pretrained "
        r"weights are not cached and cannot reach 127\.0\.0\.1 \(.+\)\. For real clusters run "
        r"`dinoclust demo` once with a network connection, or pass --weights PATH to a "
        r"downloaded checkpoint\.",
        warnings[0],
    )
    assert report["model"]["random_weights"] is True
    assert report["provenance"]["weights_id"] == "random:0"
    assert 'id="random-banner"' in page


@pytest.mark.model
def test_demo_uses_cached_pretrained_weights(tmp_path, hub_cache) -> None:
    """Weights in the hub cache (here: seed-0 weights in timm's safetensors layout) are used
    without any network, and nothing is said about random weights."""
    from safetensors.torch import save_file

    from generator.model.vit import create_model

    snapshot = hub_cache / "models--timm--vit_small_patch16_224.dino" / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("c0ffee")
    state = create_model("random", seed=0).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    result, report, page = demo(tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.stderr
    assert report["model"]["random_weights"] is False
    assert report["provenance"]["weights_id"] == "hub:timm/vit_small_patch16_224.dino"
    assert 'id="random-banner"' not in page


def test_build_still_fails_fast_without_the_pretrained_weights(tmp_path, hub_cache) -> None:
    site = tmp_path / "site"
    args = ["build", str(ROOT / "generator" / "demo_images"), "-o", str(site)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: Cannot get the pretrained weights timm/vit_small_patch16_224.dino: cannot reach "
        "127.0.0.1"
    )
    assert not site.exists()
