"""The Python API: `generator.build` gives the CLI's site and errors, `generator.show` the one-file
page in an `<iframe srcdoc>` (opened in Chromium by test_notebook.py)."""

from __future__ import annotations

import html
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import generator
from generator.cli import build as build_command
from generator.cli import cli
from generator.commands.deliver import site_files
from generator.config import EMBED_OPTIONS, SORT_OPTIONS
from generator.errors import ConfigError, GeneratorError, InputError
from generator.options import build_config, embed_config, sort_config

OPTIONS = {"weights": "random", "k_max": 6, "seed": 3, "title": "Trip <2026>", "lang": "ja"}
CLI_OPTIONS = ["--weights", "random", "--k-max", "6", "--seed", "3", "--title", "Trip <2026>"]


pytestmark = pytest.mark.usefixtures("fake_model")  # tests/conftest.py


def cli_build(*args: str) -> str:
    result = CliRunner().invoke(cli, ["build", *args])
    assert result.exit_code == 0, result.output
    return result.stderr


def files_of(site: Path) -> dict[str, bytes]:
    return {rel: path.read_bytes() for rel, path in site_files(site)}


def test_build_gives_the_same_site_as_the_cli(tmp_path: Path) -> None:
    cli_build(str(generator.DEMO_IMAGES), "-o", str(tmp_path / "cli"), *CLI_OPTIONS, "--lang", "ja")
    result = generator.build(generator.DEMO_IMAGES, tmp_path / "api", **OPTIONS)

    assert isinstance(result, generator.BuildResult)
    assert (result.output, result.images, result.skipped) == (tmp_path / "api", 30, ())
    cli_files, api_files = files_of(tmp_path / "cli"), files_of(tmp_path / "api")
    assert "index.html" in api_files and len(api_files) > 30
    assert api_files == cli_files
    assert result.report["title"] == "Trip <2026>"


def test_build_single_file_defaults_to_report_html_like_the_cli(tmp_path, monkeypatch) -> None:
    (tmp_path / "cli").mkdir()
    (tmp_path / "api").mkdir()
    monkeypatch.chdir(tmp_path / "cli")
    cli_build(str(generator.DEMO_IMAGES), "--single-file", *CLI_OPTIONS)
    monkeypatch.chdir(tmp_path / "api")
    result = generator.build([str(generator.DEMO_IMAGES)], single_file=True, **OPTIONS)

    assert result.output == Path("report.html")
    cli_page = (tmp_path / "cli" / "report.html").read_bytes()
    assert cli_page.startswith(b"<!DOCTYPE html>")
    assert (tmp_path / "api" / "report.html").read_bytes() != cli_page  # lang=ja vs en
    generator.build(generator.DEMO_IMAGES, single_file=True, **{**OPTIONS, "lang": "en"})
    assert (tmp_path / "api" / "report.html").read_bytes() == cli_page


def test_options_and_defaults_are_the_clis() -> None:
    """Every option of `dinoclust build` is a parameter of generator.build, same default."""
    api = inspect.signature(generator.build).parameters
    cli_defaults = build_command.make_context("build", ["photos"]).params  # what _run is given
    del cli_defaults["inputs"]
    assert set(api) - {"inputs"} == set(cli_defaults)
    for name, default in cli_defaults.items():
        if name == "output":  # None: site/, or report.html with single_file, as in the CLI
            assert api[name].default is None and default == Path("site")
            assert build_config(["x"], output=None).output == Path("site")
            assert build_config(["x"], single_file=True).output == Path("report.html")
        else:
            assert api[name].default == default, name


COMMANDS = {  # the command, its config mapping, the function the CLI hands the config to
    "embed": (embed_config, "generator.commands.embed.embed_collection", EMBED_OPTIONS),
    "sort": (sort_config, "generator.commands.sort.sort_collection", SORT_OPTIONS),
}
GIVEN = {  # an option of each kind, away from its default, as the CLI and as Python take it
    "embed": (
        ["-o", "emb", "--engine", "ray", "--workers", "3", "--gpus-per-worker", "0.5"]
        + ["--weights", "random", "--device", "cpu", "--precision", "bf16", "--seed", "4"]
        + ["--preview-size", "0", "--thumb-size", "64", "--no-cache", "--strict", "--overwrite"],
        {"output": "emb", "engine": "ray", "workers": 3, "gpus_per_worker": 0.5}
        | {"weights": "random", "device": "cpu", "precision": "bf16", "seed": 4}
        | {"preview_size": 0, "thumb_size": 64, "no_cache": True, "strict": True}
        | {"overwrite": True},
    ),
    "sort": (
        ["-o", "out", "--k", "4", "--mode", "copy", "--k-max", "6", "--labels", "folders"]
        + ["--weights", "random", "--backend", "torch", "--cache-dir", "c", "--batch-size", "8"],
        {"output": "out", "k": 4, "mode": "copy", "k_max": 6, "labels": "folders"}
        | {"weights": "random", "backend": "torch", "cache_dir": "c", "batch_size": 8},
    ),
}


