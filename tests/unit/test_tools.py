"""The agent's tools over a private workspace: paths, edits, evaluation text, budgets, submit and critique."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from recording_services import RecordingServices
from toy_target import SEED, FakeLineage, ToyEvaluator

from evoagent.candidate import Candidate
from evoagent.errors import BudgetExhausted
from evoagent.knowledge.base import Hit
from evoagent.operators.base import VariationContext
from evoagent.operators.tools import (
    TOOLS,
    Toolbox,
    ToolLimits,
    Workspace,
    default_tool_stages,
    format_result,
    tool_definitions,
)
from evoagent.result import EvalResult, StageResult, Status
from evoagent.tables import cut_lines


class FakeKnowledge:
    def search(self, query: str, k: int = 5) -> list[Hit]:
        hit = Hit(doc="triton", section="blocks", title="Block sizes", score=3.5,
                  snippet="BLOCK_M trades registers for reuse")
        return [hit] if "block" in query else []

    def read(self, doc: str, section: str | None = None) -> str:
        if doc != "triton":
            raise LookupError(f"unknown knowledge document {doc!r}; known documents: triton")
        return "# Triton\nBlock sizes matter."


def make_box(tmp_path: Path, *, limits: ToolLimits | None = None, knowledge: Any = None,
             evaluate: Any = None) -> tuple[Toolbox, list[tuple[str, tuple[str, ...]]]]:
    evaluator = ToyEvaluator()
    parent = Candidate.from_source(SEED, entry="main.py")
    calls: list[tuple[str, tuple[str, ...]]] = []

    def run(candidate: Candidate, stages: Any) -> EvalResult:
        calls.append((candidate.id, tuple(stages)))
        return evaluator.evaluate(candidate, None, stages=stages)  # type: ignore[arg-type]

    other = Candidate.from_source(SEED.replace("SPEED = 1", "SPEED = 3"), entry="main.py", hypothesis="faster")
    versions = {parent.id: (parent, None), other.id: (other, None)}
    context = VariationContext(
        trial_id=7, parent=parent, parent_result=None, best=(other, EvalResult(status=Status.OK, score=3.0)),
        evaluator=evaluator, lineage=FakeLineage(),
        services=RecordingServices(run=evaluate or run, versions=versions),
    )
    box = Toolbox(workspace=Workspace(tmp_path / "ws", parent), context=context, knowledge=knowledge,
                  limits=limits or ToolLimits())
    return box, calls


def test_tool_names_match_the_contract() -> None:
    names = [t["name"] for t in TOOLS]
    assert names == ["lineage", "show_version", "diff_versions", "search_knowledge", "read_knowledge", "read_file",
                     "edit_file", "write_file", "checkout", "notes", "inspect", "compile", "test", "benchmark", "profile",
                     "experiment", "submit", "give_up"]
    for tool in TOOLS:
        schema = tool["input_schema"]
        assert schema["type"] == "object" and set(schema["required"]) <= set(schema["properties"])
        assert tool["description"]


def test_knowledge_tools_are_offered_only_with_a_knowledge_base(tmp_path: Path) -> None:
    assert "search_knowledge" not in [t["name"] for t in tool_definitions(knowledge=False)]
    box, _ = make_box(tmp_path)
    result = box.call("search_knowledge", {"query": "blocks"})
    assert result.is_error and "unknown tool 'search_knowledge'" in result.text


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "sub/../../x.py", "..\\x.py", ""])
def test_paths_cannot_leave_the_workspace(tmp_path: Path, path: str) -> None:
    box, _ = make_box(tmp_path)
    result = box.call("write_file", {"path": path, "content": "x = 1\n"})
    assert result.is_error
    assert "main.py" in result.text  # says what a good path looks like
    assert not (tmp_path / "outside.py").exists() and not (tmp_path / "x.py").exists()


def test_a_symlink_out_of_the_workspace_is_refused(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    (tmp_path / "secret.txt").write_text("key")
    os.symlink(tmp_path / "secret.txt", box.workspace.root / "link.txt")
    result = box.call("read_file", {"path": "link.txt"})
    assert result.is_error and "outside the workspace" in result.text


def test_read_file_answers_with_numbered_lines_and_lists_files(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    text = box.call("read_file", {"path": "main.py"}).text
    assert text.splitlines() == ["main.py (5 lines)", "1\tSPEED = 1", "2\t", "3\t", "4\tdef solve(xs):",
                                 "5\t    return sorted(xs)"]
    assert box.call("read_file", {"path": "."}).text == "files: main.py"
    missing = box.call("read_file", {"path": "kernel.py"})
    assert missing.is_error and "files: main.py" in missing.text


def test_read_file_reads_a_line_range(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    text = box.call("read_file", {"path": "main.py", "start_line": 4, "end_line": 9}).text
    assert text.splitlines() == ["main.py lines 4-5 of 5", "4\tdef solve(xs):", "5\t    return sorted(xs)"]
    bad = box.call("read_file", {"path": "main.py", "start_line": 7})
    assert bad.is_error and "main.py has 5 lines" in bad.text
    wrong = box.call("read_file", {"path": "main.py", "start_line": "4"})
    assert wrong.is_error and "'start_line' must be an integer >= 1" in wrong.text


def test_edit_file_replaces_one_exact_match(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    result = box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    assert not result.is_error and "line 1" in result.text
    assert box.workspace.candidate().source == SEED.replace("SPEED = 1", "SPEED = 2")


def test_edit_file_says_how_many_matches_it_found(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    none = box.call("edit_file", {"path": "main.py", "old": "SPEED = 9", "new": "SPEED = 2"})
    assert none.is_error and "not found" in none.text and "'SPEED = 1'" in none.text  # closest line
    box.call("write_file", {"path": "main.py", "content": "a = 1\na = 1\n"})
    many = box.call("edit_file", {"path": "main.py", "old": "a = 1", "new": "a = 2"})
    assert many.is_error and "occurs 2 times" in many.text
    assert box.workspace.read("main.py") == "a = 1\na = 1\n"


def test_edit_file_points_out_whitespace_differences(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    result = box.call("edit_file", {"path": "main.py", "old": "def solve(xs):\n  return sorted(xs)", "new": "x"})
    assert result.is_error and "whitespace" in result.text


def test_write_file_refuses_a_new_file_unless_the_workspace_allows_new_files(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    box.workspace.new_files = False
    refused = box.call("write_file", {"path": "notes.md", "content": "my notes\n"})
    assert refused.is_error and "not a file of this version" in refused.text and "`notes` tool" in refused.text
    assert not box.call("write_file", {"path": "main.py", "content": "SPEED = 2\n"}).is_error
    assert set(box.workspace.candidate().files) == {"main.py"}


def test_checkout_replaces_the_workspace_and_the_submission_descends_from_it(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    best = box.context.best[0]
    assert "now holds version " + best.id in box.call("checkout", {"version": "best"}).text
    assert box.workspace.read("main.py") == best.source
    assert box.call("submit", {"hypothesis": "h"}).is_error  # identical to the checked-out version
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 3", "new": "SPEED = 4"})
    box.limits = ToolLimits(critique=False)
    box.call("submit", {"hypothesis": "SPEED 4 from the best"})
    assert box.submission is not None and box.submission.parents == (best.id,)


def test_notes_are_kept_up_to_their_limit(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path, limits=ToolLimits(max_notes_chars=20))
    assert not box.call("notes", {"text": "BLOCK_N 64 best"}).is_error and box.notes == "BLOCK_N 64 best"
    too_long = box.call("notes", {"text": "x" * 21})
    assert too_long.is_error and "limit is 20" in too_long.text and box.notes == "BLOCK_N 64 best"


def test_give_up_ends_the_step_with_its_lesson(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    assert box.call("give_up", {"lesson": " "}).is_error and not box.stop_reason
    box.call("give_up", {"lesson": "num_stages 4 spills at BLOCK_M 128\nmeasured twice"})
    assert box.stop_reason == "gave up: num_stages 4 spills at BLOCK_M 128"
    assert box.lesson.startswith("num_stages 4 spills")


def test_write_file_adds_a_file_to_the_candidate(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    assert not box.call("write_file", {"path": "helpers/util.py", "content": "X = 1\n"}).is_error
    candidate = box.workspace.candidate()
    assert set(candidate.files) == {"main.py", "helpers/util.py"} and candidate.entry == "main.py"
    assert candidate.parents == (box.context.parent.id,)


@pytest.mark.parametrize(("tool_input", "expected"), [
    ({"path": "main.py", "old": "SPEED"}, "missing 'new'"),
    ({"path": "main.py", "old": "SPEED", "new": 2}, "'new' must be a string"),
    ({"path": "main.py", "old": "SPEED", "new": "x", "count": 1}, "unknown 'count'"),
    ("main.py", "must be a JSON object"),
])
def test_malformed_input_names_the_problem_and_the_right_call(tmp_path: Path, tool_input: Any, expected: str) -> None:
    box, _ = make_box(tmp_path)
    result = box.call("edit_file", tool_input)
    assert result.is_error and expected in result.text
    assert 'edit_file {"path": "...", "old": "...", "new": "..."}' in result.text


def test_unknown_tool_lists_the_tools(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    result = box.call("bash", {"cmd": "ls"})
    assert result.is_error and "read_file" in result.text and "submit" in result.text


def test_compile_error_result_starts_with_status_and_names_the_line(tmp_path: Path) -> None:
    box, calls = make_box(tmp_path)
    box.call("edit_file", {"path": "main.py", "old": "return sorted(xs)", "new": "return sorted(xs"})
    text = box.call("compile", {}).text
    lines = text.splitlines()
    assert lines[0] == "status: compile_error" and lines[1] == "score: -"
    assert "line 5" in text
    assert calls[-1][1] == ("check",)


def test_benchmark_reports_the_score_and_each_configuration(tmp_path: Path) -> None:
    box, calls = make_box(tmp_path)
    text = box.call("benchmark", {}).text
    assert text.splitlines()[:2] == ["status: ok", "score: 1.41421"]  # geometric mean of 1 and 2
    assert "configuration  value\nn64            1\nn128           2" in text  # a table, one row per line
    assert calls[-1][1] == ("check", "test", "benchmark")


def test_a_section_is_shown_again_only_when_it_changed(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    first = box.call("benchmark", {}).text
    assert "== check details ==\nlines: 5" in first
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    second = box.call("benchmark", {}).text
    assert "== check details: unchanged since it was last shown ==" in second and "lines: 5" not in second
    assert "n64            2" in second  # the scores changed, so they are shown
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 2", "new": "SPEED = 3\n"})
    assert "== check details ==\nlines: 6" in box.call("benchmark", {}).text


def test_evaluation_tools_take_a_subset_of_the_configurations(tmp_path: Path) -> None:
    box, calls = make_box(tmp_path)
    ran: list[Any] = []

    def run(candidate: Candidate, stages: Any, configs: Any = None) -> EvalResult:
        ran.append(configs)
        evaluator = box.context.evaluator if configs is None else box.context.evaluator.restricted(configs)
        return evaluator.evaluate(candidate, None, stages=stages)  # type: ignore[arg-type]

    box.context.services = RecordingServices(run=run)
    text = box.call("benchmark", {"configs": ["n128"]}).text
    assert ran == [("n128",)] and "configurations: n128 (a subset of the suite)" in text
    assert "n128           2" in text and "n64 " not in text
    unknown = box.call("test", {"configs": ["n4096"]})
    assert unknown.is_error and "unknown configuration(s) 'n4096'" in unknown.text and "n64, n128" in unknown.text


def test_tools_map_to_stage_prefixes_unless_the_evaluator_says_otherwise(tmp_path: Path) -> None:
    assert default_tool_stages(("a", "b", "c", "d", "e"))["profile"] == ("a", "b", "c", "d", "e")
    box, calls = make_box(tmp_path)
    box.context.evaluator.tool_stages = {"compile": ("check",), "test": ("check", "test"),  # type: ignore[attr-defined]
                                         "benchmark": ("check", "benchmark"), "profile": ("profile",)}
    box.call("benchmark", {})
    assert calls[-1][1] == ("check", "benchmark")


def test_repeating_an_evaluation_of_the_same_version_costs_nothing(tmp_path: Path) -> None:
    box, calls = make_box(tmp_path, limits=ToolLimits(max_exploratory_evals=1))
    first = box.call("test", {})
    again = box.call("test", {})
    assert len(calls) == 1 and box.evaluations == 1
    assert again.text.startswith(first.text.splitlines()[0]) and "already evaluated" in again.text


def test_spent_evaluation_budget_is_reported_with_a_status_line(tmp_path: Path) -> None:
    box, calls = make_box(tmp_path, limits=ToolLimits(max_exploratory_evals=1))
    box.call("test", {})
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    result = box.call("test", {})
    assert result.is_error and result.text.startswith("status: budget_overrun\nscore: -")
    assert len(calls) == 1


def test_failures_beyond_the_repair_budget_end_the_step(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path, limits=ToolLimits(repair_budget=1))
    box.call("edit_file", {"path": "main.py", "old": "sorted(xs)", "new": "list(xs)"})
    first = box.call("test", {}).text
    assert first.startswith("status: incorrect") and "1 more failed evaluation" not in first
    assert "0 more failed" in first and not box.stop_reason
    box.call("edit_file", {"path": "main.py", "old": "list(xs)", "new": "reversed(xs)"})
    box.call("test", {})
    assert box.stop_reason.startswith("repair budget spent: 2 failed")


def test_a_failing_harness_reads_as_harness_error(tmp_path: Path) -> None:
    def broken(candidate: Candidate, stages: Any) -> EvalResult:
        raise RuntimeError("executor went away")

    box, _ = make_box(tmp_path, evaluate=broken)
    result = box.call("compile", {})
    assert result.text.startswith("status: harness_error") and "executor went away" in result.text
    assert box.failures == 0


def test_budget_exhaustion_during_evaluation_propagates(tmp_path: Path) -> None:
    def out_of_time(candidate: Candidate, stages: Any) -> EvalResult:
        raise BudgetExhausted("time budget of 1 h reached")

    box, _ = make_box(tmp_path, evaluate=out_of_time)
    with pytest.raises(BudgetExhausted):
        box.call("test", {})


def test_versions_are_shown_and_diffed_by_id_prefix_and_alias(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    best_id = box.context.best[0].id  # type: ignore[index]
    shown = box.call("show_version", {"version": best_id[:6]}).text
    assert f"version {best_id}" in shown and "hypothesis: faster" in shown and "SPEED = 3" in shown
    diff = box.call("diff_versions", {"a": "parent", "b": "best"}).text
    assert "-SPEED = 1" in diff and "+SPEED = 3" in diff
    assert box.call("diff_versions", {"a": "parent", "b": "workspace"}).text == "parent and workspace are identical"
    missing = box.call("show_version", {"version": "zzz"})
    assert missing.is_error and "'parent'" in missing.text


def test_knowledge_tools_search_and_read(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path, knowledge=FakeKnowledge())
    hits = box.call("search_knowledge", {"query": "block sizes"}).text
    assert hits.startswith("triton / blocks — Block sizes") and "BLOCK_M" in hits
    assert "no section matches" in box.call("search_knowledge", {"query": "fp8"}).text
    assert box.call("read_knowledge", {"doc": "triton"}).text.startswith("# Triton")
    unknown = box.call("read_knowledge", {"doc": "cuda"})
    assert unknown.is_error and "known documents: triton" in unknown.text


def test_lineage_tool_returns_the_fresh_summary(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    box.context.lineage.text = "Best committed version: abc (score 9)."  # type: ignore[attr-defined]
    assert box.call("lineage", {}).text == "Best committed version: abc (score 9)."


def test_submit_is_refused_for_an_unchanged_workspace_or_empty_hypothesis(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    assert "identical to the version it started from" in box.call("submit", {"hypothesis": "x"}).text
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    assert box.call("submit", {"hypothesis": "  "}).is_error
    assert box.submission is None


def test_first_submit_asks_for_a_critique_then_the_next_is_accepted(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    box.call("profile", {})
    critique = box.call("submit", {"hypothesis": "raise SPEED"})
    assert not critique.is_error and critique.text.startswith("critique requested")
    assert "+SPEED = 2" in critique.text and "registers" in critique.text and "status" not in critique.text[:20]
    assert "ok score=2.82843" in critique.text  # the verification of this exact version
    assert box.submission is None
    accepted = box.call("submit", {"hypothesis": "raise SPEED to 2"})
    assert accepted.text.startswith("submitted version")
    assert box.submission is not None and box.submission.hypothesis == "raise SPEED to 2"
    assert box.submission.source == SEED.replace("SPEED = 1", "SPEED = 2")


def test_critique_notices_an_untested_version(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    assert "has not been evaluated" in box.call("submit", {"hypothesis": "h"}).text


def test_without_critique_the_first_submit_is_accepted(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path, limits=ToolLimits(critique=False))
    box.call("edit_file", {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 2"})
    assert box.call("submit", {"hypothesis": "h"}).text.startswith("submitted version")
    assert box.submission is not None


def test_long_results_are_cut_with_a_note(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path, limits=ToolLimits(max_result_chars=300, max_file_chars=500))
    box.call("write_file", {"path": "main.py", "content": "x = 1\n" * 1000})
    text = box.call("read_file", {"path": "main.py"}).text
    assert 400 <= len(text) <= 500 and "lines (" in text and "characters) cut" in text
    assert all(line.startswith("[...") or line == "main.py (1000 lines)" or line.endswith("\tx = 1")
               for line in text.splitlines())  # cut between lines, never inside one
    diff = box.call("diff_versions", {"a": "parent", "b": "workspace"}).text
    assert 200 <= len(diff) <= 300 and "characters) cut" in diff
    assert cut_lines("short", 10) == "short"


def test_format_result_lists_stage_reasons_and_logs() -> None:
    result = EvalResult(status=Status.CRASH, reason="test: segfault", stages=(
        StageResult(name="check", details={"spills": 0}),
        StageResult(name="test", status=Status.CRASH, reason="segfault", logs="boom at line 3"),
    ))
    lines = format_result(result).splitlines()
    assert lines[:3] == ["status: crash", "score: -", "reason: test: segfault"]
    assert "[test] crash (0.00 s): segfault" in lines and "spills: 0" in lines
    assert any("boom at line 3" in line for line in lines)


def test_an_evaluation_lost_with_its_worker_costs_no_repair_budget(tmp_path: Path) -> None:
    def lost(candidate: Candidate, stages: Any) -> EvalResult:
        return EvalResult(status=Status.INFRASTRUCTURE, reason="measure: the Ray worker was lost during the call")

    box, _ = make_box(tmp_path, limits=ToolLimits(repair_budget=0), evaluate=lost)
    result = box.call("test", {})
    assert result.text.startswith("status: infrastructure") and "costs no repair budget" in result.text
    assert box.failures == 0 and not box.stop_reason


def test_inspect_on_a_target_without_compiled_code_says_so(tmp_path: Path) -> None:
    box, _ = make_box(tmp_path)
    box.context.services.evaluator = box.context.evaluator
    box.context.services.sandbox = object()
    result = box.call("inspect", {"what": "sass", "grep": "HGMMA"})
    assert result.is_error and "has no compiled code to inspect" in result.text
