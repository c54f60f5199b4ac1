"""HeuristicPolicy: given tool results it emits the right next tool call, reverts failures, is seeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from recording_services import RecordingServices

from evoagent.knowledge import KnowledgeBase
from evoagent.llm.base import LLM
from evoagent.llm.heuristic import HeuristicPolicy
from evoagent.operators.tools import tool_definitions
from evoagent.targets.attention import default_seed

TOOLS = tool_definitions()
SOURCE = "import math\n\nBLOCK = 64  # evo: choices 32 64 128\nWARPS = 4  # evo: choices 4 8\n\n\ndef f(x):\n    return math.exp(x)\n"
DOC = '''# Toy recipes

## Use exp2

```recipe
id = "exp2"
title = "exp via exp2"
kind = "edit"
requires = ["math.exp("]
[[edits]]
old = "    return math.exp(x)\\n"
new = "    return 2 ** (x * 1.4426950408889634)\\n"
```

## Cache the constant

```recipe
id = "const"
title = "name the constant"
kind = "edit"
forbids = ["LOG2E"]
[[edits]]
old = "import math\\n"
new = "import math\\n\\nLOG2E = 1.4426950408889634\\n"
```

## Big block

```recipe
id = "big"
title = "bigger blocks"
kind = "param"
[params]
BLOCK = 128
WARPS = 8
```
'''


def opening(trial: int, lineage: str = "No committed version yet.", entry: str = "kernel.py") -> str:
    return (f"## Variation step 1 (trial {trial})\n\nStarting version: abc (ok, score 1).\n\n"
            f"Your workspace holds a fresh copy of the starting version: files {entry}; entry {entry}.\n\n"
            f"Lineage (current):\n{lineage}")


class FakeTools:
    """The agent's tools over one in-memory file, with pluggable compile/test verdicts."""

    def __init__(self, source: str, *, entry: str = "kernel.py", lineage: str = "No committed version yet.",
                 compile_ok: Callable[[str], bool] = lambda s: True, test_ok: Callable[[str], bool] = lambda s: True,
                 compile_status: str = "compile_error") -> None:
        self.files = {entry: source}
        self.start = source
        self.lineage = lineage
        self.compile_ok, self.test_ok, self.compile_status = compile_ok, test_ok, compile_status
        self.critiqued = False
        self.submitted: str | None = None

    def run(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        if name == "lineage":
            return self.lineage, False
        if name == "read_file":
            if args["path"] not in self.files:
                return f"no file {args['path']!r} in the workspace", True
            return self.files[args["path"]], False
        if name == "edit_file":
            text = self.files[args["path"]]
            if text.count(args["old"]) != 1:
                return "`old` was not found", True
            self.files[args["path"]] = text.replace(args["old"], args["new"], 1)
            return "edited", False
        if name == "write_file":
            self.files[args["path"]] = args["content"]
            return "wrote", False
        source = next(iter(self.files.values()))
        if name == "compile":
            ok = self.compile_ok(source)
            return ("status: ok\nscore: -" if ok else f"status: {self.compile_status}\nscore: -\nreason: line 3"), False
        if name == "test":
            return ("status: ok\nscore: -" if self.test_ok(source) else "status: incorrect\nscore: -"), False
        if name == "submit":
            if source == self.start:
                return "the workspace is identical to the starting version", True
            if not self.critiqued:
                self.critiqued = True
                return "critique requested: before the authoritative evaluation, review this version.", False
            self.submitted = args["hypothesis"]
            return "submitted version 123", False
        raise AssertionError(f"unexpected tool {name}")


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def drive(policy: HeuristicPolicy, tools: FakeTools, messages: list[dict[str, Any]] | None = None, *,
          trial: int = 2, max_turns: int = 40) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Plays the operator: opening, then tool results until submit or a turn without a tool call."""
    messages = messages if messages is not None else []
    first = _text(opening(trial, tools.lineage, next(iter(tools.files))))
    if messages and messages[-1]["role"] == "user":
        messages[-1]["content"].append(first)
    else:
        messages.append({"role": "user", "content": [first]})
    calls: list[tuple[str, dict[str, Any]]] = []
    for _ in range(max_turns):
        response = policy.complete(system="system", messages=messages, tools=TOOLS)
        assert response.usage.tokens == 0 and response.usage.cost_usd == 0.0
        messages.append({"role": "assistant", "content": response.content})
        if not response.tool_uses:
            assert response.stop_reason in ("end_turn", "end_step", "exhausted")  # the last two: its own reason
            break
        assert response.stop_reason == "tool_use" and len(response.tool_uses) == 1
        results = []
        for use in response.tool_uses:
            calls.append((use["name"], use["input"]))
            text, error = tools.run(use["name"], use["input"])
            results.append({"type": "tool_result", "tool_use_id": use["id"], "content": text, **({"is_error": True} if error else {})})
        messages.append({"role": "user", "content": results})
        if tools.submitted is not None:
            break
    return calls, messages


@pytest.fixture
def toy_kb(tmp_path: Path) -> KnowledgeBase:
    (tmp_path / "toy.md").write_text(DOC)
    return KnowledgeBase(paths=[tmp_path], builtin=False)


def _names(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in calls]


def test_it_speaks_the_llm_protocol() -> None:
    assert isinstance(HeuristicPolicy(), LLM)
    assert HeuristicPolicy(seed=3).spec() == {"name": "heuristic", "seed": 3, "max_attempts": 4}


def test_a_step_reads_applies_compiles_tests_and_submits_a_recipe(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    first = policy.moves(SOURCE)[0]
    tools = FakeTools(SOURCE)
    calls, _ = drive(policy, tools)
    assert _names(calls) == ["lineage", "read_file"] + ["edit_file"] * len(first.changes(SOURCE)) + [
        "compile", "test", "submit", "submit"]
    assert calls[1][1] == {"path": "kernel.py"}
    assert tools.submitted == f"recipe {first.id}: {first.title}"
    assert tools.files["kernel.py"] == first.apply(SOURCE)


def test_a_compile_error_is_reverted_and_the_next_recipe_is_tried(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    first, second = policy.moves(SOURCE)[:2]
    broken = first.apply(SOURCE)
    tools = FakeTools(SOURCE, compile_ok=lambda s: s != broken)
    calls, _ = drive(policy, tools)
    restore = [args for name, args in calls if name == "write_file"]
    assert restore == [{"path": "kernel.py", "content": SOURCE}]
    after = _names(calls)[_names(calls).index("write_file") + 1:]
    assert after == ["edit_file"] * len(second.changes(SOURCE)) + ["compile", "test", "submit", "submit"]
    assert tools.submitted == second.hypothesis
    assert tools.files["kernel.py"] == second.apply(SOURCE)


def test_a_failed_test_is_reverted_too(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    first, second = policy.moves(SOURCE)[:2]
    tools = FakeTools(SOURCE, test_ok=lambda s: s != first.apply(SOURCE))
    calls, _ = drive(policy, tools)
    assert ("write_file", {"path": "kernel.py", "content": SOURCE}) in calls
    assert tools.submitted == second.hypothesis


def test_an_edit_that_does_not_apply_is_reverted_and_skipped(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    moves = policy.moves(SOURCE)
    tools = FakeTools(SOURCE)
    original_run = tools.run
    fail_once = {"left": 1}

    def flaky(name: str, args: dict[str, Any]) -> tuple[str, bool]:
        if name == "edit_file" and fail_once["left"]:
            fail_once["left"] -= 1
            return "`old` was not found in kernel.py", True
        return original_run(name, args)

    tools.run = flaky  # type: ignore[method-assign]
    calls, _ = drive(policy, tools)
    assert _names(calls)[2:4] == ["edit_file", "write_file"]
    assert tools.submitted == moves[1].hypothesis


def test_every_move_failing_ends_the_step_without_a_submission(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0, max_attempts=2)
    tools = FakeTools(SOURCE, compile_ok=lambda s: False)
    calls, messages = drive(policy, tools)
    assert _names(calls).count("compile") == 2 and "submit" not in _names(calls)
    assert tools.submitted is None
    assert messages[-1]["content"][0]["text"] == ("the offline policy ended this step without a submission: "
                                                  "2 moves failed their compile or test in this step")
    # the operator nags; the policy ends its turn again instead of restarting the step
    messages.append({"role": "user", "content": [_text("You called no tool. Work through the tools ...")]})
    again = policy.complete(system="s", messages=messages, tools=TOOLS)
    assert again.tool_uses == [] and again.stop_reason == "end_turn"


def test_a_spent_evaluation_budget_ends_the_step(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    tools = FakeTools(SOURCE, compile_ok=lambda s: False, compile_status="budget_overrun")
    calls, messages = drive(policy, tools)
    assert _names(calls).count("compile") == 1 and "write_file" not in _names(calls)
    assert "budget of this step is spent" in messages[-1]["content"][0]["text"]
    assert messages[-1]["content"][0]["text"].startswith("the offline policy ended this step")


def test_the_same_seed_gives_the_same_calls_and_seeds_change_the_order(toy_kb: KnowledgeBase) -> None:
    def run(seed: int) -> list[tuple[str, dict[str, Any]]]:
        return drive(HeuristicPolicy(knowledge=toy_kb, seed=seed), FakeTools(SOURCE))[0]

    assert run(7) == run(7)
    firsts = {HeuristicPolicy(knowledge=toy_kb, seed=s).moves(SOURCE)[0].id for s in range(12)}
    assert len(firsts) >= 2
    assert HeuristicPolicy(knowledge=toy_kb, seed=5).moves(SOURCE) == HeuristicPolicy(knowledge=toy_kb, seed=5).moves(SOURCE)


def test_recipes_named_in_the_lineage_are_not_tried_again(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    order = [m.id for m in policy.moves(SOURCE)]
    lineage = f"Latest 1 trials:\n  trial 2: incorrect  score -  recipe {order[0]}: whatever it was"
    tools = FakeTools(SOURCE, lineage=lineage)
    drive(policy, tools)
    assert tools.submitted is not None and tools.submitted.startswith(f"recipe {order[1]}:")


def test_the_next_step_picks_a_move_not_yet_submitted(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    submitted = []
    messages: list[dict[str, Any]] = []
    for trial in (2, 3, 4):
        tools = FakeTools(SOURCE)
        calls, messages = drive(policy, tools, messages, trial=trial)
        assert calls[0] == ("lineage", {})  # the submit result and the next opening share a message
        submitted.append(tools.submitted)
    assert len(set(submitted)) == 3


def test_parameter_moves_follow_the_recipes_then_pairs_of_them(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    moves = policy.moves(SOURCE)
    recipes = {"exp2", "const", "big"}
    assert {m.id for m in moves[:3]} == recipes
    singles = [m.id for m in moves[3:]]
    assert sorted(singles) == ["param-block-128", "param-block-32", "param-warps-8"]
    pairs = policy.moves(SOURCE, tried=recipes | set(singles))
    assert pairs and all(m.id.startswith("param-") and "--" in m.id and len(m.params) == 2 for m in pairs)
    assert policy.moves(SOURCE, tried=recipes | set(singles) | {m.id for m in pairs}) == []


def test_with_nothing_left_to_try_the_policy_says_the_run_is_over(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    tools = FakeTools("x = 1\n")  # no recipe applies, no marked parameter
    calls, messages = drive(policy, tools)
    assert _names(calls) == ["lineage", "read_file"]
    assert messages[-1]["content"][0]["text"].startswith(
        "the offline policy has nothing more to try for this target: 0 parameters, 0 recipes tried")


def test_a_parameter_value_already_tried_is_never_tried_again() -> None:
    policy = HeuristicPolicy(knowledge=KnowledgeBase(paths=[], builtin=False), seed=0)
    source = "BLOCK = 4  # evo: choices 2 4 8\n"
    submitted = []
    for trial in range(2, 6):  # each step starts again from the seed, as a chain that never commits does
        tools = FakeTools(source)
        _, messages = drive(policy, tools, trial=trial)
        if tools.submitted is None:
            break
        submitted.append(tools.submitted)
    assert sorted(submitted) == ["recipe param-block-2: set BLOCK = 2", "recipe param-block-8: set BLOCK = 8"]
    assert messages[-1]["content"][0]["text"].startswith(
        "the offline policy has nothing more to try for this target: 1 parameter, 0 recipes tried (2 parameter values")


def test_requests_without_tools_get_an_empty_answer_so_callers_fall_back() -> None:
    response = HeuristicPolicy().complete(system="summarize", messages=[{"role": "user", "content": "hi"}])
    assert response.text == "" and response.stop_reason == "end_turn" and response.usage.tokens == 0


def test_the_entry_file_named_by_the_opening_is_the_one_edited(toy_kb: KnowledgeBase) -> None:
    tools = FakeTools(SOURCE, entry="solver.py")
    calls, _ = drive(HeuristicPolicy(knowledge=toy_kb), tools)
    assert calls[1] == ("read_file", {"path": "solver.py"})
    assert {args["path"] for name, args in calls if name == "edit_file"} == {"solver.py"}


def test_on_the_seed_kernel_the_first_moves_are_builtin_recipes() -> None:
    seed = default_seed().read_text()
    policy = HeuristicPolicy(seed=0)
    moves = policy.moves(seed)
    builtin = {r.id for r in policy.knowledge.recipes() if r.applies(seed)}  # not the CUDA-only ones
    assert {m.id for m in moves[:len(builtin)]} == builtin and len(builtin) >= 5
    assert all(m.id.startswith("param-") for m in moves[len(builtin):])
    tools = FakeTools(seed)
    drive(policy, tools)
    assert tools.submitted == moves[0].hypothesis and tools.files["kernel.py"] == moves[0].apply(seed)


# -- through the real AgenticVariationOperator, with an in-process evaluator -------------------------

TOY = "SPEED = 1  # evo: choices 1 2 3 5\n\n\ndef solve(xs):\n    return sorted(xs)\n"
TOY_DOC = '''# Toy

## Reverse twice

```recipe
id = "reverse-twice"
title = "sort, then reverse twice (breaks the syntax)"
kind = "edit"
[[edits]]
old = "    return sorted(xs)\\n"
new = "    return list(reversed(list(reversed(sorted(xs))))\\n"
```

## Faster

```recipe
id = "faster"
title = "SPEED 5"
kind = "param"
[params]
SPEED = 5
```
'''


class ToyEvaluator:
    """check compiles main.py, test runs solve, benchmark scores SPEED (no sandbox needed)."""

    name = "toy"
    description = "solve(xs) sorts; SPEED is the score."
    entry = "main.py"
    stages = ("check", "test", "benchmark", "profile")

    def agent_brief(self) -> str:
        return "device: cpu"

    def result_sections(self, result: Any) -> list[tuple[str, str]]:
        from evoagent.evaluator import default_sections

        return default_sections(result)

    def evaluate(self, candidate: Any, sandbox: Any = None, *, stages: Any = None) -> Any:
        from evoagent.result import EvalResult, StageResult, Status

        done = []
        for stage in stages or self.stages:
            try:
                namespace: dict[str, Any] = {}
                exec(compile(candidate.source, "main.py", "exec"), namespace)  # noqa: S102 (trusted test code)
            except SyntaxError as err:
                done.append(StageResult.fail(Status.COMPILE_ERROR, f"line {err.lineno}: {err.msg}", name=stage))
                return EvalResult(status=Status.COMPILE_ERROR, reason=err.msg, stages=tuple(done))
            metrics = {"speed": float(namespace["SPEED"])} if stage == "benchmark" else {}
            done.append(StageResult(name=stage, metrics=metrics))
        score = float(namespace["SPEED"]) if "benchmark" in (stages or self.stages) else None
        return EvalResult(status=Status.OK, stages=tuple(done), score=score,
                          metrics={"speed": score} if score is not None else {})


class Lineage:
    def summary(self) -> str:
        return "Best committed version: seed (score 1)."


def _context(trial_id: int, recent: tuple[Any, ...] = (), knowledge: Any = None) -> Any:
    from evoagent.candidate import Candidate
    from evoagent.operators.base import VariationContext

    evaluator = ToyEvaluator()
    parent = Candidate.from_source(TOY, entry="main.py")
    result = evaluator.evaluate(parent)
    return VariationContext(trial_id=trial_id, parent=parent, parent_result=result, best=(parent, result),
                            evaluator=evaluator, lineage=Lineage(), recent=recent, knowledge=knowledge,  # type: ignore[arg-type]
                            services=RecordingServices(run=lambda c, stages: evaluator.evaluate(c, stages=stages)))


def _run_steps(kb: KnowledgeBase, seed: int, steps: int = 3) -> tuple[list[Any], Any]:
    from evoagent.operators.agentic import AgenticVariationOperator

    op = AgenticVariationOperator(HeuristicPolicy(knowledge=kb, seed=seed), knowledge=kb)
    return [op.vary(_context(trial)) for trial in range(1, steps + 1)], op


@pytest.fixture
def toy_doc_kb(tmp_path: Path) -> KnowledgeBase:
    (tmp_path / "toy.md").write_text(TOY_DOC)
    return KnowledgeBase(paths=[tmp_path], builtin=False)


def test_the_operator_gets_tested_recipe_submissions_and_reverted_failures(toy_doc_kb: KnowledgeBase) -> None:
    proposals, op = _run_steps(toy_doc_kb, seed=0)
    hypotheses = [p.hypothesis for p in proposals]
    assert all(p.candidate is not None for p in proposals), [p.reason for p in proposals]
    assert all(h.startswith("recipe ") for h in hypotheses) and len(set(hypotheses)) == 3
    assert "recipe reverse-twice" not in " ".join(hypotheses)  # it never compiled, so it was reverted
    assert any("SPEED = 5" in p.candidate.source for p in proposals)
    for p in proposals:
        assert ToyEvaluator().evaluate(p.candidate).status.value == "ok"
    transcript = str(op.messages)
    assert "restoring main.py" in transcript and "status: compile_error" in transcript


def test_the_operator_run_is_deterministic_for_a_seed(toy_doc_kb: KnowledgeBase) -> None:
    first, op_a = _run_steps(toy_doc_kb, seed=4)
    second, op_b = _run_steps(toy_doc_kb, seed=4)
    assert [p.hypothesis for p in first] == [p.hypothesis for p in second]
    assert [p.candidate.id for p in first] == [p.candidate.id for p in second]
    assert op_a.messages == op_b.messages


def test_a_supervisor_sharing_the_policy_falls_back_to_knowledge_directions(toy_doc_kb: KnowledgeBase) -> None:
    from evoagent.operators.agentic import AgenticVariationOperator
    from evoagent.operators.base import TrialOutcome
    from evoagent.operators.supervisor import Supervisor
    from evoagent.result import Status

    policy = HeuristicPolicy(knowledge=toy_doc_kb)
    op = AgenticVariationOperator(policy, knowledge=toy_doc_kb, supervisor=Supervisor(policy, stall_steps=2))
    stalled = tuple(TrialOutcome(trial_id=i, candidate_id=None, parent_id=None, hypothesis="x", status=Status.OK,
                                 reason="", score=1.0, committed=False) for i in (1, 2))
    context = _context(3, recent=stalled, knowledge=toy_doc_kb)
    proposal = op.vary(context)
    assert proposal.candidate is not None
    opening = op.messages[0]["content"][0]["text"]
    assert "Supervisor: no trial improved the score in the last 2 trials" in opening
    assert "[knowledge: recipe faster]" in opening


def test_once_everything_was_tried_moves_are_retried_on_a_new_version(toy_kb: KnowledgeBase) -> None:
    policy = HeuristicPolicy(knowledge=toy_kb, seed=0)
    singles = {m.id for m in policy.moves(SOURCE)}
    every = singles | {m.id for m in policy.moves(SOURCE, singles)}  # and the pairs
    lineage = "Latest trials:\n" + "\n".join(f"  trial {i}: ok  recipe {rid}: x" for i, rid in enumerate(sorted(every)))
    tools = FakeTools(SOURCE, lineage=lineage)
    drive(policy, tools)
    assert tools.submitted == policy.moves(SOURCE)[0].hypothesis  # tried elsewhere, never on this version
    again = FakeTools(SOURCE, lineage=lineage)
    drive(policy, again, trial=3)
    assert again.submitted == policy.moves(SOURCE)[1].hypothesis
