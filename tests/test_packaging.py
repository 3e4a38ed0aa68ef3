"""The wheel a user installs from PyPI: templates inside, CLI works, a build runs from it."""

from __future__ import annotations

import ast
import json
import os
import re
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

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


def imported_distributions() -> set[str]:
    """The distributions whose modules generator/ imports (anywhere, also inside functions)."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found = set()
    for path in (ROOT / "generator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "generator":
                    continue
                # a module of an extra not installed here (openvino) goes by its own name
                found.update(canonical(d) for d in owners.get(top, [top]))
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {canonical(re.match(r"[A-Za-z0-9_.-]+", spec).group(0)) for spec in specs}


def test_dependencies_are_exactly_what_generator_imports() -> None:
    """Declared and imported are the same set: nothing used undeclared, nothing declared unused
    (rawpy, Ray, IPython, OpenVINO and onnx are the `raw`, `ray`, `notebook`, `accel` and
    `query` extras, imported only inside the functions that need them)."""
    extras = declared("raw") | {"ray"} | declared("notebook") | declared("accel")
    extras |= declared("query")
    assert declared("ray") == {"ray"}  # ray[data]
    assert imported_distributions() - extras == declared()
    assert extras <= imported_distributions()


def test_make_tests_openvino_as_the_accel_extra_declares_it() -> None:
    """`make test`'s OpenVINO leg installs the accel extra's packages beside .venv (Makefile)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    line = next(
        line
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if line.startswith("ACCEL_PACKAGES :=")
    )
    packages = re.findall(r'"([^"]+)"', line)
    assert set(project["optional-dependencies"]["accel"]) <= set(packages)
    assert {canonical(re.match(r"[A-Za-z0-9_.-]+", p).group(0)) for p in packages} == {
        "openvino",
        "openvino-telemetry",  # openvino's one dependency besides numpy (installed --no-deps)
        "nncf",  # --precision int8; then those of its dependencies that .venv lacks
        "ninja",
        "pydot",
        "pyparsing",
        "tabulate",
    }


def test_wheel_carries_templates_and_demo_images(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "generator/cli.py",
        "generator/templates/index.html",
        "generator/templates/static/js/app.js",
        "generator/templates/static/css/style.css",
        "generator/DEMO_IMAGES_CREDITS",
        "generator/demo_images/food/banana.png",
        "generator/templates/notebook.html",  # generator.show's frame
        "generator/py.typed",  # the API's type hints reach type checkers
        "dinoclust/__init__.py",  # `import dinoclust`: the API under the project's own name
        "generator/report.schema.json",  # report.json's JSON Schema (tests/test_report.py)
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
        # --force-reinstall: the reused site-packages may hold dinoclust already (an editable
        # checkout); without it pip would skip the wheel and the test would check that instead
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "-q"]
        + [str(wheel)],
        check=True,
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
        [str(py), "-c", "import dinoclust as d, generator as g; print(d.__file__, g.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert all(w.startswith(str(venv)) for w in where.split()), where  # the wheel, not the checkout
    subprocess.run(
        [dinoclust, "build", "photos", "-o", "site", "--weights", "random", "-q"],
        cwd=work,
        env=env,
        check=True,
    )
    report = json.loads((work / "site" / "report.json").read_text(encoding="utf-8"))
    assert len(report["images"]) == 6
    assert (work / "site" / "static" / "js" / "app.js").is_file()
    shown = subprocess.run(  # the Python API of the installed wheel: show's cell output
        [str(py), "-c", "from generator.api import notebook_html; print(notebook_html('site'))"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert shown.startswith('<iframe class="dinoclust-report"') and "srcdoc=" in shown


def test_no_module_imports_cycle_back() -> None:
    """Layers (pyproject.toml, `make lint`) order the packages; this also holds each module:
    no chain of imports, counting those inside functions, leads back to where it started."""
    import grimp

    graph = grimp.build_graph("generator", include_external_packages=False)
    modules = sorted(m for m in graph.modules if m != "generator")
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) - {"generator"}) for m in modules}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1 or module in edges[module]:
                cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    assert cycles == []
    assert len(modules) > 40  # the whole package was read