def cli_config(command: str, args: list[str], monkeypatch) -> Any:
    """The config `dinoclust COMMAND` hands its command function (which then stops)."""
    seen = []

    def stop(config: Any, **kwargs: Any) -> None:
        seen.append(config)
        raise GeneratorError("stopped")

    monkeypatch.setattr(COMMANDS[command][1], stop)
    result = CliRunner().invoke(cli, [command, "photos", *args])
    assert result.exit_code == 1 and result.output == "Error: stopped\n", result.output
    return seen[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sort_and_embed_options_and_defaults_are_the_clis(command, monkeypatch) -> None:
    """`dinoclust embed` and `sort` make the config that their option mapping (what an API
    call would use) makes from the same options: by default, with each option at its table
    default, and with options given."""
    mapping, _, options = COMMANDS[command]
    cli_params = {p.name for p in cli.commands[command].params} - {"inputs", "verbose", "quiet"}
    assert cli_params == {o.name for o in options} - {"verbose", "quiet"}
    required = {"output": "out"} if command == "sort" else {}
    by_default = cli_config(command, ["-o", "out"] if required else [], monkeypatch)
    assert mapping(["photos"], **required) == by_default
    every = {o.name: o.default for o in options if o.name in cli_params} | required
    assert mapping(["photos"], **every) == by_default
    args, python = GIVEN[command]
    given = cli_config(command, args, monkeypatch)
    assert mapping(["photos"], **python) == given != by_default


@pytest.mark.parametrize(
    ("command", "options", "cli_args"),
    [
        ("embed", {"gpus_per_worker": 1.0}, ["--gpus-per-worker", "1"]),
        ("embed", {"engine": "spark"}, ["--engine", "spark"]),
        ("embed", {"batch_size": 0}, ["--batch-size", "0"]),
        ("sort", {"output": "o", "k": 1}, ["-o", "o", "--k", "1"]),
        ("sort", {"output": "o", "mode": "move"}, ["-o", "o", "--mode", "move"]),
        ("sort", {"output": "o", "device": "tpu"}, ["-o", "o", "--device", "tpu"]),
    ],
)
def test_a_bad_sort_or_embed_option_gives_the_clis_error(command, options, cli_args) -> None:
    result = CliRunner().invoke(cli, [command, "photos", *cli_args])
    assert result.exit_code == 2
    with pytest.raises(ConfigError) as caught:
        COMMANDS[command][0](["photos"], **options)
    assert f"Error: {caught.value}\n" in result.output


@pytest.mark.parametrize(
    ("options", "cli_args"),
    [
        ({"k_max": 1}, ["--k-max", "1"]),
        ({"thumb_size": 8}, ["--thumb-size", "8"]),
        ({"batch_size": 0}, ["--batch-size", "0"]),
        ({"title": "  "}, ["--title", "  "]),
        ({"max_size": "20MB"}, ["--max-size", "20MB"]),
        ({"single_file": True, "zip_file": "a.zip"}, ["--single-file", "--zip", "a.zip"]),
        ({"single_file": True, "output": "out"}, ["--single-file", "-o", "out"]),
        ({"device": "tpu"}, ["--device", "tpu"]),
        ({"precision": "int4"}, ["--precision", "int4"]),
        ({"lang": "fr"}, ["--lang", "fr"]),
    ],
)
def test_a_bad_option_gives_the_clis_error(tmp_path, monkeypatch, options, cli_args) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner().invoke(build_command, [str(generator.DEMO_IMAGES), *cli_args])
    assert cli.exit_code == 2
    with pytest.raises(ConfigError) as caught:
        generator.build(generator.DEMO_IMAGES, **options)
    assert f"Error: {caught.value}\n" in cli.output
    assert list(tmp_path.iterdir()) == []  # nothing was written by either


def test_a_failed_build_gives_the_clis_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    cli = CliRunner().invoke(build_command, [str(missing), "-o", str(tmp_path / "site")])
    assert cli.exit_code == 1
    with pytest.raises(InputError) as caught:
        generator.build(missing, tmp_path / "site")
    assert str(caught.value).startswith(f"{missing}: no such file or folder.")
    assert f"Error: {caught.value}\n" in cli.output


def test_paths_and_sizes_as_python_gives_them(tmp_path: Path) -> None:
    config = build_config(["x"], zip_file=tmp_path / "a.zip", max_size="18MB")
    assert config.max_size == 18_000_000
    assert build_config(["x"], zip_file="a.zip", max_size=1234).max_size == 1234
    assert build_config(["x"], labels=Path("a.csv")).labels == "a.csv"
    assert build_config(["x"], labels="folders").labels == "folders"
    with pytest.raises(ConfigError, match=r"^--max-size: "):
        build_config(["x"], zip_file="a.zip", max_size="lots")


def test_quiet_build_prints_nothing_and_random_weights_warn(tmp_path, capfd) -> None:
    generator.build(generator.DEMO_IMAGES, tmp_path / "quiet", weights="random", quiet=True)
    assert capfd.readouterr().err == ""
    generator.build(generator.DEMO_IMAGES, tmp_path / "loud", weights="random", verbose=1)
    err = capfd.readouterr().err
    assert "weights='random': the clusters are meaningless (smoke test only)." in err
    assert "found 30 images\n" in err  # info lines reach the notebook with verbose=1


# --- show -----------------------------------------------------------------------------------


def srcdoc_of(cell_html: str) -> str:
    match = re.fullmatch(
        r'<iframe class="dinoclust-report" [^>]*srcdoc="([^"]*)"[^>]*></iframe>\n?', cell_html
    )
    assert match, cell_html[:300]
    return html.unescape(match.group(1))


def test_show_html_is_the_single_file_in_a_sandboxed_srcdoc_frame(tmp_path: Path) -> None:
    from generator.api import notebook_html, single_page

    result = generator.build(generator.DEMO_IMAGES, tmp_path / "site", **OPTIONS)
    one = generator.build(generator.DEMO_IMAGES, tmp_path / "one.html", single_file=True, **OPTIONS)
    page = one.output.read_text(encoding="utf-8")

    cell = notebook_html(result, height=700)
    assert srcdoc_of(cell) == page  # the same page as --single-file, whole
    assert 'sandbox="allow-scripts allow-downloads"' in cell
    assert "height: 700px" in cell
    assert "<script" not in cell.split("srcdoc=")[1].split('"')[1]  # escaped: inert markup
    assert single_page(tmp_path / "site") == page  # a site folder: its report.json and lang
    assert single_page(one.output) == page  # a single file, as it is
    assert single_page(str(one.output)) == page


def test_show_displays_in_ipython_and_rejects_what_is_not_a_report(tmp_path, monkeypatch) -> None:
    import IPython.display

    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    result = generator.build(generator.DEMO_IMAGES, tmp_path / "site", **OPTIONS)
    assert generator.show(result) is None  # else the notebook would show it twice
    assert len(shown) == 1
    assert srcdoc_of(shown[0]._repr_html_()).startswith("<!DOCTYPE html>")

    with pytest.raises(GeneratorError) as caught:
        generator.show(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path} is not a dinoclust site (no index.html and report.json) nor a single-file "
        "report. Pass what generator.build returned, its output folder, or its .html file."
    )
    with pytest.raises(GeneratorError, match=r"^height must be a number of pixels, at least 100"):
        generator.show(result, height=10)
    assert re.fullmatch(r"<dinoclust report: 5\.\d\d MB of HTML for a notebook>", repr(shown[0]))


