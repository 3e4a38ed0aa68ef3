"""Issue 25 in real Chromium: the page opens on the pictures. At 1366×900, 1366×768 and 390×844, in
English and Japanese: the first cluster's thumbnails are in the first screen, no top-level panel
overlaps another (sticky ones included, at several scroll positions), the preview's × and Close
are in view (down to 390×600), the find box finds a known name, and a strip, a size bar and a
legend entry open their cluster's grid. Also: a click on a drawn point scrolls the grid to its
image, and a touch screen reads "tap"."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.browser import TIMEOUT_MS, open_page
from tests.helpers import FakeEmbedder, make_image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

VIEWPORTS = [(1366, 900), (1366, 768), (390, 844)]
SMALLEST = (390, 600)  # the preview keeps × and Close in view down to here
LANGS = ("en", "ja")
KNOWN = "blue_03.png"  # a file the find box must find

# The page's top-level parts, as boxes in the viewport. The sticky controls bar stays at the top
# and the page scrolls under it by design, so each other part counts only below the bar (where a
# reader sees it); the bar itself must overlap nothing at the top of the page.
BOXES_JS = """() => {
  const parts = Array.from(document.querySelectorAll(
    'header, main > section, main > details, main > .panels > *, footer'))
    .filter(e => !e.classList.contains('controls') && e.getBoundingClientRect().height > 0);
  const bar = document.querySelector('.controls').getBoundingClientRect();
  const name = e => e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className;
  const boxes = parts.map(e => {
    const r = e.getBoundingClientRect();
    return {name: name(e), left: r.left, right: r.right, top: Math.max(r.top, bar.bottom),
            bottom: r.bottom};
  }).filter(b => b.bottom > b.top);
  if (window.scrollY === 0) {
    boxes.push({name: '.controls', left: bar.left, right: bar.right, top: bar.top,
                bottom: bar.bottom});
  }
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) { overlaps.push(a.name + ' × ' + b.name + ' at y=' + window.scrollY); }
    }
  }
  return {overlaps: overlaps, count: parts.length};
}"""

CONTROLS_IN_VIEW_JS = """() => {
  const d = document.getElementById('preview').getBoundingClientRect();
  const vw = window.innerWidth, vh = window.innerHeight;
  return ['.preview-x', '.preview-close'].map(sel => {
    const r = document.querySelector('#preview ' + sel).getBoundingClientRect();
    return {sel: sel, inView: r.left >= 0 && r.top >= 0 && r.right <= vw && r.bottom <= vh,
            inDialog: r.left >= d.left && r.top >= d.top && r.right <= d.right
                      && r.bottom <= d.bottom,
            box: [r.left, r.top, r.right, r.bottom], dialog: [d.left, d.top, d.right, d.bottom]};
  });
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four labelled folders of six pictures each (one folder with a Japanese name), k up to 10."""
    root = tmp_path_factory.mktemp("images-first")
    folders = {"red": (200, 40, 40), "緑の写真": (40, 160, 60), "blue": (40, 60, 200),
               "grey": (128, 128, 128)}  # fmt: skip
    for name, colour in folders.items():
        for i in range(6):
            make_image(root / "in" / name / f"{name}_{i:02d}.png", colour, noise=10 + 6 * i, seed=i)
    output = root / "site"
    config = BuildConfig(inputs=(root / "in",), output=output, k_max=10, labels="folders")
    build_site(config, embedder=FakeEmbedder())
    return output


def first_screen_thumbnails(page: Page) -> dict[str, Any]:
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#strips li[data-cluster=\"0\"] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(
        """() => {
          const imgs = [...document.querySelectorAll('#strips li[data-cluster="0"] img')];
          const vh = window.innerHeight, vw = window.innerWidth;
          return {n: imgs.length, visible: imgs.filter(i => {
            const r = i.getBoundingClientRect();
            return r.top >= 0 && r.bottom <= vh && r.left >= 0 && r.left < vw && r.width >= 48;
          }).length};
        }"""
    )


def overlaps_while_scrolling(page: Page) -> list[str]:
    found: list[str] = []
    height = page.evaluate("() => document.documentElement.scrollHeight - window.innerHeight")
    for share in (0, 0.15, 0.35, 0.6, 0.85, 1):
        page.evaluate("y => window.scrollTo(0, y)", int(height * share))
        page.wait_for_timeout(50)
        result = page.evaluate(BOXES_JS)
        assert result["count"] >= 8
        found += result["overlaps"]
    page.evaluate("() => window.scrollTo(0, 0)")
    return found


def opened_in_view(page: Page, cluster: int) -> bool:
    """The cluster's grid is marked opened and its heading is on screen, below the controls."""
    page.wait_for_function(
        "c => document.querySelector(`#grid section[data-cluster='${c}'][data-opened]`)",
        arg=cluster,
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(
        """c => {
          const heading = document.querySelector(`#grid section[data-cluster='${c}'] h3`);
          const h = heading.getBoundingClientRect();
          const bar = document.querySelector('.controls').getBoundingClientRect();
          return h.top >= bar.bottom - 1 && h.bottom <= window.innerHeight
            && document.activeElement === heading;
        }""",
        cluster,
    )


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["1366x900", "1366x768", "390x844"])
@pytest.mark.parametrize("lang", LANGS)
def test_the_page_opens_on_the_pictures(browser: Browser, site, lang, viewport) -> None:
    with open_page(browser, site / "index.html", f"k=4&lang={lang}", viewport=viewport) as opened:
        page = opened.page
        assert page.evaluate("() => document.documentElement.lang") == lang
        # the first cluster's thumbnails are in the first screen
        shown = first_screen_thumbnails(page)
        assert shown["n"] >= 3 and shown["visible"] >= 3, shown
        # nothing overlaps, at the top, halfway, at the end (analysis panels opened too)
        assert overlaps_while_scrolling(page) == []
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert overlaps_while_scrolling(page) == []

        # on a desktop the 3D view stays in view beside the grid, whole, below the controls
        if viewport[0] > 860:
            page.evaluate(
                "() => { const g = document.getElementById('grid-section');"
                " window.scrollTo(0, g.offsetTop + g.offsetHeight / 2); }"
            )
            page.wait_for_timeout(50)
            plot = page.evaluate(
                """() => { const r = document.getElementById('plot-panel').getBoundingClientRect();
                     const bar = document.querySelector('.controls').getBoundingClientRect();
                     return r.top >= bar.bottom && r.bottom <= window.innerHeight; }"""
            )
            assert plot

        # a strip's heading, a size bar and a legend entry open their cluster's grid
        page.locator("#strips li[data-cluster='2'] .strip-open").click()
        assert opened_in_view(page, 2)
        page.locator("#sizes li[data-cluster='1'] .bar-track").click()
        assert opened_in_view(page, 1)
        assert page.locator("#grid section[data-opened]").count() == 1
        page.locator("#plot-legend button[data-cluster='3']").click()
        assert opened_in_view(page, 3)

        # the find box: the known file, in its cluster's strip, counted and ringed in the plot
        page.evaluate("() => window.scrollTo(0, 0)")
        page.locator("#find").fill(KNOWN[:-4])
        index = page.evaluate("n => window.dinoclust.data.images.findIndex(i => "
                              "i.path.endsWith(n))", KNOWN)  # fmt: skip
        page.wait_for_function("() => document.body.dataset.find === '1'", timeout=TIMEOUT_MS)
        cluster = page.evaluate("i => window.dinoclust.data.clusterings['4'].labels[i]", index)
        strip = page.locator(f"#strips li[data-cluster='{cluster}']")
        assert strip.get_attribute("data-matches") == "1"
        assert strip.locator(f".strip-thumb[data-image='{index}']").count() == 1
        assert (
            strip.locator(".strip-matches").inner_text().startswith("1 of" if lang == "en" else "")
        )
        assert page.locator("#strips li[data-matches='0']").count() == 3
        assert page.locator("#find-result").inner_text() != ""
        page.wait_for_function(
            "() => (document.getElementById('plot').data[4] || {x: []}).x.length === 1",
            timeout=TIMEOUT_MS,
        )
        page.locator("#find").press("Escape")
        page.wait_for_function("() => document.body.dataset.find === ''", timeout=TIMEOUT_MS)

        # the preview's × and Close are in view, here and on the smallest screen
        strip.locator(".strip-thumb").first.click()
        page.wait_for_function("() => document.getElementById('preview').open")
        for control in page.evaluate(CONTROLS_IN_VIEW_JS):
            assert control["inView"] and control["inDialog"], control
        page.set_viewport_size({"width": SMALLEST[0], "height": SMALLEST[1]})
        page.wait_for_timeout(100)
        for control in page.evaluate(CONTROLS_IN_VIEW_JS):
            assert control["inView"] and control["inDialog"], control
        page.locator("#preview .preview-x").click()
        assert not page.evaluate("() => document.getElementById('preview').open")
        assert opened.errors == []


def test_the_preview_steps_through_the_cluster_and_shows_similar_images(browser, site) -> None:
    with open_page(browser, site / "index.html", "k=2", viewport=(1366, 768)) as opened:
        page = opened.page
        members = page.evaluate("() => window.dinoclust.grid.arranged(2).members[0]")
        page.evaluate("i => window.dinoclust.openPreview(i)", members[0])
        dialog = page.locator("dialog#preview")
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => document.getElementById('preview').dataset.index === "
                               f"'{members[1]}'")  # fmt: skip
        assert page.evaluate("() => window.dinoclust.state.k") == 2  # → moved the preview, not k
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")  # from the first, ← goes round to the last
        page.wait_for_function(f"() => document.getElementById('preview').dataset.index === "
                               f"'{members[-1]}'")  # fmt: skip
        assert dialog.locator(".preview-pos").inner_text().startswith(f"{len(members)} of")
        page.wait_for_function("() => document.querySelectorAll('#preview .neighbour').length > 0")
        sizes = page.evaluate(
            """() => [...document.querySelectorAll('#preview .neighbour')].map(b => {
                 const r = b.querySelector('img').getBoundingClientRect();
                 return {w: r.width, h: r.height,
                         name: b.querySelector('.neighbour-name').textContent,
                         sim: b.querySelector('.neighbour-sim').textContent, title: b.title}; })"""
        )
        for s in sizes:
            assert s["w"] >= 96 and s["h"] >= 96
            assert s["name"] and s["name"] in s["title"]
            assert s["sim"].startswith("similarity ")
        # the image fills the space it has: most of the dialog's width or of the room left for it
        fill = page.evaluate(
            """() => { const d = document.getElementById('preview').getBoundingClientRect();
                 const i = document.querySelector('#preview > img').getBoundingClientRect();
                 return {w: i.width / d.width, h: i.height / d.height}; }"""
        )
        assert fill["w"] >= 0.9 and fill["h"] >= 0.3, fill
        assert opened.errors == []


