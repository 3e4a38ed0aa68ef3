"""The experiment report (report.md): the original's sections and table, filled from facts."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from generator.analysis.experiment import PURITY_GOOD, assessment, experiment_markdown
from generator.commands.build import build_site
from generator.config import BuildConfig
from tests.helpers import FakeEmbedder, make_colour_folder

WORDS = {
    "en": {
        "insufficient": "insufficient separation",
        "good": "good separation",
        "over": "over-fragmentation",
    },
    "ja": {"insufficient": "不十分な分離", "good": "良好な分離", "over": "過剰な細分化"},
}
SECTIONS = {
    "en": ["Purpose", "Plan", "Method", "Results", "Discussion", "Conclusion"],
    "ja": ["目的", "計画", "方法", "結果", "考察", "結論"],
}
ITEM = {"en": re.compile(r"cluster (\d+): (\d+)"), "ja": re.compile(r"クラスタ(\d+): (\d+)枚")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three clearly separated colour groups of 5, with folder labels, in both languages."""
    root = tmp_path_factory.mktemp("experiment")
    photos = make_colour_folder(root / "photos", per_colour=5)
    sites = {}
    for lang in ("en", "ja"):
        config = BuildConfig(
            inputs=(photos,), output=root / lang, k_max=5, labels="folders", lang=lang
        )
        build_site(config, embedder=FakeEmbedder())
        sites[lang] = root / lang
    return sites


def first_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
    return block[0], block[2:]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_md_table_follows_metrics_labels_and_the_stated_rule(built, lang) -> None:
    site = built[lang]
    text = (site / "report.md").read_text(encoding="utf-8")
    with (site / "metrics.csv").open(encoding="utf-8", newline="") as f:
        metrics = {int(row["k"]): row for row in csv.DictReader(f)}
    with (site / "tables" / "labels_k2.csv").open(encoding="utf-8", newline="") as f:
        totals = {row[0]: int(row[-1]) for row in list(csv.reader(f))[1:-1]}
    header, rows = first_table(text)
    labels = sorted(totals)
    assert header[1 : 1 + len(labels)] == labels
    assert [int(row[0]) for row in rows] == [2, 3, 4, 5]
    seen = set()
    for row in rows:
        k = int(row[0])
        purity = float(metrics[k]["purity"])
        assert row[-2] == f"{100 * purity:.1f} %"  # the table's purity is metrics.csv's
        for label, cell in zip(labels, row[1:-2], strict=True):
            counts = [int(n) for _, n in ITEM[lang].findall(cell)]
            assert sum(counts) == totals[label]  # each distribution sums to the label's count
            assert all(0 <= int(c) < k for c, _ in ITEM[lang].findall(cell))
        if k < len(labels) or purity < PURITY_GOOD:
            expected = "insufficient"
        else:
            expected = "over" if k > len(labels) else "good"
        assert row[-1] == WORDS[lang][expected]
        seen.add(expected)
    assert seen == {"insufficient", "good", "over"}  # 2: too few, 3: the colours, 4-5: too many
    assert f"{100 * PURITY_GOOD:.0f} %" in text  # the rule is stated


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_md_has_the_sections_prompts_and_no_placeholders(built, lang) -> None:
    text = (built[lang] / "report.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == [f"{i}. {name}" for i, name in enumerate(SECTIONS[lang], 1)]
    for leftover in ("{", "}", "xxxx", "XXXX", "None", "nan", "TODO"):
        assert leftover not in text
    assert text.count("> ✎ ") == 2  # discussion and conclusion are the student's
    discussion = text.split(f"## 5. {SECTIONS[lang][4]}")[1]
    assert all(
        line.startswith(">") or not line.strip() or line.startswith("## ")
        for line in discussion.splitlines()
    )
    assert (
        "fake-model" in text
        and "fake weights" in text
        and "seed 0" in text.replace("シード ", "seed ")
    )
    if lang == "ja":
        assert "クラスタ0: 5枚" in text


def test_report_md_without_labels_lists_sizes_and_metrics(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=3)
    (photos / "broken.png").write_bytes(b"not an image")
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", k_max=4)
    result = build_site(config, embedder=FakeEmbedder())
    report = result.report
    text = (tmp_path / "site" / "report.md").read_text(encoding="utf-8")
    assert text == experiment_markdown(result.typed_report, "en")
    header, rows = first_table(text)
    assert header == ["Number of clusters", "Cluster sizes", "Silhouette", "Size balance"]
    for row in rows:
        sizes = report["clusterings"][row[0]]["sizes"]
        assert row[1] == " + ".join(map(str, sizes))
    assert f"Suggested k: {report['suggested_k']}." in text
    assert "- Images: 9 used, 1 skipped." in text
    assert f"  - broken.png: {report['skipped'][0]['reason']}" in text
    assert "{" not in text and "separation" not in text


def test_assessment_rule() -> None:
    assert assessment(2, 0.95, 3) == "insufficient"  # fewer clusters than labels
    assert assessment(3, 0.79, 3) == "insufficient"
    assert assessment(3, 0.8, 3) == "good"
    assert assessment(4, 0.9, 3) == "over"
    assert assessment(4, 0.5, 3) == "insufficient"
    assert assessment(3, None, 3) == "insufficient"


def test_user_strings_are_literal_markdown(tmp_path) -> None:
    photos = tmp_path / "photos"
    make_colour_folder(photos, per_colour=2)
    (photos / "red").rename(photos / "a|b *x*")
    config = BuildConfig(
        inputs=(photos,), output=tmp_path / "site", k_max=3, labels="folders", title="<b>T</b> #1"
    )
    build_site(config, embedder=FakeEmbedder())
    text = (tmp_path / "site" / "report.md").read_text(encoding="utf-8")
    assert "# Experiment report: &lt;b&gt;T&lt;/b&gt; \\#1" in text
    header, rows = first_table(text)
    assert "a\\|b \\*x\\*" in header and all(len(row) == len(header) for row in rows)
