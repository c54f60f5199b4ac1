"""`benchmark compare=...`: the workspace and another version timed in interleaved rounds in the same process."""

from __future__ import annotations

import re
from pathlib import Path

from toy_target import SEED, ToyEvaluator

import evoagent as ea
from evoagent.llm.scripted import ScriptedLLM


class TimedToy(ToyEvaluator):
    timing_stages = ("benchmark",)


def _tool_result(llm: ScriptedLLM, request: int) -> str:
    return str(llm.requests[request].messages[-1]["content"][0]["content"])


def test_benchmark_compare_parent_reports_per_configuration_ratios_from_interleaved_rounds(tmp_path: Path) -> None:
    run = ea.Run.create(tmp_path / "run", evaluator=TimedToy(), seeds=[ea.Candidate.from_source(SEED, entry="main.py")],
                        population=ea.Chain())
    llm = ScriptedLLM()
    llm.enqueue_tool_use("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    llm.enqueue_tool_use("benchmark", {"compare": "parent"})
    llm.enqueue_tool_use("benchmark", {"compare": "no-such-version"})
    llm.enqueue_tool_use("submit", {"hypothesis": "SPEED 2"})
    operator = ea.AgenticVariationOperator(llm, supervisor=False, critique=False)
    trials = list(ea.iterate(run, operator, ea.Budget(trials=1)))
    assert trials[0].committed
    text = _tool_result(llm, 2)
    assert text.startswith("status: ok")  # the workspace's own benchmark first
    assert "== comparison with parent: 3 interleaved rounds in this process (parent, workspace, parent, ...) ==" in text
    assert re.search(r"^n64\s+2\.0000\s+2\.0000\.\.2\.0000$", text, re.MULTILINE)
    assert re.search(r"^n128\s+2\.0000\s+2\.0000\.\.2\.0000$", text, re.MULTILINE)
    assert "geometric-mean Δ of the workspace vs parent: +100.00%" in text
    assert "no version 'no-such-version'" in _tool_result(llm, 3)
    [(_, lesson)] = run.store.lessons()
    assert lesson == ("trial 2: SPEED 2 -> committed, score 2.82843 (+100.00% vs its starting version; per configuration "
                      "from +100.00% (n128) to +100.00% (n64))")
    assert "(+100.00% vs the one above)  SPEED 2" in run.lineage.summary()  # lineage lines carry the Δ too
    stored = run.store.evaluations(kind="exploratory")
    assert len(stored) == 1 + 2 * 3  # the benchmark, then three rounds of parent and workspace
    run.close()
