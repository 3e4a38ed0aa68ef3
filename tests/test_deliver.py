"""Sharing the site: the deterministic zip, the size budget, the single file and their safety
rules, through the library (fake embedder) and the CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.deliver import ZIP_COMMENT, Delivery, check_floor, deliver, zip_entries
from generator.config import BuildConfig
from generator.errors import BudgetError, ConfigError
from generator.ingest.imaging import THUMB_QUALITY
from generator.site.budget import thumb_ladder
from generator.site.render import plotly_js, templates_dir
from generator.site.sitedir import MARKER
from generator.sizes import format_size, parse_size, round_up
from tests import pagedata
from tests.helpers import COLOURS, FakeEmbedder, make_image


def asset_floor_zip() -> int:
    """Plotly and the page's static files alone, zipped (what check_floor measures)."""
    static = templates_dir() / "static"
    assets = [plotly_js()[0], *sorted(p for p in static.rglob("*") if p.is_file())]
    out = io.BytesIO()
    zip_entries(((p.name, p.read_bytes()) for p in assets), out)
    return len(out.getvalue())


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """12 noisy 400×300 images: thumbnails big enough that their size matters."""
    root = tmp_path / "photos"
    for name, colour in COLOURS.items():
        for i in range(4):
            make_image(root / name / f"{name}_{i}.png", colour, (400, 300), noise=40, seed=i)
    return root


def run(photos: Path, output: Path, **options) -> Delivery:
    config = BuildConfig(inputs=(photos,), output=output, k_max=4, **options)
    return deliver(config, embedder=FakeEmbedder())


@pytest.fixture
def fake_model(monkeypatch) -> None:
    """The CLI builds with the fake embedder (no torch)."""

    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: FakeEmbedder())
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["build", *args])


def zip_args(photos: Path, tmp_path: Path) -> list[str]:
    return [str(photos), "-o", str(tmp_path / "site"), "--zip", str(tmp_path / "s.zip")]


# --- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20MB", 20_000_000),
        ("1.5 GB", 1_500_000_000),
        ("800kb", 800_000),
        ("2MiB", 2 * 1024 * 1024),
        ("12345", 12345),
        ("7M", 7_000_000),
    ],
)
def test_sizes_parse_with_units(text, size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "20 TB", "0", "1e6"])
def test_bad_sizes_are_refused(text) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_sizes_print_readably() -> None:
    assert format_size(1_586_981) == "1.59 MB"
    assert format_size(950) == "950 bytes"
    assert round_up(1_586_981) == "1.6MB"
    assert parse_size(round_up(1_586_981)) >= 1_586_981


# --- the zip --------------------------------------------------------------------------------


def test_zip_is_byte_identical_across_builds_and_holds_the_site(photos, tmp_path) -> None:
    first = run(photos, tmp_path / "a" / "site", zip_file=tmp_path / "a" / "report.zip")
    second = run(photos, tmp_path / "b" / "out", zip_file=tmp_path / "b" / "report.zip")
    data = (tmp_path / "a" / "report.zip").read_bytes()
    assert data == (tmp_path / "b" / "report.zip").read_bytes()
    assert first.size == second.size == len(data)

    site = tmp_path / "a" / "site"
    with zipfile.ZipFile(tmp_path / "a" / "report.zip") as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert archive.comment == ZIP_COMMENT
        assert archive.testzip() is None
        extracted = {name: archive.read(name) for name in names}
    assert names == sorted(names)
    assert all(name.startswith("report/") for name in names)  # one folder: unzipping is tidy
    for required in ("report/index.html", "report/report.json", "report/static/js/app.js"):
        assert required in names
    assert any(re.fullmatch(r"report/static/js/plotly-[\d.]+\.min\.js", n) for n in names)
    thumbs = [n for n in names if n.startswith("report/thumbs/")]
    assert len(thumbs) == 12
    assert f"report/{MARKER}" not in names  # the recipient's copy is not "ours" to replace
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    # the zip is the site, file for file
    on_disk = {
        f"report/{p.relative_to(site).as_posix()}": p.read_bytes()
        for p in site.rglob("*")
        if p.is_file() and p.name != MARKER
    }
    assert extracted == on_disk


