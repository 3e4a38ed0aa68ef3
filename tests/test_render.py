"""Stage 5: the page template. User strings are data, never markup (property-based)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from generator.analysis.analyse import analyse
from generator.i18n import Message
from generator.report import Report
from generator.site.payload import ImageRecord, build_report, page_data
from generator.site.render import render_index, render_site
from generator.types import ModelInfo, SkippedImage

DATA_BLOCK = re.compile(
    r'<script type="application/json" id="dinoclust-data">(.*?)</script>', re.DOTALL
)
INFO = ModelInfo("m", "w", "w:1", False, "cpu", "fp32")
ANALYSIS = analyse(np.random.default_rng(0).normal(size=(3, 8)), k_max=3, seed=0)

# file names may hold any character except "/" and NUL; titles anything printable
names = st.text(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1
)
hostile = st.sampled_from(
    [
        "</script><script>window.__pwned=1</script>",
        "<img src=x onerror=alert(1)>",
        "a&b \"q\" 'q'",
        "猫の写真",
        "🐱 emoji",
        "<!--",
        "]]>",
        "\u2028\u2029",
    ]
)


def report_for(title: str, rels: list[str], skipped: list[str], info: ModelInfo = INFO) -> Report:
    images = [
        ImageRecord(rel, f"thumbs/{i}.webp", (10, 10), (20, 20)) for i, rel in enumerate(rels)
    ]
    # the reason's argument is user text too (e.g. an OS message quoting the name)
    skips = [SkippedImage(rel, Message.of("skip_corrupt", error=rel)) for rel in skipped]
    return build_report(title, images, skips, ANALYSIS, info, 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.one_of(names, hostile),
    rels=st.lists(st.one_of(names, hostile), min_size=3, max_size=3),
    skipped=st.lists(st.one_of(names, hostile), max_size=2),
)
def test_user_strings_never_become_markup(title, rels, skipped) -> None:
    report = report_for(title, rels, skipped)
    html = render_index(report, "static/js/plotly.min.js")
    # exactly our script elements (data, its base64 columns, UI strings, report, 14 scripts):
    # nothing a name holds can open or close one
    page = page_data(report)
    expected = 3 + len(page.columns) + 14
    assert html.count("<script") == expected
    assert html.count("</script>") == expected
    (block,) = DATA_BLOCK.findall(html)
    assert json.loads(block) == json.loads(json.dumps(page.meta))
    assert f"<h1>{escape(title)}</h1>" in html
    assert f"<title>{escape(title)}</title>" in html
    for rel in skipped:
        assert f"<code>{escape(rel)}</code>" in html
    without_data = DATA_BLOCK.sub("", html)
    # a string the page holds anyway (e.g. a name that is just "<") proves nothing either way
    neutral = DATA_BLOCK.sub("", render_index(report_for("t", ["a", "b", "c"], []), "p.js"))
    for text in (title, *rels, *skipped):
        if any(c in text for c in "<>&\"'") and text not in neutral:
            # only ever present in escaped form ("&" is inside its own "&amp;")
            assert text not in without_data.replace(str(escape(text)), "")


def test_random_weights_show_the_banner() -> None:
    report = report_for("t", ["a", "b", "c"], [])
    assert 'id="random-banner"' not in render_index(report, "p.js")
    random = replace(report, model=replace(report.model, random_weights=True))
    assert 'id="random-banner"' in render_index(random, "p.js")


def test_site_files_and_plotly_from_the_package(tmp_path: Path) -> None:
    import plotly
    from plotly.offline import get_plotlyjs_version

    report = report_for("t", ["a", "b", "c"], [])
    render_site(report, tmp_path)
    plotly_js = tmp_path / "static" / "js" / f"plotly-{get_plotlyjs_version()}.min.js"
    original = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert plotly_js.read_bytes() == original.read_bytes()
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f'<script src="static/js/plotly-{get_plotlyjs_version()}.min.js"></script>' in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no CDN, no remote asset
    assert (tmp_path / ".nojekyll").read_text() == ""
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report.to_json()


UI_BLOCK = re.compile(
    r'<script type="application/json" id="dinoclust-ui">(.*?)</script>', re.DOTALL
)


def test_lang_writes_the_page_in_that_language_with_every_language_inline(tmp_path: Path) -> None:
    report = report_for("猫の写真", ["猫/三毛.png", "b", "c"], [])
    english = render_index(report, "p.js")
    japanese = render_index(report, "p.js", lang="ja")
    assert '<html lang="en">' in english and "Images by cluster" in english
    assert '<html lang="ja">' in japanese and "クラスタごとの画像" in japanese
    assert "Images by cluster" not in UI_BLOCK.sub("", japanese)  # only in the inline strings
    assert "<h1>猫の写真</h1>" in japanese  # user strings unchanged, as text
    ui = json.loads(UI_BLOCK.search(japanese).group(1))  # type: ignore[union-attr]
    assert ui["lang"] == "ja" and ui["langs"] == ["en", "ja"]
    assert ui["strings"]["ja"]["grid_title"] == "クラスタごとの画像"
    assert ui == {**json.loads(UI_BLOCK.search(english).group(1)), "lang": "ja"}  # type: ignore[union-attr]
    # translatable text carries its key and arguments, so the page can switch language in place
    assert 'data-i18n="pca_summary_other" data-i18n-args="{&#34;dim&#34;:' in japanese
    assert render_index(report, "p.js", lang="ja") == japanese  # deterministic
    render_site(report, tmp_path, lang="ja")
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == japanese.replace(
        'src="p.js"', f'src="{_plotly_name()}"'
    )


def test_only_dino_features_are_called_dino() -> None:
    """The PCA summary names the features' model: DINO's by that name, another's (a foreign
    Parquet, a test's fake) by its own, in both languages."""
    from dataclasses import replace

    from generator.model.vit import MODEL_NAME

    report = report_for("t", ["a", "b", "c"], [])
    other = UI_BLOCK.sub("", render_index(report, "p.js"))
    assert "of the 8-d features (m)." in other and "DINO" not in other
    dino = report_for("t", ["a", "b", "c"], [], replace(INFO, name=MODEL_NAME))
    page = UI_BLOCK.sub("", render_index(dino, "p.js", lang="ja"))
    assert "8 次元の DINO 特徴量に対する累積寄与率" in page


