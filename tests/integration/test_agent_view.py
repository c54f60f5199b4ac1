"""What the agent sees: the parent's stored picture at step start, the experiment tool, budgets and token accounting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from recording_services import RecordingServices

import evoagent as ea
from evoagent.llm.scripted import ScriptedLLM
from evoagent.operators.base import VariationContext
from evoagent.operators.tools import Toolbox, ToolLimits, Workspace
from evoagent.targets.attention import AttentionEvaluator, default_seed

DATA = Path(__file__).parent / "data"
SMOKE_CONFIGS = ("b1-h2-n64-d64-full-fp16", "b1-h2-n64-d64-causal-fp16", "b1-h4-kv2-n48-d64-causal-fp16")


class Lineage:
    def summary(self) -> str:
        return "Best committed version: seed."


def test_the_first_request_of_a_step_shows_the_parents_numbers_static_report_device_and_arch() -> None:
    evaluator = AttentionEvaluator("smoke", archs=("sm_90a",))
    stored = ea.EvalResult.from_dict(json.loads((DATA / "attention_smoke_result.json").read_text()))
    parent = ea.Candidate.from_path(default_seed(), entry="kernel.py")
    context = VariationContext(trial_id=3, parent=parent, parent_result=stored, best=(parent, stored),
                               evaluator=evaluator, lineage=Lineage(),  # type: ignore[arg-type]
                               commit_rule="a correct version is committed if its score >= best - 0.005 * |best|",
                               budget_left="17 trials after this one")
    llm = ScriptedLLM().enqueue_text("Let me think.").enqueue_text("Done.")
    ea.AgenticVariationOperator(llm, supervisor=False).vary(context)

    first = llm.requests[0]
    system, opening = first.system, first.messages[0]["content"][0]["text"]
    assert isinstance(system, str)
    assert "device: cpu-interpreter" in system and "sm_90a" in system
    assert all(name in system for name in SMOKE_CONFIGS)  # the suite's shapes and dtypes
    assert "fp16 atol 0.01, rtol 0.01, rel_l2 0.002" in system and "best - 0.005 * |best|" in system
    for row in stored.stage("benchmark").details["table"]:  # per-configuration numbers, by name
        tflops = f"{row['tflops']['candidate']:.4g}"
        assert any(line.startswith(row["config"]) and tflops in line for line in opening.splitlines())
    assert "== static report sm_90a ==\nregisters 115, spills 0 bytes (0 spill instructions), shared memory 65536" \
        in opening
    assert "HGMMAx16" in opening
    assert "Run budget left: 17 trials after this one." in opening


def test_the_first_request_states_the_suites_real_dtype_head_dim_weights_timing_and_rulings() -> None:
    evaluator = AttentionEvaluator("h100-mha", archs=("sm_90a",))
    parent = ea.Candidate.from_path(default_seed(), entry="kernel.py")
    context = VariationContext(trial_id=1, parent=parent, parent_result=None, best=None, evaluator=evaluator,
                               lineage=Lineage())  # type: ignore[arg-type]
    llm = ScriptedLLM().enqueue_text("Let me think.").enqueue_text("Done.")
    ea.AgenticVariationOperator(llm, supervisor=False).vary(context)
    system = llm.requests[0].system
    assert isinstance(system, str)
    assert "scope: this suite times bf16 only, head dim D = 128 only, multi-head only" in system
    assert "each weighing the same" in system and "score uses the fastest repetition" in system
    assert "device queries" in system and "autotune and per-shape dispatch" in system
    assert "data (inputs, outputs, partial results) never is" in system
    assert "triton " in system and "torch " in system and "ncu" in system  # the environment's versions
    assert "read_knowledge seed-<name>" in system and "hidden shapes" not in system
    assert "This conversation persists across variation steps" in system
    tools = {t["name"]: t["description"] for t in llm.requests[0].tools}
    assert "do not chain them" in tools["benchmark"] and "not scanned" in tools["experiment"]
    assert "Two phases" in tools["submit"] and "give_up" in tools and "checkout" in tools


def _box(tmp_path: Path, services: RecordingServices, parent: ea.Candidate, evaluator: ea.Evaluator,
         **limits: Any) -> Toolbox:
    context = VariationContext(trial_id=1, parent=parent, parent_result=None, best=None, evaluator=evaluator,
                               lineage=Lineage(), services=services)  # type: ignore[arg-type]
    return Toolbox(workspace=Workspace(tmp_path / "ws", parent), context=context, limits=ToolLimits(**limits))


def _score(module: Any) -> dict[str, float]:
    return {"f": float(module.SPEED)}


def test_experiment_runs_a_script_beside_the_workspace_in_the_sandbox(tmp_path: Path) -> None:
    evaluator = ea.FunctionEvaluator(_score)
    parent = ea.Candidate.from_source("SPEED = 3\n\ndef twice(x):\n    return 2 * x\n", entry="main.py")
    with ea.Sandbox(ea.SandboxConfig(workers=1)) as sandbox:
        box = _box(tmp_path, RecordingServices(evaluator=evaluator, sandbox=sandbox), parent, evaluator,
                   max_experiment_chars=300, max_exploratory_evals=3)
        ok = box.call("experiment", {"script": "import main\nprint('twice:', main.twice(main.SPEED))\n"})
        assert not ok.is_error and ok.text.startswith("status: ok")
        assert "[stdout]\ntwice: 6" in ok.text  # the script imported the workspace's module
        crash = box.call("experiment", {"script": "import main\nfor i in range(500):\n    print(i)\n"
                                                   "raise SystemError('probe failed at line 4')"})
        assert crash.text.startswith("status: crash") and "probe failed at line 4" in crash.text
        assert "lines (" in crash.text and "cut ...]" in crash.text  # output capped at line boundaries
        assert box.failures == 0  # experiments cost no repair budget, but count as evaluations
        box.call("experiment", {"script": "print(1)"})
        spent = box.call("experiment", {"script": "print(1)"})
        assert spent.is_error and "budget of this step is spent" in spent.text


class _Toy(ea.Evaluator):
    name = "toy"
    stages = ("score",)

    def score(self, candidate: ea.Candidate, sandbox: Any) -> ea.StageResult:
        return ea.StageResult(metrics={"n64": float(candidate.source.split("=")[1])})


def _step(llm: ScriptedLLM, n: int) -> None:
    usage = ea.Usage(input_tokens=100, output_tokens=10, cache_read_tokens=1000, cache_write_tokens=50,
                     cost_usd=0.01)
    llm.enqueue_tool_use("write_file", {"path": "main.py", "content": f"X = {n}\n"}, usage=usage)
    llm.enqueue_tool_use("submit", {"hypothesis": f"X = {n}"}, usage=usage)


def test_a_run_opens_steps_with_the_budget_left_and_status_reports_tokens_by_kind(tmp_path: Path) -> None:
    run = ea.Run.create(tmp_path / "run", evaluator=_Toy(), seeds=[ea.Candidate.from_source("X = 1\n")],
                        population=ea.Chain(tolerance=0.01))
    llm = ScriptedLLM()
    for n in (2, 3, 4):
        _step(llm, n)
    operator = ea.AgenticVariationOperator(llm, supervisor=False, critique=False)
    # 3 trials of 2 calls, each 160 new tokens and 1000 cache reads: the budget counts new tokens only.
    result = ea.evolve(run, operator, ea.Budget(trials=5, tokens=960))
    assert len(result.trials) == 3 and "token budget of 960 reached" in result.stopped_because
    openings = [r.messages[-1]["content"][-1]["text"] for r in llm.requests if r.messages[-1]["role"] == "user"
                and r.messages[-1]["content"][-1].get("text", "").startswith("## Variation step")]
    assert "Run budget left: 4 trials after this one, 960 new tokens." in openings[0]
    assert "Run budget left: 3 trials after this one, 640 new tokens." in openings[1]
    assert "best - 0.01 * |best|" in llm.requests[0].system
    run.close()

    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "status", str(tmp_path / "run"), "--json"],
                         capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    assert status["tokens_by_kind"] == {"input": 600, "output": 60, "cache_read": 6000, "cache_write": 300}
    assert status["tokens_per_trial"] == {"input": 200, "output": 20, "cache_read": 2000, "cache_write": 100}
    assert status["usd_per_trial"] == pytest.approx(0.02)