def test_a_click_on_a_drawn_point_scrolls_the_grid_to_its_image(browser, site) -> None:
    """A real mouse click at the point's place on the screen, projected with the scene's own
    camera. Headless Chromium's software WebGL does pick points, but should Plotly not report the
    click, the test sends the `plotly_click` event Plotly would have sent, and says so."""
    with open_page(browser, site / "index.html", "k=3", viewport=(1366, 900)) as opened:
        page = opened.page
        page.evaluate("() => window.scrollTo(0, 0)")
        page.evaluate(
            """() => { window.__clicked = null;
                 document.getElementById('plot').on('plotly_click',
                   e => { window.__clicked = e.points[0].pointNumber; }); }"""
        )
        # the drawn point nearest the viewer, where it is drawn
        where = page.evaluate(PROJECT_JS)
        page.mouse.move(where["x"] - 20, where["y"] - 20)
        page.mouse.move(where["x"], where["y"], steps=4)
        page.mouse.down()
        page.mouse.up()
        try:
            page.wait_for_function("() => window.__clicked !== null", timeout=10_000)
            point = page.evaluate("() => window.__clicked")
            fired = "mouse"
        except Exception:  # noqa: BLE001 — Plotly did not pick it: send its own event
            point = where["j"]
            page.evaluate(
                """j => document.getElementById('plot').emit('plotly_click',
                     {points: [{curveNumber: 0, pointNumber: j}]})""",
                point,
            )
            fired = "emitted"
        index = page.evaluate("j => window.dinoclust.plot.imageAt(j)", point)
        figure = page.locator(f"#grid figure[data-image='{index}']")
        page.wait_for_function(
            """i => { const f = document.querySelector(`#grid figure[data-image='${i}']`);
                 if (!f || !f.classList.contains('highlight')) { return false; }
                 const r = f.getBoundingClientRect();
                 return r.top >= 0 && r.bottom <= window.innerHeight; }""",
            arg=index,
            timeout=TIMEOUT_MS,
        )
        assert figure.evaluate("f => document.activeElement === f.querySelector('button')")
        print(f"plotly_click: {fired}")
        assert opened.errors == []


