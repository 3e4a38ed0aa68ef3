"""How big `generator.show`'s cell output is, and how long examples/colab.ipynb takes to run.

    python benchmarks/bench_notebook.py            # the 30 demo images, default options

Builds the demo images with the real model and random weights (no download) into a temporary
folder, then prints, as a Markdown table: the single file's size, the cell output's size (the
same page escaped into `<iframe srcdoc>`) and Plotly's share; then runs the notebook top to bottom
on a fresh ipykernel (nbclient; demo images, random weights) and prints its wall time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sizes(work: Path) -> list[tuple[str, str]]:
    import generator
    from generator.api import notebook_html
    from generator.site.render import plotly_js

    result = generator.build(generator.DEMO_IMAGES, work / "site", weights="random", quiet=True)
    one = generator.build(
        generator.DEMO_IMAGES, work / "one.html", weights="random", single_file=True, quiet=True
    )
    page = one.output.stat().st_size
    cell = len(notebook_html(result).encode("utf-8"))
    plotly = plotly_js()[0].stat().st_size
    return [
        ("single file (--single-file)", f"{page / 1e6:.2f} MB"),
        ("show() cell output", f"{cell / 1e6:.2f} MB ({cell / page:.2f} x the file)"),
        ("of which Plotly (unescaped)", f"{plotly / 1e6:.2f} MB"),
    ]


def notebook_seconds(work: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "examples" / "colab.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell('IMAGES = "demo"\nWEIGHTS = "random"'))
    os.environ["PYTHONPATH"] = str(ROOT)
    os.environ["DINOCLUST_CACHE_DIR"] = str(work / "nb-cache")
    (work / "nb").mkdir()
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(work / "nb")}}).execute()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["DINOCLUST_CACHE_DIR"] = str(work / "cache")
        rows = sizes(work)
        rows.append(("notebook, top to bottom (cold cache)", f"{notebook_seconds(work):.1f} s"))
    print("| measure (30 demo images) | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