def test_max_size_shrinks_thumbnails_until_the_zip_fits(photos, tmp_path) -> None:
    full = run(photos, tmp_path / "full", zip_file=tmp_path / "full.zip")
    budget = full.size - 60_000
    fitted = run(photos, tmp_path / "site", zip_file=tmp_path / "fit.zip", max_size=budget)

    assert (tmp_path / "fit.zip").stat().st_size == fitted.size <= budget
    assert fitted.fit is not None and fitted.fit.shrunk and fitted.fit.size == fitted.size
    assert (fitted.fit.thumb_size, fitted.fit.quality) in thumb_ladder(192)
    report = json.loads((tmp_path / "site" / "report.json").read_text(encoding="utf-8"))
    assert report == fitted.result.report
    from PIL import Image

    for image in report["images"]:
        with Image.open(tmp_path / "site" / image["thumb"]) as thumb:
            assert thumb.size == (image["thumb_width"], image["thumb_height"])
            assert max(thumb.size) <= fitted.fit.thumb_size
            assert not thumb.info.get("exif") and not thumb.info.get("xmp")
    # a roomy budget changes nothing: same zip as without --max-size
    roomy = run(photos, tmp_path / "roomy", zip_file=tmp_path / "r" / "full.zip", max_size=10**9)
    assert roomy.fit is not None and not roomy.fit.shrunk
    assert (tmp_path / "r" / "full.zip").read_bytes() == (tmp_path / "full.zip").read_bytes()


def test_max_size_shrinking_is_deterministic(photos, tmp_path) -> None:
    budget = run(photos, tmp_path / "full", zip_file=tmp_path / "x" / "r.zip").size - 60_000
    for name in ("a", "b"):
        run(photos, tmp_path / name / "s", zip_file=tmp_path / name / "r.zip", max_size=budget)
    assert (tmp_path / "a" / "r.zip").read_bytes() == (tmp_path / "b" / "r.zip").read_bytes()


def test_ladder_starts_with_the_builds_own_thumbnails_and_goes_down() -> None:
    ladder = thumb_ladder(192)
    assert ladder[0] == (192, THUMB_QUALITY)
    assert ladder[-1][0] == 32
    assert all(px <= 192 for px, _ in ladder)
    assert len(set(ladder)) == len(ladder)


def test_too_small_budget_fails_before_any_work(tmp_path, fake_model, photos) -> None:
    result = invoke(*zip_args(photos, tmp_path), "--max-size", "1MB")
    assert result.exit_code == 1
    assert "Error: --max-size 1.00 MB is too small: Plotly and the page's own scripts alone " in (
        result.output
    )
    assert not (tmp_path / "site").exists() and not (tmp_path / "s.zip").exists()
    with pytest.raises(BudgetError, match="in the single file"):
        check_floor(4_000_000, single=True)  # Plotly is 4.8 MB uncompressed


