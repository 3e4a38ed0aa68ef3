"""What a newcomer reads: the README's shape, the documentation site (built strictly, its CLI
reference complete), every shell and Python example in it run (or marked as not run, with the
reason), `import dinoclust`, help that fits, and no placeholder repository left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import dinoclust
import generator
from generator.cli import cli
from tests.helpers import make_colour_folder
from tests.test_sample import REPORT_KEYS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
MARKER = re.compile(r"<!-- (not run|not run, lines starting \"(\w+)\"|run): (.+?) -->\n$")


@dataclass
class Example:
    page: Path
    line: int
    lang: str
    code: str
    marker: re.Match[str] | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    def commands(self) -> list[str]:
        """The shell lines to run: comments off, the lines the marker names left out."""
        skip = self.marker.group(2) if self.marker else None
        lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in self.code.splitlines()]
        return [line for line in lines if line and not (skip and line.split()[0] == skip)]


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```(sh|python)\n(.*?)^```", text, re.S | re.M):
            before = text[: block.start()]
            last = before[before.rstrip("\n").rfind("\n") + 1 :]
            line = before.count("\n") + 1
            found.append(Example(page, line, block.group(1), block.group(2), MARKER.match(last)))
    return found


EXAMPLES = examples()
RUN = [e for e in EXAMPLES if not (e.marker and e.marker.group(1) == "not run")]


def test_readme_is_short_and_starts_with_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    first = next(e for e in EXAMPLES if e.page == README)
    assert first.commands() == ["make demo", "make test"]
    assert text.index("```sh") < text.index("\n## ")  # at the top, before any section
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: ", makefile, re.M)
    assert re.search(r"^test: .*\bdocs\b", makefile, re.M)  # make test builds the docs
    assert "mkdocs build --strict" in makefile
    assert "--weights random" in text  # the offline case is in the quick start
    assert "(docs/screenshot.png)" in text and "weights are random" in text.replace("**", "")


def test_every_example_is_run_or_says_why_not() -> None:
    assert len(EXAMPLES) >= 15
    for example in EXAMPLES:
        if example.marker:
            assert len(example.marker.group(3)) > 20, f"{example}: say why"
    not_run = [e for e in EXAMPLES if e not in RUN]
    assert len(not_run) <= 6, [str(e) for e in not_run]  # the exceptions stay exceptions


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder like a reader's: photos/ with three labelled folders, ~/Pictures/trip, a
    checkpoint file's name, and `dinoclust` on PATH: the real command with the tests' fake model."""
    work = tmp_path_factory.mktemp("reader")
    make_colour_folder(work / "photos", per_colour=3)
    make_colour_folder(work / "home" / "Pictures" / "trip", per_colour=2)
    (work / "dino_deitsmall16_pretrain.pth").write_bytes(b"not read: the model is the fake one")
    bin_dir = work / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dinoclust"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.slow_cli "$@"\n')
    script.chmod(0o755)
    return work


def reader_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return env | {
        "HOME": str(work / "home"),
        "PATH": f"{work / 'bin'}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(REPO),
        "SLOW_CLI_DELAY": "0",
        "DINOCLUST_CACHE_DIR": str(work / "cache"),
    }


FAKE_MODEL = """\
import generator.model.embed as model
from tests.helpers import FakeEmbedder
model.load_embedder = lambda *args, **kwargs: FakeEmbedder()
model.plan_model = lambda *args, **kwargs: FakeEmbedder.info
"""