# The screen position of the drawn point nearest the camera: Plotly's gl3d scene projects data
# (scaled by scene.dataScale) through the camera's model, view and projection matrices.
PROJECT_JS = """() => {
  const gd = document.getElementById('plot');
  const scene = gd._fullLayout.scene._scene;
  const cam = scene.glplot.cameraParams;
  const mul = (m, v) => [0, 1, 2, 3].map(r =>
    m[r] * v[0] + m[4 + r] * v[1] + m[8 + r] * v[2] + m[12 + r] * v[3]);
  const trace = gd._fullData[0];
  const box = gd.querySelector('.gl-container canvas, canvas').getBoundingClientRect();
  let best = null;
  for (let j = 0; j < trace.x.length; j++) {
    const p = [trace.x[j] * scene.dataScale[0], trace.y[j] * scene.dataScale[1],
               trace.z[j] * scene.dataScale[2], 1];
    const c = mul(cam.projection, mul(cam.view, mul(cam.model, p)));
    const x = box.left + (c[0] / c[3] + 1) / 2 * box.width;
    const y = box.top + (1 - c[1] / c[3]) / 2 * box.height;
    const depth = c[2] / c[3];
    if (best === null || depth < best.depth) { best = {x: x, y: y, depth: depth, j: j}; }
  }
  return best;
}"""


