"""The HTML report as text: self-contained, escaped, with the charts the run has data for."""

from __future__ import annotations

import json
import re

import pytest
from browser import external_references

from evoagent import Candidate, EvalResult, StageResult, Status
from evoagent.report import page
from evoagent.store import RunStore
from evoagent.targets.attention import AttentionEvaluator

pytest.importorskip("plotly")

HOSTILE = "</script><script>alert('x')</script> <img src=https://example.com/x.png>"


def _gpu_result(tflops: float, registers: int) -> EvalResult:
    """An attention evaluation as a GPU run stores it: static report in `check`, baselines in `benchmark`."""
    static = {"sm_90a": {"registers": registers, "spill_bytes": 0, "shared_bytes": 98304,
                         "kernels": [{"tensor_core": {"HGMMA.64x128x16": 32}}]}}
    table = [{"config": c, "tflops": {"candidate": tflops * k, "sdpa-cudnn": 500.0 * k, "sdpa-flash": 450.0 * k}}
             for c, k in (("n4096-causal", 1.0), ("n8192-causal", 1.1))]
    stages = (StageResult(name="check", details={"static": static}),
              StageResult(name="benchmark", details={"table": table},
                          metrics={"n4096-causal": tflops, "n8192-causal": tflops * 1.1}))
    return EvalResult(status=Status.OK, metrics=stages[1].metrics, score=tflops * 1.05, stages=stages,
                      device="NVIDIA H100")


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "run.db", create=True)
    s.set_meta("evaluator", AttentionEvaluator(suite="smoke").spec())
    s.add_event("start", {"budget": {"trials": 3}})
    seed = Candidate.from_source("seed = 1\n")
    for parent, candidate, result, committed, hypothesis in (
            (None, seed, _gpu_result(400.0, 168), True, "seed"),
            (seed, Candidate.from_source("v = 2\n", parents=(seed.id,)), _gpu_result(520.0, 200), True, "wider tiles"),
            (seed, Candidate.from_source("v = 3\n", parents=(seed.id,)),
             EvalResult(status=Status.INCORRECT, reason="max error 3.1 at row 7"), False, HOSTILE)):
        trial_id = s.begin_trial(operator="seed" if parent is None else "agentic",
                                 parent_id=parent.id if parent else None)
        s.finish_trial(trial_id, candidate=candidate, result=result, hypothesis=hypothesis,
                       diff=candidate.diff(parent) if parent else "", committed=committed, eval_s=0.0, lesson="")
    s.add_event("supervisor", {"advice": "try persistent kernels"}, trial_id=3)
    yield s
    s.close()


def test_attention_results_give_baselines_cudnn_first_and_a_static_profile():
    result = _gpu_result(520.0, 200)
    baselines = AttentionEvaluator.baseline_metrics(result)
    assert list(baselines) == ["cuDNN", "FLASH"] and baselines["cuDNN"]["n8192-causal"] == pytest.approx(550.0)
    assert AttentionEvaluator.profile_summary(result) == {
        "registers": 200.0, "spill bytes": 0.0, "shared memory bytes": 98304.0, "tensor-core instructions": 32.0}
    assert AttentionEvaluator.score_caption("cpu-interpreter") == "TFLOPS (cpu-interpreter: not GPU speed)"


def test_report_has_every_chart_and_names_the_unit(store):
    data = page.read(store)
    titles = [title for title, _, _ in page.figures(data)]
    assert titles == ["Score over trials", "Per configuration", "Lineage", "Labels over time", "Tokens and cost",
                      "Trials per hour", "Static profile"]
    assert data.summary.caption == "TFLOPS on NVIDIA H100" and data.supervisor_trials == (3,)
    figures = {title: fig for title, fig, _ in page.figures(data)}
    configs = figures["Per configuration"]
    assert configs.layout.yaxis.title.text == "ratio to cuDNN"
    assert {t.name for t in configs.data} == {"seed", "best", "cuDNN", "FLASH"}
    score = figures["Score over trials"]
    texts = {a.text for a in score.layout.annotations}
    assert texts >= {"cuDNN 524.404", "FLASH 471.964", "seed 420", "supervisor"}, texts


def test_report_html_references_nothing_outside_the_file(store):
    text = page.render(page.read(store), {})
    assert external_references(text) == []
    assert external_references('<a href="https://x.org">x</a><div style="background: url(//cdn/x.png)">') == [
        "https://x.org", "//cdn/x.png"]  # the scanner finds what it must


def test_hostile_text_cannot_close_a_script_or_add_markup(store):
    text = page.render(page.read(store), {})
    assert text.count("<script") == text.count("</script>")  # every script element closes where it should
    assert "<script>alert" not in text and "&lt;/script&gt;&lt;script&gt;alert" in text
    blobs = re.findall(r'<script type="application/json" id="figure-\d+">(.*?)</script>', text, flags=re.S)
    assert len(blobs) == 7 and all(json.loads(b)["data"] for b in blobs)


def test_score_axes_of_tiny_or_huge_numbers_use_an_exponent_not_raw_decimals():
    from evoagent.report.charts import tick_format

    assert tick_format([7.5e-6, 1.2e-5]) == ".3~e"  # 7.5e-6, never 0.0000075
    assert tick_format([2.5e7]) == ".3~e"
    assert tick_format([1.1, 2.6, None]) == ".3~g"