def test_budget_that_no_thumbnail_size_meets_says_what_would_fit(tmp_path, fake_model, photos):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "keep.txt").write_text("old site")  # must survive the failed build
    (tmp_path / "site" / MARKER).write_text("")
    budget = asset_floor_zip() + 8_000  # above Plotly + scripts, below that + page + thumbnails
    # 400 px thumbnails: the unshrunk zip is well above the size the message names (rounded up
    # to 0.1 MB), whatever a few bytes more of the page's scripts do to that rounding
    big = ("--thumb-size", "400")
    full_zip = run(photos, tmp_path / "f", zip_file=tmp_path / "f.zip", thumb_size=400).size
    assert budget < full_zip
    result = invoke(*zip_args(photos, tmp_path), *big, "--max-size", str(budget))
    assert result.exit_code == 1, result.output
    match = re.search(
        r"Error: the zip would be [\d.]+ MB even with the smallest thumbnails \(32 px, quality "
        r"\d+\): more than --max-size [\d.]+ MB\. Use --max-size ([\d.]+MB) or more",
        result.output,
    )
    assert match, result.output
    assert (tmp_path / "site" / "keep.txt").read_text() == "old site"
    assert not (tmp_path / "s.zip").exists()
    assert not [p for p in tmp_path.iterdir() if ".dinoclust-tmp-" in p.name]
    # …and the size it names does fit
    assert parse_size(match.group(1)) < full_zip
    ok = invoke(*zip_args(photos, tmp_path), *big, "--max-size", match.group(1))
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "s.zip").stat().st_size <= parse_size(match.group(1))
    assert re.search(
        r"--max-size [\d.]+ MB: no previews, thumbnails \d+ px at quality \d+ to fit", ok.stderr
    )


# --- the single file ------------------------------------------------------------------------


