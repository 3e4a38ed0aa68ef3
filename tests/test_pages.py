"""The reusable GitHub Action (action.yml) and the Pages workflow that uses it: valid YAML, the
documented shape and inputs, and the action's build step really run here, in bash, with the
workflow's inputs (`dinoclust` on PATH is the real CLI with the fake embedder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "pages.yml"
ACTION = REPO / "action.yml"
INPUTS = ["images", "title", "weights", "lang", "output"]


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def repository() -> str:
    """OWNER/NAME, as pyproject.toml's [project.urls] names it (scripts/set-repository.py)."""
    urls = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    return urls["Repository"].removeprefix("https://github.com/")


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def step_named(action: dict, name: str) -> dict:
    found = [s for s in action["runs"]["steps"] if s.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def uses_action(workflow: dict) -> dict:
    found = [s for s in steps(workflow, "build") if s.get("uses") == "./"]
    assert len(found) == 1
    return found[0]


def test_workflow_is_valid_yaml_with_the_pages_shape(workflow, action) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    uses = [s.get("uses", "") for s in steps(workflow, "build")]
    assert uses[0].startswith("actions/checkout@")
    assert uses_action(workflow)["with"] == {
        "images": "generator/demo_images",
        "title": "dinoclust demo",
        "output": "site/demo",  # under the documentation, which is published with it
    }
    upload = next(
        s for s in steps(workflow, "build") if "upload-pages-artifact" in s.get("uses", "")
    )
    assert upload["with"]["path"].rstrip("/") == action["inputs"]["output"]["default"]
    docs = next(s for s in steps(workflow, "build") if s.get("name") == "Build the documentation")
    assert "mkdocs build --strict --site-dir site" in docs["run"]
    assert "['optional-dependencies']['docs']" in docs["run"]  # the docs extra's own list
    assert uses.index("./") > steps(workflow, "build").index(docs)  # mkdocs empties site/ first
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    runs = [s for s in steps(workflow, "build") if "run" in s]
    assert runs == [docs]  # the report's build is all in the action


def test_action_is_a_composite_with_the_documented_inputs(action) -> None:
    assert action["runs"]["using"] == "composite"
    assert list(action["inputs"]) == INPUTS
    assert action["inputs"]["images"]["required"] is True
    defaults = {k: v.get("default") for k, v in action["inputs"].items() if k != "images"}
    assert defaults == {"title": "", "weights": "pretrained", "lang": "en", "output": "site"}
    assert all(action["inputs"][k]["description"] for k in INPUTS)
    guide = (REPO / "docs" / "guides" / "sharing.md").read_text(encoding="utf-8")
    section = guide.split("\n## GitHub Action\n", 1)[1].split("\n## ", 1)[0]
    for name in INPUTS:
        row = re.search(rf"^\| `{name}` \| (.+?) \|", section, re.M)
        assert row, f"the sharing guide's GitHub Action section lacks input {name}"
        default = action["inputs"][name].get("default")
        assert row.group(1) == (
            "(required)" if default is None else f"`{default}`" if default else "empty"
        )
    usage = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert usage and len(usage.group(1).splitlines()) == 5  # the five-line usage
    assert yaml.safe_load(usage.group(1))[0]["uses"] == f"{repository()}@v1"

    install = step_named(action, "Install CPU torch and dinoclust")
    assert "--index-url https://download.pytorch.org/whl/cpu" in install["run"]
    assert 'pip install "$GITHUB_ACTION_PATH"' in install["run"]
    cache = next(
        s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/cache@")
    )
    paths = cache["with"]["path"].split()
    assert "~/.cache/huggingface" in paths and "~/.cache/dinoclust" in paths
    assert all("shell" in s for s in action["runs"]["steps"] if "run" in s)  # composite rule


def fake_dinoclust(folder: Path) -> Path:
    """A `dinoclust` executable: the real CLI, with the fake embedder instead of the model."""
    folder.mkdir(exist_ok=True)
    script = folder / "dinoclust"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import generator.model.embed as model\n"  # every command's model (tests/slow_cli.py)
        "from tests.helpers import FakeEmbedder\n"
        "model.load_embedder = lambda *a, **k: FakeEmbedder()\n"
        "model.plan_model = lambda *a, **k: FakeEmbedder.info\n"
        "from generator.cli import main\n"
        "main()\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return folder


def run_build_step(action: dict, given: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The build step as the runner runs it: `${{ inputs.x }}` into env, then bash -c run."""
    step = step_named(action, "Build the site")
    assert step["shell"] == "bash"
    values = {k: str(v.get("default", "")) for k, v in action["inputs"].items()} | given

    def evaluate(text: str) -> str:
        out = re.sub(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", lambda m: values[m.group(1)], text)
        assert "${{" not in out, text
        return out

    assert "${{" not in step["run"]  # inputs reach the script only through env
    env = {k: evaluate(v) for k, v in step["env"].items()}
    assert env.pop("DINOCLUST_CACHE_DIR") == "~/.cache/dinoclust"  # what actions/cache keeps
    bin_dir = fake_dinoclust(cwd / "bin")
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_actions_build_step_builds_the_workflows_site(workflow, action, tmp_path) -> None:
    given = uses_action(workflow)["with"]
    (tmp_path / "generator").symlink_to(REPO / "generator")  # the workflow's checkout
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("the documentation")  # mkdocs wrote it first
    done = run_build_step(action, given, tmp_path)
    assert done.returncode == 0, done.stderr
    site = tmp_path / "site" / "demo"
    assert (site / "index.html").is_file() and (site / ".nojekyll").is_file()
    assert (tmp_path / "site" / "index.html").read_text() == "the documentation"
    assert "Built site/demo/ from 30 images" in done.stderr
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "<title>dinoclust demo</title>" in page
    assert '<html lang="en">' in page


def test_the_build_step_passes_odd_inputs_as_they_are(action, tmp_path) -> None:
    """Spaces, quotes and `$` in a title are text; an empty title gives the default one."""
    (tmp_path / "my photos").symlink_to(REPO / "generator" / "demo_images")
    title = 'Field "trip" $HOME `id`'
    given = {"images": "my photos", "title": title, "lang": "ja", "output": "out dir"}
    done = run_build_step(action, given, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out dir" / "report.json").read_text(encoding="utf-8"))
    assert report["title"] == title
    assert '<html lang="ja">' in (tmp_path / "out dir" / "index.html").read_text(encoding="utf-8")

    done = run_build_step(action, {"images": "my photos", "title": "", "output": "plain"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "<title data-i18n=" in (tmp_path / "plain" / "index.html").read_text(encoding="utf-8")


def test_a_bad_input_fails_the_step_with_the_clis_error(action, tmp_path) -> None:
    done = run_build_step(action, {"images": "missing"}, tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: missing: no such file or folder.")
