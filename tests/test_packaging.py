"""The wheel a user installs from PyPI: templates inside, CLI works, a build runs from it."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import make_colour_folder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("dinoclust-*.whl")
    return path


def test_wheel_carries_templates_and_demo_images(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "generator/cli.py",
        "generator/templates/index.html",
        "generator/templates/static/js/app.js",
        "generator/templates/static/css/style.css",
        "generator/demo_images/CREDITS",
        "generator/demo_images/food/banana.png",
    ):
        assert needed in names
    assert not any(name.startswith(("tests/", "site/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "dinoclust = generator.cli:console" in text


def test_wheel_installs_and_builds_in_a_fresh_venv(wheel, tmp_path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Reuse the heavy dependencies (torch, …) already installed here instead of fetching them.
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_reuse_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "work"
    make_colour_folder(work / "photos", per_colour=2)
    dinoclust = str(venv / "bin" / "dinoclust")
    help_text = subprocess.run(
        [dinoclust, "--help"], cwd=work, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert help_text.startswith("Usage: dinoclust")
    where = subprocess.run(
        [str(py), "-c", "import generator; print(generator.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel, not the checkout
    subprocess.run(
        [dinoclust, "build", "photos", "-o", "site", "--weights", "random", "-q"],
        cwd=work,
        env=env,
        check=True,
    )
    report = json.loads((work / "site" / "report.json").read_text(encoding="utf-8"))
    assert len(report["images"]) == 6
    assert (work / "site" / "static" / "js" / "app.js").is_file()
