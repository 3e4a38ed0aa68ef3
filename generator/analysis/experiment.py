"""The experiment report (report.md), in the format of the original notebook's sample report:
purpose, plan, method, results, discussion, conclusion.

Everything it states is read from the report (the build's own numbers). Observations are facts
only; the discussion and the conclusion are left to the student as clearly marked prompts, because
the tool cannot know what the clusters mean. The words come from templates/i18n.json (`xr_…`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from generator.analysis.metrics import LABEL_KEYS, QUALITY_KEYS
from generator.i18n import Message, translate
from generator.ingest.labels import TOP_LEVEL
from generator.report import I18n, Report

PURITY_GOOD = 0.8  # the assessment rule's purity threshold (assessment: xr_assess_<word>)
PROMPT = "✎"  # marks what the student writes
MD_SPECIAL = "\\`*_[]|#"
# `<`, `>` and `&` as entities, not backslash escapes: Markdown renderers that pass HTML through
# (Python-Markdown, many wikis) do not take `\<` for a literal, and would run <i onmouseover=…>
MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
SKIPPED_LISTED = 10  # skipped files named in the method (all are in report.json)


def experiment_markdown(report: Report, lang: str) -> str:
    """report.md in `lang`, ending with one newline."""
    t = _Words(lang)
    default = report.title_i18n  # the default title follows the language
    title = _text(default, lang) if default else report.title
    lines = [f"# {t('xr_title', title=md(title))}", "", f"> {t('xr_intro')}", ""]
    for section in (_purpose, _plan, _method, _results, _observations, _discussion):
        lines += section(report, t) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def assessment(k: int, purity: float | None, n_labels: int) -> str:
    """The rule the report states: insufficient separation when k is below the number of labels
    or the purity below PURITY_GOOD; else over-fragmentation when k is above it; else good."""
    if purity is None or k < n_labels or purity < PURITY_GOOD:
        return "insufficient"
    return "over" if k > n_labels else "good"


def md(text: object) -> str:
    """User text as literal Markdown: specials backslash-escaped, one line."""
    out = str(text).replace("\r", " ").replace("\n", " ")
    return "".join(MD_ENTITIES.get(ch) or ("\\" + ch if ch in MD_SPECIAL else ch) for ch in out)


class _Words:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **args: Any) -> str:
        return translate(self.lang, key, **args)

    def label(self, name: str) -> str:
        """A known label: the top level's is words in the report's language, the rest data."""
        return md(self("label_top_level") if name == TOP_LEVEL else name)

    def source(self, labels: str | None) -> str:
        """Where the labels came from: sub-folders (in words), or the CSV's name."""
        return self("labels_src_folders") if labels == "folders" else md(labels)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def md_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], rule: Sequence[str] = ()
) -> list[str]:
    """A GitHub-flavoured table of ready cells; `rule`: each column's `---` (alignment)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [line(header), "|" + "|".join(rule or ["---"] * len(header)) + "|", *map(line, rows)]


def _bullets(items: list[str]) -> list[str]:
    """Markdown list items; those already indented ("  - …") are sub-items."""
    return [i if i.startswith("  ") else f"- {i}" for i in items]


def _variance(report: Report) -> tuple[str, str]:
    cumulative = report.pca.cumulative_explained_variance_ratio
    three = cumulative[min(3, len(cumulative)) - 1] if cumulative else None
    return _pct(three), _pct(cumulative[-1] if cumulative else None)


def _purpose(report: Report, t: _Words) -> list[str]:
    n, names = len(report.images), report.label_names
    lines = [f"## {t('xr_h_purpose')}", "", t("xr_purpose", n=n, model=md(report.model.name))]
    if report.labels is not None:
        listed = ", ".join(map(t.label, names))
        lines += ["", t("xr_purpose_labels", l=len(names), names=listed)]
    return lines


def _plan(report: Report, t: _Words) -> list[str]:
    ks = report.k_values
    steps = [
        t("xr_plan_embed", model=md(report.model.name)),
        t("xr_plan_pca", c=report.pca.n_components),
        t("xr_plan_kmeans", lo=ks[0], hi=ks[-1], seed=report.seed),
    ]
    if report.labels is not None:
        steps.append(t("xr_plan_labels"))
    steps.append(t("xr_plan_look"))
    return [f"## {t('xr_h_plan')}", "", *(f"{i}. {s}" for i, s in enumerate(steps, 1))]


def _method(report: Report, t: _Words) -> list[str]:
    model, pre, prov = report.model, report.model.preprocess, report.provenance
    skipped = report.skipped
    three, every = _variance(report)
    items = [t("xr_m_images", n=len(report.images), s=len(skipped))]
    for s in skipped[:SKIPPED_LISTED]:
        items.append(f"  - {md(s.path)}: {md(_text(s.reason_i18n, t.lang))}")
    if len(skipped) > SKIPPED_LISTED:
        items.append(f"  - {t('xr_m_more', n=len(skipped) - SKIPPED_LISTED)}")
    if report.labels is not None:
        counts = [sum(row) for row in report.clustering(report.k_values[0]).label_table or ()]
        names = report.label_names
        listed = ", ".join(f"{t.label(name)} ({counts[i]})" for i, name in enumerate(names))
        items.append(t("xr_m_labels", l=len(counts), src=t.source(prov.labels), names=listed))
    else:
        items.append(t("xr_m_no_labels"))
    said = model.weights_i18n  # the weights in the report's language, where it has them
    words = t(said.key, **dict(said.args)) if said else model.weights
    weights = md(words) + (" " + t("xr_m_random") if model.random_weights else "")
    stretch = pre.resize == translate("en", "prov_resize_stretch")
    resize = t("prov_resize_stretch") if stretch else md(pre.resize)
    items += [
        t("xr_m_model", name=md(model.name), dim=model.feature_dim, p=model.precision),
        t("xr_m_weights", w=weights),
        t("xr_m_pre", size=pre.size, resize=resize, mean=list(pre.mean), std=list(pre.std)),
        t("xr_m_pca", c=report.pca.n_components, three=three, all=every),
        t(
            "xr_m_kmeans",
            lo=report.k_values[0],
            hi=report.k_values[-1],
            n_init=prov.kmeans.n_init,
            seed=report.seed,
            s=prov.silhouette_sample,
        ),
    ]
    return [f"## {t('xr_h_method')}", "", *_bullets(items)]


def _text(message: I18n, lang: str) -> str:
    return Message.of(message.key, **message.args).text(lang)


def _results(report: Report, t: _Words) -> list[str]:
    lines = [f"## {t('xr_h_results')}", ""]
    if report.labels is not None:
        lines += _label_results(report, t)
    else:
        rows = []
        for k in report.k_values:
            c = report.clustering(k)
            sizes = " + ".join(map(str, c.sizes))
            rows.append([str(k), sizes, _num(c.metrics["silhouette"]), _num(c.metrics["balance"])])
        header = [t("xr_col_k"), t("xr_col_sizes"), t("m_silhouette"), t("m_balance")]
        lines += [f"### {t('xr_h_table')}", "", *md_table(header, rows)]
    lines += ["", f"### {t('xr_h_metrics')}", "", *_metrics_table(report, t), ""]
    suggested = report.suggested_k
    lines.append(
        t("xr_suggested", k=suggested, rule_key="suggest_rule")
        if suggested is not None
        else t("no_suggestion")
    )
    return lines


def _label_results(report: Report, t: _Words) -> list[str]:
    names = report.label_names
    rows = []
    for k in report.k_values:
        c = report.clustering(k)
        purity = c.metrics["purity"]
        dists = [_distribution(row, t) for row in c.label_table or ()]
        word = t(f"xr_assess_{assessment(k, purity, len(names))}")
        rows.append([str(k), *dists, _pct(purity), word])
    header = [t("xr_col_k"), *map(t.label, names), t("xr_col_purity"), t("xr_col_assessment")]
    rule = t("xr_rule", l=len(names), p=f"{100 * PURITY_GOOD:.0f}")
    return [f"### {t('xr_h_table')}", "", *md_table(header, rows), "", rule]


def _distribution(counts: Sequence[int], t: _Words) -> str:
    parts = [t("xr_dist_item", c=c, n=n) for c, n in enumerate(counts) if n]
    return t("xr_dist_sep").join(parts)


def _metrics_table(report: Report, t: _Words) -> list[str]:
    keys = [*QUALITY_KEYS, *(LABEL_KEYS if report.labels is not None else ())]
    rows = [
        [str(k), *(_num(report.clustering(k).metrics[key]) for key in keys)]
        for k in report.k_values
    ]
    return md_table([t("xr_col_k"), *(t(f"m_{key}") for key in keys)], rows)


def _observations(report: Report, t: _Words) -> list[str]:
    three, _ = _variance(report)
    items = [t("xr_o_balance")]
    for k in report.k_values:
        c = report.clustering(k)
        sizes = " + ".join(map(str, c.sizes))
        items.append(f"  - k = {k}: {_num(c.metrics['balance'])} ({sizes})")
    items.append(t("xr_o_variance", three=three))
    items.append(t("xr_o_splits"))
    items += [f"  - {s}" for s in _splits(report, t)] or [f"  - {t('xr_o_no_splits')}"]
    k = report.suggested_k or report.k_values[0]
    items.append(t("xr_o_typical", k=k))
    items += [f"  - {s}" for s in _typical(report, k, t)]
    return [f"### {t('xr_h_observations')}", "", *_bullets(items)]


def _splits(report: Report, t: _Words) -> list[str]:
    """From flows_to_next: each cluster at k whose images go to more than one cluster at k+1."""
    out = []
    for k in report.k_values[:-1]:
        targets: dict[int, list[tuple[int, int]]] = {}
        for before, after, n in report.clustering(k).flows_to_next:
            targets.setdefault(before, []).append((after, n))
        for before, parts in sorted(targets.items()):
            if len(parts) > 1:
                into = t("xr_dist_sep").join(t("xr_split_part", c=c, n=n) for c, n in parts)
                out.append(t("xr_split", k=k, k1=k + 1, c=before, into=into))
    return out


def _typical(report: Report, k: int, t: _Words) -> list[str]:
    c = report.clustering(k)
    out = []
    for cluster, size in enumerate(c.sizes):
        members = [i for i, label in enumerate(c.labels) if label == cluster]
        if not members:
            continue
        order = sorted(members, key=lambda i: (c.distances[i], i))
        first, last = order[0], order[-1]
        out.append(
            t(
                "xr_typical",
                c=cluster,
                n=size,
                most=md(report.images[first].path),
                d1=f"{c.distances[first]:.3f}",
                least=md(report.images[last].path),
                d2=f"{c.distances[last]:.3f}",
            )
        )
    return out


def _discussion(report: Report, t: _Words) -> list[str]:
    return [
        f"## {t('xr_h_discussion')}",
        "",
        f"> {PROMPT} {t('xr_prompt')}",
        ">",
        f"> {t('xr_discussion_prompt')}",
        "",
        f"## {t('xr_h_conclusion')}",
        "",
        f"> {PROMPT} {t('xr_prompt')}",
        ">",
        f"> {t('xr_conclusion_prompt')}",
    ]
