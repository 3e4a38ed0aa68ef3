"""The GitHub Pages workflow: valid YAML, the documented shape, and a build step that really
builds site/ when its command is run here (with the fake embedder)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from generator.cli import cli
from tests.helpers import FakeEmbedder

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "pages.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def build_step(workflow: dict) -> dict:
    found = [s for s in steps(workflow, "build") if "dinoclust build" in s.get("run", "")]
    assert len(found) == 1
    return found[0]


def test_workflow_is_valid_yaml_with_the_pages_shape(workflow) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    uses = [s.get("uses", "") for s in steps(workflow, "build")]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = next(
        s for s in steps(workflow, "build") if "upload-pages-artifact" in s.get("uses", "")
    )
    assert upload["with"]["path"].rstrip("/") == "site"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    install = next(s for s in steps(workflow, "build") if s.get("name") == "Install dinoclust")
    assert "pip install ." in install["run"]


def test_build_step_builds_site_folder(workflow, tmp_path, monkeypatch) -> None:
    import generator.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr(pipeline, "plan_model", lambda *a, **k: FakeEmbedder.info)
    repo = WORKFLOW.parents[2]
    env = {k: str(v) for k, v in workflow["env"].items()}
    assert (repo / env["IMAGES"]).is_dir()  # the example builds images that exist
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, str(repo / value) if key == "IMAGES" else value)

    command = shlex.split(os.path.expandvars(build_step(workflow)["run"].strip()))
    assert command[:2] == ["dinoclust", "build"]
    result = CliRunner().invoke(cli, command[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / ".nojekyll").is_file()
    assert "Built site/ from 30 images" in result.stderr
