"""Progress displays fed by engine events: what a person reads while a run goes."""

from __future__ import annotations

import io

from evoagent import Event, Usage
from evoagent.progress import PlainProgress, ProgressState
from evoagent.records import Trial
from evoagent.views import RunSummary


def _state() -> ProgressState:
    return ProgressState(RunSummary(
        run_dir="r", target="circles", caption="sum of radii", trials=0, budget_trials=None, running=0, committed=0,
        labels={}, best_score=None, best_id=None, seed_score=None, tokens=0, cost_usd=0.0, elapsed_s=0.0, stopped=""))


def _trial_event(trial_id: int, status: str, score: float | None, committed: bool, tokens: int) -> Event:
    trial = Trial(id=trial_id, state="done", operator="op", parent_id="p", candidate_id="c",
                  usage=Usage(input_tokens=tokens, cost_usd=tokens / 1e4))
    return Event(kind="commit" if committed else "trial", trial=trial, payload={
        "trial_id": trial_id, "status": status, "score": score, "committed": committed, "hypothesis": "grow radii",
        "reason": "" if status == "ok" else "two circles overlap"})


def test_progress_line_counts_trials_of_budget_best_against_seed_labels_and_cost():
    state = _state()
    state.update(Event(kind="start", payload={"budget": {"trials": 4}}))
    assert state.update(Event(kind="seed", payload={"status": "ok", "score": 2.0})) == \
        "seed ok: score 2 sum of radii"
    state.update(_trial_event(2, "ok", 2.5, True, 1500))
    state.update(_trial_event(3, "incorrect", None, False, 500))
    line = state.line()
    assert line.startswith("trials 2/4 | best 2.5 sum of radii (1.250x seed) | commits 1 |")
    assert "labels: incorrect 1, ok 1" in line and "2.0k tokens $0.20" in line and "left" in line


def test_trial_lines_name_the_unit_the_change_and_why_a_trial_failed():
    state = _state()
    state.update(Event(kind="seed", payload={"status": "ok", "score": 2.0}))
    assert state.update(_trial_event(2, "ok", 1.5, False, 0)).startswith(
        "trial 2 ok: score 1.5 sum of radii (0.750x the best, measured once) | grow radii")
    assert state.update(_trial_event(3, "incorrect", None, False, 0)).endswith("\n    two circles overlap")


def test_plain_progress_prints_each_trial_and_the_progress_line():
    out = io.StringIO()
    display = PlainProgress(_state(), out)
    display(Event(kind="start", payload={"budget": {"trials": 2}}))
    display(_trial_event(1, "ok", 3.0, True, 0))
    display(Event(kind="stop", payload={"reason": "trial budget of 2 reached"}))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  trial 1 (1 of 2) committed: score 3 sum of radii")  # the id, then the bar's count
    assert lines[1].startswith("  [trials 1/2 | best 3 sum of radii | commits 1")
    assert display.state.summary.stopped == "trial budget of 2 reached"


def test_a_commit_in_a_new_cell_below_the_best_names_its_cell_and_keeps_the_best():
    state = _state()
    state.update(_trial_event(2, "ok", 2.5, True, 0))
    event = _trial_event(3, "ok", 1.5, True, 0)
    event.payload["niche"] = "cell smallest_radius=<0.02"
    assert "[cell smallest_radius=<0.02] | grow radii" in state.update(event)
    assert "| best 2.5 sum of radii" in state.line()
