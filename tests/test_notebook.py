"""examples/colab.ipynb on a real ipykernel (nbclient): the demo images, random weights, the
Colab-only cells skipped. The HTML its `show` cell outputs is then opened in headless Chromium:
inside the frame the page gets ready, draws the 3D plot, follows the slider, opens a preview, keeps
its CSP, and neither logs an error nor sends a request anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser import LOCAL, TIMEOUT_MS, wait_for_k, wait_ready
from tests.test_browser import grid_layout, wait_for_marker_colours

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "colab.ipynb"
# Injected after the cell tagged `parameters`, as papermill would: offline, and quick.
TEST_PARAMETERS = 'IMAGES = "demo"\nWEIGHTS = "random"\nK_MAX = 6\nLANG = "en"'
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The notebook as run top to bottom in a fresh kernel, and the folder it ran in."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(TEST_PARAMETERS, id="injected-parameters")
    nb.cells.insert(at + 1, injected)
    work = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits these
        env.setenv("DINOCLUST_CACHE_DIR", str(work / "cache"))
        env.setenv("PYTHONPATH", str(REPO))
        client = NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
        )
        client.execute()  # a cell that raises fails the test here (CellExecutionError)
    return nb, work


def cell(nb: Any, cell_id: str) -> Any:
    return next(c for c in nb.cells if c.get("id") == cell_id)


def text_of(c: Any) -> str:
    return "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")


def test_notebook_runs_top_to_bottom_outside_colab(executed) -> None:
    nb, work = executed
    assert text_of(cell(nb, "install")) == ""  # installed already: no pip run
    assert cell(nb, "upload").outputs == [] and cell(nb, "drive").outputs == []
    assert text_of(cell(nb, "choose")).endswith(f"images: {REPO / 'generator' / 'demo_images'}\n")
    build = cell(nb, "build")
    assert "30 images, 0 skipped, " in text_of(build)
    assert any(WIDGET in o.get("data", {}) for o in build.outputs)  # tqdm's notebook bar
    assert "the clusters are meaningless" in text_of(build)  # random weights are flagged
    assert (work / "site" / "index.html").is_file()
    assert (work / "report.zip").is_file()
    report = json.loads((work / "site" / "report.json").read_text(encoding="utf-8"))
    assert report["k_values"] == [2, 3, 4, 5, 6]
    assert text_of(cell(nb, "download")) == f"report.zip: {work / 'report.zip'}\n"
    outputs = cell(nb, "show").outputs
    assert [o.output_type for o in outputs] == ["display_data"]
    assert outputs[0]["data"]["text/html"].startswith('<iframe class="dinoclust-report"')


@pytest.mark.browser
def test_show_output_works_in_chromium(executed, browser: Browser, tmp_path: Path) -> None:
    nb, work = executed
    report = json.loads((work / "site" / "report.json").read_text(encoding="utf-8"))
    output = cell(nb, "show").outputs[0]["data"]["text/html"]
    host = tmp_path / "notebook-output.html"
    host.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>cell</title></head>'
        f"<body>{output}</body></html>",
        encoding="utf-8",
    )
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    external: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(LOCAL) or r.request.url.startswith("about:"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(host.as_uri(), timeout=TIMEOUT_MS)
        frame = page.locator("iframe.dinoclust-report").element_handle().content_frame()
        assert frame is not None
        wait_ready(frame)
        assert frame.evaluate("() => document.body.dataset.ready") == "true"
        assert "WebGL is not supported" not in frame.locator("body").inner_text()
        wait_for_marker_colours(frame)  # the 3D plot has drawn pixels of every cluster

        frame.locator("#k-slider").fill("4")
        wait_for_k(frame, 4)
        labels = report["clusterings"]["4"]["labels"]
        layout = grid_layout(frame)
        assert sorted(i for _, i in layout) == list(range(30))
        assert all(labels[i] == c for c, i in layout)  # the groups are k = 4's
        wait_for_marker_colours(frame)

        frame.locator("#grid img[data-index]").first.click()
        frame.wait_for_function(
            """() => { const d = document.getElementById('preview');
                 const img = d && d.querySelector('img');
                 return d && d.open && img.complete && img.naturalWidth > 0; }""",
            timeout=TIMEOUT_MS,
        )
        page.keyboard.press("Escape")
        frame.wait_for_function("() => !document.getElementById('preview').open")
        with page.expect_download(timeout=TIMEOUT_MS) as download:  # the sandbox allows it
            frame.locator("#download-csv").click()
        assert download.value.suggested_filename == "assignments_k4.csv"
        rows = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        assert len(rows) == 31 and rows[0].startswith("path,cluster,distance_to_centre")
        # The "suggested k" link switches k inside the frame; it does not navigate it away.
        suggested = report["suggested_k"]
        other = 2 if suggested != 2 else 3
        frame.locator("#k-slider").fill(str(other))
        wait_for_k(frame, other)
        frame.locator(f'a[href="#k={suggested}"]').first.click()
        wait_for_k(frame, suggested)
        assert frame.url == "about:srcdoc"
        assert errors == [] and external == []

        # The page's CSP holds in the frame: a script it does not list does not run.
        ran = frame.evaluate(
            """() => { const s = document.createElement('script');
                 s.textContent = 'window.injected = true;'; document.body.appendChild(s);
                 return window.injected === true; }"""
        )
        assert ran is False
        assert any("Content Security Policy" in e for e in errors)
    finally:
        context.close()
