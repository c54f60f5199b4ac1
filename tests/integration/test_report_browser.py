"""The report of real runs (circle packing, attention on the CPU) rendered in headless Chromium.

Fails on any console error or network request, checks that every chart drew an SVG and that a table row
opens its details, and saves a full-page screenshot under the test's output folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from browser import LOCAL_SCHEMES, Browser, external_references, find_chromium

import evoagent as ea
from evoagent.references import load_object

pytest.importorskip("plotly")
pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium on this machine: "
                                "apt-get install chromium (.ci/run installs it, so this runs in CI)")

EXAMPLE = Path(__file__).parents[2] / "examples" / "circle_packing"
CHART_STATUS = """window.evoagentReport.drawn.then(() => Array.from(document.querySelectorAll('div.chart')).map(
  div => ({id: div.id, drawn: div.dataset.drawn === 'yes', svgs: div.querySelectorAll('svg.main-svg').length,
           traces: div.querySelectorAll('g.trace, g.scatterlayer path, g.barlayer path').length})))"""


def _circle_run(run_dir: Path) -> int:
    evaluator = load_object(f"{EXAMPLE / 'evaluator.py'}:CirclePackingEvaluator")()
    with ea.Run.create(run_dir, evaluator=evaluator, seeds=[EXAMPLE / "packing.py"]) as run:
        ea.evolve(run, ea.ParameterMutation(max_changes=2), ea.Budget(trials=12), seed=0)
    return 6  # no static profile for this target


def _attention_run(run_dir: Path) -> int:
    from evoagent.targets.attention import AttentionEvaluator, default_seed

    with ea.Run.create(run_dir, evaluator=AttentionEvaluator(suite="smoke"), seeds=[default_seed()]) as run:
        ea.evolve(run, ea.AgenticVariationOperator(llm=ea.llm.HeuristicPolicy()), ea.Budget(trials=1))
    return 7  # with the static profile of committed kernels


@pytest.mark.parametrize("make_run", [_circle_run, _attention_run], ids=["circle_packing", "attention"])
def test_report_renders_in_chromium_with_every_chart_and_no_console_error(make_run, tmp_path):
    charts_expected = make_run(tmp_path / "run")
    report = tmp_path / "report.html"
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "report", str(tmp_path / "run"), "--out", str(report)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert external_references(report.read_text()) == []
    with Browser(find_chromium(), tmp_path / "profile") as browser:
        browser.open(report)
        charts = browser.evaluate(CHART_STATUS)
        assert len(charts) == charts_expected
        assert all(c["drawn"] and c["svgs"] >= 1 and c["traces"] >= 1 for c in charts), charts
        opened = browser.evaluate("(() => { const row = Array.from(document.querySelectorAll('tr.trial')).pop();"
                                  " row.click(); return !row.nextElementSibling.hidden; })()")
        assert opened
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.console_errors() == []
        assert [url for url in browser.requests() if not url.startswith(LOCAL_SCHEMES)] == []
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_browser_check_catches_console_errors_and_outside_requests(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><img src='https://example.invalid/x.png'>"
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    with Browser(find_chromium(), tmp_path / "profile") as browser:
        browser.open(page)
        errors = browser.console_errors()
        assert any("boom" in e for e in errors) and any("undefinedFunction" in e for e in errors)
        assert "https://example.invalid/x.png" in browser.requests()
