"""Files for other tools, written beside report.json: metrics.csv, the label × cluster tables
(CSV and Markdown, one pair per k) and, on request, the features as .npy arrays."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generator.analysis.analyse import Analysis
from generator.analysis.metrics import LABEL_KEYS, QUALITY_KEYS
from generator.report import Report

TABLES_DIR = "tables"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula


def write_exports(site: Path, report: Report) -> None:
    """metrics.csv always; tables/labels_k<k>.csv and .md when the build had known labels."""
    write_text(site / "metrics.csv", metrics_csv(report))
    if report.labels is None:
        return
    (site / TABLES_DIR).mkdir(exist_ok=True)
    for k in report.k_values:
        rows = label_table_rows(report, k)
        write_text(site / TABLES_DIR / f"labels_k{k}.csv", csv_text(rows))
        write_text(site / TABLES_DIR / f"labels_k{k}.md", _markdown(rows))


def write_arrays(site: Path, features: np.ndarray, coords: np.ndarray) -> None:
    """embeddings.npy (N × D float32) and pca.npy (N × components float64), images order."""
    np.save(site / "embeddings.npy", np.ascontiguousarray(features, dtype=np.float32))
    np.save(site / "pca.npy", np.ascontiguousarray(coords, dtype=np.float64))


def metrics_csv(report: Report) -> str:
    """One row per k; empty cells where a metric is undefined; `suggested` marks suggested_k."""
    keys = [*QUALITY_KEYS, *(LABEL_KEYS if report.labels is not None else ())]
    rows: list[list[Any]] = [["k", *keys, "suggested"]]
    for k in report.k_values:
        metrics = report.clustering(k).metrics
        cells = ["" if metrics[key] is None else metrics[key] for key in keys]
        rows.append([k, *cells, int(k == report.suggested_k)])
    return csv_text(rows)


def label_table_rows(report: Report, k: int) -> list[list[Any]]:
    """Header `label, cluster 0 … cluster k-1, total`, one row per label, then a total row."""
    table = report.clustering(k).label_table or ()
    header = ["label", *(f"cluster {c}" for c in range(k)), "total"]
    names = report.label_names
    rows = [[name, *counts, sum(counts)] for name, counts in zip(names, table, strict=True)]
    totals = [sum(column) for column in zip(*table, strict=True)] if table else [0] * k
    return [header, *rows, ["total", *totals, sum(totals)]]


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (a file named `=HYPERLINK(…).png`)
    gets a leading `'`, the OWASP way; numbers stay numbers. report.json keeps the exact text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_plain(value: str) -> str:
    """A guarded cell read back (sort reads its own clusters.csv): the `'` the guard added goes."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def csv_text(rows: list[list[Any]]) -> str:
    """Every CSV dinoclust writes goes through here, so every one is safe to open."""
    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    # csv quotes a cell holding the line terminator (\n) but not a lone \r, which readers take
    # for a line break: a row with one quotes all its text cells
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        cells = [spreadsheet_safe(cell) for cell in row]
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if carriage else plain).writerow(cells)
    return out.getvalue()


def _markdown(rows: list[list[Any]]) -> str:
    """A GitHub-flavoured table; labels are literal Markdown (experiment.md: no HTML runs)."""
    from generator.analysis.experiment import md, md_table

    header, *body = [[md(value) for value in row] for row in rows]
    rule = [":---", *("---:" for _ in header[1:])]
    return "\n".join(md_table(header, body, rule)) + "\n"


def write_text(path: Path, text: str) -> None:
    """Every text file of a site: UTF-8 with LF line ends on every OS (byte-identical sites)."""
    path.write_text(text, encoding="utf-8", newline="\n")


ASSIGNMENTS = "assignments.parquet"


def write_assignments(target: Path, paths: Sequence[str], analysis: Analysis) -> None:
    """assignments.parquet of an in-memory build: the streamed pass's columns (path, then
    cluster_k<k> int32 and distance_k<k> float32 for each k), one row per image, in the
    report's order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {"path": pa.array(list(paths), pa.string())}
    for k in sorted(analysis.clusterings):
        clustering = analysis.clusterings[k]
        columns[f"cluster_k{k}"] = pa.array(np.asarray(clustering.labels, dtype=np.int32))
        columns[f"distance_k{k}"] = pa.array(np.asarray(clustering.distances, dtype=np.float32))
    pq.write_table(pa.table(columns), target, compression="zstd")
