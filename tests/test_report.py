"""The typed report (generator/report.py): its keys are report.json's contract, it is built once
and frozen, and its JSON Schema is derived from the types and shipped."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from generator.analysis.analyse import analyse
from generator.cli import cli
from generator.errors import GeneratorError
from generator.report import SCHEMA_FILE, Report, json_schema, read_report, schema_text
from generator.site.payload import ImageRecord, SampledTotals, build_report
from generator.types import ModelInfo
from tests.reportschema import problems

INFO = ModelInfo("m", "w", "w:1", False, "cpu", "fp32")

# report.json's keys as they were before the report had types: the contract (README)
TOP = {
    "schema_version", "generator", "title", "title_i18n", "model", "seed", "images", "points",
    "display_sample", "pca", "k_values", "clusterings", "suggested_k", "suggested_k_rule",
    "distinct_points", "notes", "notes_i18n", "skipped", "aliases", "labels", "label_names",
    "duplicates", "neighbours", "neighbour_similarity", "provenance",
}  # fmt: skip
SAMPLED = {"sampled", "rows", "skipped_rows"}  # only in a sampled report
QUERY = {"query"}  # only in a site built with --query (issue 29)
CLUSTERING = {
    "labels", "centers", "sizes", "inertia", "distances", "metrics", "flows_to_next",
}  # fmt: skip
CLUSTERING_SOMETIMES = {"label_table", "sizes_all"}
NESTED = {
    "Generator": {"name", "version"},
    "Model": {
        "name", "weights", "weights_i18n", "random_weights", "precision", "backend",
        "feature_dim", "preprocess",
    },
    "Preprocess": {"size", "mean", "std", "resize"},
    "Image": {
        "path", "thumb", "thumb_width", "thumb_height", "width", "height", "preview",
        "preview_width", "preview_height",
    },
    "Pca": {"n_components", "explained_variance_ratio", "cumulative_explained_variance_ratio"},
    "Skipped": {"path", "reason", "reason_i18n"},
    "Alias": {"path", "same_as"},
    "Duplicates": {"exact", "near", "near_threshold"},
    "I18n": {"key", "args"},
    "KMeans": {"n_init", "k_values"},
    "Provenance": {
        "model", "weights", "weights_id", "precision", "backend", "preprocess", "seed",
        "feature_dim", "pca_components", "kmeans", "silhouette_sample", "near_duplicate_cosine",
        "labels", "packages",
    },
    "Query": {"model", "index", "runtime", "precision", "bytes"},
}  # fmt: skip


def small_report(sampled: SampledTotals | None = None) -> Report:
    rng = np.random.default_rng(0)
    analysis = analyse(rng.normal(size=(12, 8)).astype(np.float32), 4, 0)
    images = [
        ImageRecord(f"img/{i:02d}.png", f"thumbs/{i:020x}.webp", (10, 8), (20, 16), f"{i:064x}")
        for i in range(12)
    ]
    return build_report("t", images, [], analysis, INFO, 0, sampled=sampled)


def test_the_shipped_schema_is_the_one_the_types_give() -> None:
    """generator/report.schema.json (in the wheel) is regenerated, never edited: run
    `dinoclust schema > generator/report.schema.json` after changing generator/report.py."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(json_schema())


def test_dinoclust_schema_prints_it() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.output == SCHEMA_FILE.read_text(encoding="utf-8")
    assert json.loads(result.output)["title"] == "dinoclust report.json"


def test_the_schema_holds_exactly_todays_keys() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == TOP | SAMPLED | QUERY
    assert set(schema["required"]) == TOP
    assert schema["additionalProperties"] is False
    clustering = schema["$defs"]["Clustering"]
    assert set(clustering["properties"]) == CLUSTERING | CLUSTERING_SOMETIMES
    assert set(clustering["required"]) == CLUSTERING
    for name, keys in NESTED.items():
        assert set(schema["$defs"][name]["properties"]) == keys, name
        assert set(schema["$defs"][name]["required"]) == keys, name
    assert set(schema["$defs"]) == {"Clustering", *NESTED}


def test_a_report_is_its_json_and_back() -> None:
    report = small_report()
    data = report.to_json()
    assert set(data) == TOP  # the sampled keys are left out, not null
    assert set(data["clusterings"]["2"]) == CLUSTERING
    assert json.loads(json.dumps(data)) == data  # plain JSON data: dicts, lists, numbers
    assert Report.from_json(data) == report
    assert problems_of(data) == []


def test_a_sampled_report_carries_the_totals_from_its_builder() -> None:
    sizes = {k: [100 + k, 7] for k in range(2, 5)}
    report = small_report(SampledTotals(rows=2_000_000, skipped_rows=3, sizes_all=sizes))
    data = report.to_json()
    assert set(data) == TOP | SAMPLED
    assert (data["sampled"], data["rows"], data["skipped_rows"]) == (True, 2_000_000, 3)
    for k in range(2, 5):
        assert data["clusterings"][str(k)]["sizes_all"] == [100 + k, 7]
    assert Report.from_json(data) == report
    assert problems_of(data) == []


def test_a_report_cannot_be_changed_after_it_is_built() -> None:
    report = small_report()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.sampled = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.clustering(2).sizes_all = (1, 2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.clusterings["9"] = report.clustering(2)  # type: ignore[index]
    with pytest.raises(TypeError):
        report.clustering(2).metrics["silhouette"] = 1.0  # type: ignore[index]
    assert isinstance(report.images, tuple) and isinstance(report.points[0], tuple)


def problems_of(data: dict, tmp: Path | None = None) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return problems(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("seed"),
        lambda d: d.update(extra=1),
        lambda d: d["clusterings"]["2"].update(sizes_all="many"),
        lambda d: d["images"][0].pop("thumb_width"),
        lambda d: d["model"].update(random_weights="no"),
        lambda d: d["points"][0].append(0.5),
        lambda d: d.update(sampled=None),  # absent, never null
        lambda d: d["provenance"]["kmeans"].update(n_init=1.5),
    ],
)
def test_the_session_check_finds_a_report_that_drifts(change) -> None:
    """The check every test's report.json goes through (tests/reportschema.py) can fail."""
    data = small_report().to_json()
    change(data)
    assert problems_of(data) != []


def test_a_report_json_that_is_not_one_is_an_error_naming_it(tmp_path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"schema_version": 1}', encoding="utf-8")
    with pytest.raises(GeneratorError, match=str(path)):
        read_report(path)
    data = small_report().to_json()
    path.write_text(json.dumps(data), encoding="utf-8")
    assert read_report(path) == small_report()