def test_a_touch_screen_reads_tap_and_a_frame_no_address(browser, site) -> None:
    with open_page(browser, site / "index.html", "lang=en", viewport=(390, 844), touch=True) as o:
        page = o.page
        for selector in ("#plot-hint", "#strips-section > p.hint", "#grid-section > p.hint"):
            text = page.locator(selector).inner_text()
            assert "tap" in text.lower() and "hover" not in text.lower(), (selector, text)
        page.evaluate("() => window.dinoclust.setLang('ja')")
        assert "タップ" in page.locator("#plot-hint").inner_text()
        assert "マウス" not in page.locator("#plot-hint").inner_text()
        assert o.errors == []
    with open_page(browser, site / "index.html", "lang=en", viewport=(1366, 900)) as o:
        assert "hover" in o.page.locator("#plot-hint").inner_text()  # a mouse: hover words stay
        assert "#k=" in o.page.locator("#k-hint").inner_text()
    # the same page inside a frame (as a notebook shows it): no address to share
    framing = site.parent / "framing.html"
    framing.write_text('<iframe src="site/index.html" style="width:1300px;height:800px"></iframe>')
    with open_page(browser, framing, viewport=(1366, 900), ready=False) as o:
        frame = o.page.frame_locator("iframe")
        frame.locator("body[data-ready='true']").wait_for(timeout=TIMEOUT_MS)
        hint = frame.locator("#k-hint").inner_text()
        assert "#k=" not in hint and "k" in hint
        assert o.errors == []


@pytest.mark.parametrize("viewport", [(390, 844), (1366, 768)], ids=["phone", "desktop"])
@pytest.mark.parametrize("lang", LANGS)
def test_tables_and_sankey_read_cleanly(browser: Browser, site, lang, viewport) -> None:
    """Defect 3: label names whole (never broken mid-word), a table wider than the phone says that
    it scrolls, the Sankey's names do not overlap and no Plotly toolbar covers it."""
    with open_page(browser, site / "index.html", f"k=10&lang={lang}", viewport=viewport) as o:
        page = o.page
        page.locator("#labels-section").scroll_into_view_if_needed()
        rows = page.evaluate(
            """() => [...document.querySelectorAll('#label-table tbody th')].map(th => {
                 const range = document.createRange(); range.selectNodeContents(th);
                 return range.getClientRects().length; })"""
        )
        assert rows and set(rows) == {1}  # one line each: "緑の写真", "blue", … whole
        scroller = page.locator("#labels-section .table-scroll")
        scrolls = scroller.evaluate("s => s.scrollWidth > s.clientWidth")
        assert scrolls == (viewport[0] < 600)  # 11 clusters fit a desktop, not a phone
        assert (scroller.get_attribute("data-scrolls") is not None) == scrolls
        assert bool(scroller.get_attribute("data-hint")) == scrolls
        page.locator("#splits").scroll_into_view_if_needed()
        page.wait_for_function(
            "() => document.querySelectorAll('#sankey .node-label').length === 19",
            timeout=TIMEOUT_MS,
        )
        overlaps = page.evaluate(
            """() => { const boxes = [...document.querySelectorAll('#sankey .node-label')]
                 .map(t => t.getBoundingClientRect()).filter(r => r.width > 0);
               let n = 0;
               for (let i = 0; i < boxes.length; i++) { for (let j = i + 1; j < boxes.length; j++) {
                 const a = boxes[i], b = boxes[j];
                 if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
                     Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1) { n += 1; } } }
               return n; }"""
        )
        assert overlaps == 0
        assert page.locator("#sankey .modebar").count() == 0
        assert o.errors == []