@pytest.mark.parametrize("example", RUN, ids=str)
def test_the_example_runs(example: Example, workdir: Path) -> None:
    env = reader_env(workdir)
    if example.lang == "python":
        runs = [[sys.executable, "-c", FAKE_MODEL + example.code]]
    else:
        runs = [["bash", "-c", line] for line in example.commands()]
    assert runs
    for run in runs:
        done = subprocess.run(
            run, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{example}: {run[-1]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{example}: {run[-1]}\n{done.stderr}"


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_docs_build_strictly_with_every_page(built_docs: Path) -> None:
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).with_suffix("")
        html = built_docs / ("index.html" if rel.name == "index" else rel / "index.html")
        assert html.is_file(), page
    assert (built_docs / "screenshot.png").is_file()


def test_cli_reference_lists_every_option_of_every_command(built_docs: Path) -> None:
    html = (built_docs / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "Sentinel.UNSET" not in html
    for name, command in cli.commands.items():
        assert f"dinoclust {name}" in html
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert opt in html, f"{name} {opt}"


def test_api_reference_documents_import_dinoclust(built_docs: Path) -> None:
    html = (built_docs / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("dinoclust.build", "dinoclust.show", "dinoclust.BuildResult"):
        assert f'id="{name}"' in html, name
    assert "k_max" in html and "single_file" in html  # the signature, from the code


def test_report_json_reference_is_the_schema(built_docs: Path) -> None:
    """The page's key table is made from generator/report.schema.json at build time, and its
    hand-written meanings name every key a report always has (and `sampled`)."""
    schema = json.loads((REPO / "generator" / "report.schema.json").read_text(encoding="utf-8"))
    html = (built_docs / "reference" / "report-json" / "index.html").read_text(encoding="utf-8")
    for key in schema["properties"]:
        assert f"<td><code>{key}</code></td>" in html, key
    assert '"$schema"' in html.replace("&quot;", '"')  # the whole schema, collapsed
    text = (DOCS / "reference" / "report-json.md").read_text(encoding="utf-8")
    meanings = set(re.findall(r"^\| `(\w+)` \|", text, re.M))  # the generated table is not here
    # sampled: only above 1M rows; query: only with --query
    assert meanings == set(schema["required"]) | {"sampled", "query"}
    assert set(schema["required"]) == REPORT_KEYS  # what a real report has (test_sample)


def test_import_dinoclust_is_the_api() -> None:
    assert dinoclust.build is generator.build and dinoclust.show is generator.show
    assert dinoclust.DEMO_IMAGES == generator.DEMO_IMAGES
    assert dinoclust.GeneratorError is generator.GeneratorError
    assert issubclass(dinoclust.ConfigError, dinoclust.GeneratorError)
    assert dinoclust.BuildResult is generator.BuildResult
    assert dinoclust.__version__ == generator.__version__
    with pytest.raises(dinoclust.ConfigError, match=r"^--k-max must be at least 2 \(got 1\)\.$"):
        dinoclust.build("photos", k_max=1)


def test_every_command_fits_dinoclust_help() -> None:
    out = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    listed = out.split("Commands:\n", 1)[1].splitlines()
    assert len(listed) == len(cli.commands)
    for name, command in cli.commands.items():
        assert command.short_help, name
        assert f"  {name}  " in out and command.short_help in out, out
    assert not any(line.endswith("...") for line in listed)  # click's mark of a cut


def test_demo_help_shows_the_weights_default_it_really_uses() -> None:
    out = CliRunner().invoke(cli, ["demo", "--help"], terminal_width=200).output
    assert "[default: (pretrained if cached or the hub answers, else random)]" in out
    build = CliRunner().invoke(cli, ["build", "--help"], terminal_width=200).output
    assert "[default: pretrained]" in build  # build never falls back


def repository() -> str:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    return urls["Repository"].removeprefix("https://github.com/")


PUBLIC = [
    README,
    REPO / "action.yml",
    REPO / ".github" / "workflows" / "pages.yml",
    REPO / "examples" / "colab.ipynb",
    REPO / "mkdocs.yml",
    *DOCS.rglob("*.md"),
]


def test_no_placeholder_repository_is_left() -> None:
    repo = repository()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and "OWNER" not in repo
    named = set()
    for path in PUBLIC:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bOWNER/|/OWNER\b|\bOWNER\b.*\bREPO\b", text), path
        named.update(re.findall(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?[/\"')\s]", text))
        named.update(re.findall(r"uses: ([\w.-]+/[\w.-]+)@v1", text))
    named -= {"actions/checkout", "actions/setup-python", "actions/cache"}
    assert named == {repo}, named
    notebook = (REPO / "examples" / "colab.ipynb").read_text(encoding="utf-8")
    assert f"git+https://github.com/{repo}" in notebook
    assert f"colab.research.google.com/github/{repo}/blob/main/examples/colab.ipynb" in (
        DOCS / "guides" / "notebooks.md"
    ).read_text(encoding="utf-8")


def test_set_repository_rewrites_every_link(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    names = [p.relative_to(REPO) for p in PUBLIC] + [Path("pyproject.toml")]
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((REPO / name).read_bytes())
    (copy / "scripts").mkdir()
    (copy / "scripts" / "set-repository.py").write_bytes(
        (REPO / "scripts" / "set-repository.py").read_bytes()
    )
    done = subprocess.run(
        [sys.executable, "scripts/set-repository.py", "someone/fork"],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    old = repository()
    for name in names:
        text = (copy / name).read_text(encoding="utf-8")
        assert f"github.com/{old}" not in text and f"{old}@v1" not in text, name
    assert 'Repository = "https://github.com/someone/fork"' in (copy / "pyproject.toml").read_text()
    assert "uses: someone/fork@v1" in (copy / "docs" / "guides" / "sharing.md").read_text()
