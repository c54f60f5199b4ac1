"""What one trial costs does not grow with the run: the store work of the agentic path, counted (never timed)."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import evoagent as ea
from evoagent.knowledge import KnowledgeBase
from evoagent.llm.scripted import Request, ScriptedLLM


class Constant(ea.Evaluator):
    """The score is the constant N in the candidate (no sandbox call: the trial is all engine and operator)."""

    name = "constant"
    stages = ("score",)

    def score(self, candidate: ea.Candidate, sandbox: Any) -> ea.StageResult:
        return ea.StageResult(metrics={"f": 1.0 + float(candidate.source.split("=")[1])})


class VmSteps:
    """Counts the SQLite virtual-machine instructions a connection runs (its progress handler, every step)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return 0  # go on


def instant_model(trials: int) -> ScriptedLLM:
    """Each step writes a larger constant, then submits (as benchmarks/instant_messages_server.py answers)."""
    numbers = itertools.count(1)
    llm = ScriptedLLM()

    def answer(request: Request) -> Any:
        if not request.tools:  # a compaction's summary request
            return llm.response([{"type": "text", "text": "Wrote larger constants; each was committed."}])
        blocks = request.messages[-1]["content"]
        opening = any(b.get("type") == "text" and b["text"].startswith("## Variation step") for b in blocks)
        if opening or not any(b.get("type") == "tool_result" for b in blocks):
            call = {"name": "write_file", "input": {"path": "main.py", "content": f"N = {next(numbers)}\n"}}
        else:
            call = {"name": "submit", "input": {"hypothesis": "a larger constant"}}
        return llm.response([{"type": "tool_use", "id": "", **call}], stop_reason="tool_use")

    return llm.enqueue(*[answer] * (3 * trials))


def test_store_work_per_agentic_trial_does_not_grow_with_the_run(tmp_path):
    """60 trials, each one committed: a scan of a growing table adds about 7 steps per trial already run."""
    trials, window = 60, 20
    run = ea.Run.create(tmp_path / "run", evaluator=Constant(), seeds=[ea.Candidate.from_source("N = 0\n")])
    steps = VmSteps()
    run.store._db.set_progress_handler(steps, 1)
    operator = ea.AgenticVariationOperator(instant_model(trials), critique=False, supervisor=False)
    per_trial, before = [], 0
    for trial in ea.iterate(run, operator, ea.Budget(trials=trials), knowledge=KnowledgeBase(builtin=False)):
        assert trial.committed, trial.reason
        per_trial.append(steps.count - before)
        before = steps.count
    run.close()
    # From trial 21 on the bounded parts (the lineage's newest 8 versions, the latest 10 trials) are full;
    # medians, because a memory compaction adds a few statements to the trial it falls in.
    early, late = statistics.median(per_trial[window:2 * window]), statistics.median(per_trial[2 * window:])
    assert late <= early * 1.01, f"SQLite steps per trial grew from {early:.0f} (trials 21-40) to {late:.0f} (41-60)"
