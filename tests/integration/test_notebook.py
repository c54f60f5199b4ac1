"""The example notebook runs top to bottom in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebooks" / "circle_packing.ipynb"


def test_circle_packing_notebook_runs_and_shows_progress_tables_and_a_report(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("evoagent-progress" in h and "trials 20/20" in h and "sum of radii" in h for h in html)
    assert any("<b>evoagent run</b>" in h for h in html) and any("<b>trial " in h for h in html)
    assert any("ratio_to_parent" in h for h in html)  # the DataFrame
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs) == 2
    reports = list(tmp_path.glob("runs/circles-*/report.html"))
    assert len(reports) == 1 and reports[0].stat().st_size > 1_000_000
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    best = re.search(r"\| best (\S+) sum of radii", printed)
    assert best is not None and len(best.group(1).replace(".", "")) <= 6  # not 2.1279999999999997