class _Page(HTMLParser):
    """Scripts (attributes, text), the CSP, and everything the page would load."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.refs: list[str] = []
        self.csp = ""
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self._in_script = attributes
            self.scripts.append((attributes, ""))
        if tag == "meta" and attributes.get("http-equiv") == "Content-Security-Policy":
            self.csp = attributes["content"] or ""
        loads = ("src", "href") if tag == "link" else ("src",)  # <a href> is a link, not a load
        self.refs += [v for k, v in attrs if k in loads and v]

    def handle_data(self, data) -> None:
        if self._in_script is not None:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)

    def handle_endtag(self, tag) -> None:
        if tag == "script":
            self._in_script = None


def test_single_file_inlines_everything_under_a_strict_policy(photos, tmp_path) -> None:
    target = tmp_path / "out" / "report.html"
    delivery = run(photos, target, single_file=True)
    assert delivery.result.output == target and delivery.size == target.stat().st_size
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html"]  # no leftovers

    page = _Page()
    page.feed(target.read_text(encoding="utf-8"))
    assert page.refs == []  # loads nothing: no src=, no <link href=>
    assert 'href="report.json"' not in target.read_text(encoding="utf-8")  # no dead footer links
    inline = [text for attributes, text in page.scripts if "type" not in attributes]
    folder = _Page()
    run(photos, tmp_path / "site")
    folder.feed((tmp_path / "site" / "index.html").read_text(encoding="utf-8"))
    sources = [a["src"] for a, _ in folder.scripts if a.get("src")]
    assert sources[0] == "static/js/lang.js" and "plotly" in sources[1] and len(sources) >= 3
    # the same scripts as the folder page, in the same order, byte for byte
    assert inline == [(tmp_path / "site" / src).read_text(encoding="utf-8") for src in sources]
    policy = dict(part.strip().split(" ", 1) for part in page.csp.split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'none'"
    assert policy["img-src"] == "data: blob:"
    expected = {
        "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"
        for t in inline
    }
    assert set(policy["script-src"].split()) == expected  # hashes only: no 'unsafe-inline'

    data = pagedata.decode(target.read_text(encoding="utf-8"))
    report = delivery.result.report
    assert [i["path"] for i in data["images"]] == [i["path"] for i in report["images"]]
    assert all(i["thumb"].startswith("data:image/webp;base64,") for i in data["images"])
    assert data["clusterings"] == report["clusterings"]  # every k's distances inline too


def test_single_file_with_budget_fits(photos, tmp_path) -> None:
    full = run(photos, tmp_path / "full.html", single_file=True)
    fitted = run(photos, tmp_path / "fit.html", single_file=True, max_size=full.size - 50_000)
    assert fitted.fit is not None and fitted.fit.shrunk
    assert (tmp_path / "fit.html").stat().st_size == fitted.size <= full.size - 50_000


# --- what may be replaced -------------------------------------------------------------------


def test_existing_files_are_replaced_only_if_dinoclust_wrote_them(photos, tmp_path, fake_model):
    foreign_zip, foreign_html = tmp_path / "mine.zip", tmp_path / "mine.html"
    with zipfile.ZipFile(foreign_zip, "w") as archive:
        archive.writestr("thesis.tex", "precious")
    foreign_html.write_text("<!DOCTYPE html><p>my page</p>")
    before = foreign_zip.read_bytes()

    result = invoke(str(photos), "-o", str(tmp_path / "s"), "--zip", str(foreign_zip))
    assert result.exit_code == 1
    assert f"Error: {foreign_zip} already exists and was not written by dinoclust, so it will " in (
        result.output
    )
    assert foreign_zip.read_bytes() == before and not (tmp_path / "s").exists()

    result = invoke(str(photos), "--single-file", "-o", str(foreign_html))
    assert result.exit_code == 1
    assert f"Error: {foreign_html} already exists and was not written by dinoclust" in (
        result.output
    )
    assert foreign_html.read_text() == "<!DOCTYPE html><p>my page</p>"

    zipped = ["-o", str(tmp_path / "s"), "--zip", str(tmp_path / "ok.zip")]
    single = ["--single-file", "-o", str(tmp_path / "ok.html")]
    for args in (zipped, single):
        assert invoke(str(photos), *args).exit_code == 0
        again = invoke(str(photos), *args)  # ours: replaced
        assert again.exit_code == 0, again.output


def test_zip_inside_the_output_folder_is_refused(photos, tmp_path, fake_model) -> None:
    result = invoke(str(photos), "-o", str(tmp_path / "s"), "--zip", str(tmp_path / "s/x.zip"))
    assert result.exit_code == 1
    assert "is inside the output folder" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-size", "5MB"], "Error: --max-size limits what you send: use it with --zip or"),
        (["--zip", "a.zip", "--single-file", "-o", "r.html"], "Error: --zip and --single-file"),
        (["--single-file", "-o", "site"], "Error: --single-file writes one HTML file: name it"),
        (["--zip", "a.zip", "--max-size", "lots"], "Error: Invalid value for '--max-size': 'lots'"),
    ],
)
def test_delivery_options_are_checked(photos, args, message) -> None:
    result = invoke(str(photos), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_config_refuses_inconsistent_delivery(tmp_path) -> None:
    with pytest.raises(ConfigError):
        BuildConfig(inputs=(tmp_path,), max_size=0, zip_file=tmp_path / "a.zip")


# --- messages -------------------------------------------------------------------------------


def test_summary_names_the_zip_and_its_size(photos, tmp_path, fake_model) -> None:
    zip_file = tmp_path / "mail.zip"
    result = invoke(str(photos), "-o", str(tmp_path / "s"), "--zip", str(zip_file))
    assert result.exit_code == 0, result.output
    size = format_size(zip_file.stat().st_size)
    assert f"Built {tmp_path / 's'}/ from 12 images (0 skipped, " in result.stderr
    assert f"Wrote {zip_file} ({size}): e-mail it; unzipped, it opens at mail/index.html." in (
        result.stderr
    )


def test_single_file_defaults_to_report_html_and_says_so(photos, tmp_path, fake_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(str(photos), "--single-file")
    assert result.exit_code == 0, result.output
    size = format_size((tmp_path / "report.html").stat().st_size)
    assert result.stderr.startswith(
        f"Built report.html ({size}, one self-contained file) from 12 images (0 skipped, "
    )
    assert "Open it in a browser, or attach it to an e-mail as it is." in result.stderr
    assert not (tmp_path / "site").exists()


def test_quiet_stays_silent_when_sharing(photos, tmp_path, fake_model) -> None:
    zipped = ["-o", str(tmp_path / "s"), "--zip", str(tmp_path / "q.zip")]
    single = ["--single-file", "-o", str(tmp_path / "q.html"), "--max-size", "20MB"]
    for args in (zipped, single):
        result = invoke(str(photos), *args, "-q")
        assert result.exit_code == 0 and result.output == ""