def test_unknown_lang_is_refused() -> None:
    import pytest

    from generator.config import BuildConfig
    from generator.errors import ConfigError

    with pytest.raises(ValueError, match="unknown language 'fr'"):
        render_index(report_for("t", ["a", "b", "c"], []), "p.js", lang="fr")
    with pytest.raises(ConfigError, match="Unknown language 'fr': use one of en, ja"):
        BuildConfig(inputs=(Path("x"),), lang="fr")


def _plotly_name() -> str:
    from plotly.offline import get_plotlyjs_version

    return f"static/js/plotly-{get_plotlyjs_version()}.min.js"


def test_the_suggestion_rule_is_translated_while_it_is_the_known_one() -> None:
    from generator.analysis.metrics import SUGGESTED_K_RULE
    from generator.site.render import ui_strings

    # the page names the rule in the reader's language only while it is this one
    assert ui_strings()["en"]["suggest_rule"] == SUGGESTED_K_RULE
    report = report_for("t", ["a", "b", "c"], [])
    assert report.suggested_k == 2  # ANALYSIS has a silhouette, so there is a suggestion
    assert "平均シルエット係数が最大" in render_index(report, "p.js", lang="ja")


def test_weights_and_provenance_are_said_in_the_page_language() -> None:
    from generator.model.embed import plan_model

    info = plan_model("random", "cpu", "fp32", seed=3)
    assert info.weights == "random (untrained, seed 3)"
    assert info.weights_i18n == Message.of("weights_random", seed=3)
    skips = [SkippedImage("x.png", Message.of("skip_empty"))]
    images = [ImageRecord(r, f"thumbs/{r}.webp", (10, 10), (20, 20)) for r in "abc"]
    report = build_report("t", images, skips, ANALYSIS, info, 0)
    assert report.to_json()["model"]["weights_i18n"] == {
        "key": "weights_random",
        "args": {"seed": "3"},
    }
    japanese = render_index(report, "p.js", lang="ja")
    for text in (
        "ランダム（未学習、乱数シード 3）",
        "224 px、バイリニア補間、縦横比は保たない、平均 0.485 / 0.456 / 0.406",
        "8 次元の特徴量 → 主成分 3 個",
        "初期値 10 通りから最良を採用",
    ):
        assert text in japanese, text
    english = render_index(report, "p.js")
    assert "weights:</span> <span" in english and ">random (untrained, seed 3)</span>" in english
    assert "224 px, bilinear, aspect ratio not kept, mean 0.485 / 0.456 / 0.406" in english