def test_show_without_ipython_says_what_to_do(tmp_path, monkeypatch) -> None:
    result = generator.build(generator.DEMO_IMAGES, tmp_path / "site", **OPTIONS)
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # import fails as if not installed
    with pytest.raises(GeneratorError, match=r"^generator.show displays the report under a"):
        generator.show(result)


def test_progress_is_a_tqdm_bar_on_a_terminal_and_nothing_when_piped(monkeypatch) -> None:
    from generator import api

    monkeypatch.setattr(api, "in_notebook", lambda: False)
    monkeypatch.setattr(api.sys.stderr, "isatty", lambda: False, raising=False)
    assert api._tqdm_class() is None
    monkeypatch.setattr(api.sys.stderr, "isatty", lambda: True, raising=False)
    from tqdm import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    assert api._tqdm_class() is tqdm
    monkeypatch.setattr(api, "in_notebook", lambda: True)
    assert api._tqdm_class() is notebook_tqdm
    assert api.progress_bar(quiet=True)("x", 3).__enter__()(1) is None


def test_importing_the_api_stays_light() -> None:
    """`import generator` (and so `dinoclust --help`) loads neither numpy nor IPython."""
    import subprocess

    code = "import sys, generator; print(sorted({'numpy', 'IPython', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_query_options_and_defaults_are_the_clis(monkeypatch) -> None:
    """generator.query takes `dinoclust query`'s options (--json aside: the API returns data),
    with the same defaults, and makes the config the CLI makes from the same options."""
    from generator.config import QUERY_OPTIONS
    from generator.options import query_config

    api = inspect.signature(generator.query).parameters
    cli_params = {p.name for p in cli.commands["query"].params}
    assert cli_params == {o.name for o in QUERY_OPTIONS} | {"photos"}
    assert set(api) == cli_params - {"as_json", "verbose", "quiet"}
    for option in QUERY_OPTIONS:
        if option.name in api and option.name != "site":
            assert api[option.name].default == option.default, option.name
    seen = []

    def stop(config: Any, **kwargs: Any) -> None:
        seen.append(config)
        raise GeneratorError("stopped")

    monkeypatch.setattr("generator.commands.query.query_photos", stop)
    args = ["query", "a.jpg", "b.png", "--site", "s", "--weights", "random", "--seed", "3"]
    result = CliRunner().invoke(cli, [*args, "--precision", "fp32", "--no-cache"])
    assert result.exit_code == 1 and result.output == "Error: stopped\n", result.output
    python = {"weights": "random", "seed": 3, "precision": "fp32", "no_cache": True}
    assert seen == [query_config(["a.jpg", "b.png"], site="s", **python)]
    with pytest.raises(GeneratorError, match="^stopped$"):
        generator.query(["a.jpg", "b.png"], "s", **python)
    assert seen[1] == seen[0]
