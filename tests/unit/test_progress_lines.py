"""The progress lines of the supervisor and of a model-API backoff name what their events carry."""

from __future__ import annotations

from evoagent.progress import ProgressState
from evoagent.records import Event
from evoagent.views import RunSummary


def _state() -> ProgressState:
    return ProgressState(RunSummary(
        run_dir="r", target="t", caption="score", trials=0, budget_trials=None, running=0, committed=0,
        labels={}, best_score=None, best_id=None, seed_score=None, tokens=0, cost_usd=0.0, elapsed_s=0.0, stopped=""))


def test_supervisor_advice_is_shown_with_its_reason_and_directions():
    line = _state().update(Event(kind="supervisor", payload={
        "trigger": "stall", "reason": "no version was committed in the last 8 trials",
        "directions": ["Vectorize the loads", "Split the K loop"], "sources": []}))
    assert line == ("supervisor: no version was committed in the last 8 trials: 1. Vectorize the loads; "
                    "2. Split the K loop")


def test_a_backoff_says_how_long_the_engine_waits():
    line = _state().update(Event(kind="backoff", payload={"trial_id": 4, "delay_s": 120.0, "failures": 2,
                                                           "reason": "x"}))
    assert line == "model API failing (2 trial(s) in a row): next trial in 120 s"


def test_a_long_supervisor_line_is_cut_at_a_word_and_points_to_show():
    words = [f"direction{i} " * 12 for i in range(3)]
    line = _state().update(Event(kind="supervisor", payload={
        "trigger": "stall", "reason": "stalled", "directions": words, "sources": [], "trial_id": 7}))
    head, _, tail = line.partition(" … ")
    assert len(head) <= 240 and head.split()[-1].rstrip(";.") in " ".join(words).split()
    assert tail == "(all of it: evoagent show RUN 7)"


def test_a_long_reason_is_cut_at_a_word_boundary():
    from evoagent.formatting import clip

    assert clip("alpha beta gamma", 12) == "alpha beta …"
    assert clip("short", 12) == "short"
    assert clip("first line\nsecond line", 40) == "first line …"


def test_an_evaluation_lost_with_its_machine_is_shown_and_counted_in_the_progress_line():
    state = _state()
    line = state.update(Event(kind="infrastructure", payload={
        "trial_id": 12, "what": "evaluation", "reason": "the Ray worker was lost during the call (NodeDiedError)"}))
    assert line == ("trial 12: evaluation lost with its machine, running it again | "
                    "the Ray worker was lost during the call (NodeDiedError)")
    assert state.line().endswith(", 1 retried after a lost machine")


def test_a_change_of_the_cluster_is_shown_with_its_new_size():
    line = _state().update(Event(kind="cluster", payload={"executor": "ray (auto, 3 nodes, 3 CPUs, 0 GPUs)"}))
    assert line == "executor ray (auto, 3 nodes, 3 CPUs, 0 GPUs)"


def test_a_cut_reason_says_where_the_rest_is():
    long = "stage 'benchmark' raised ValueError: " + "the value was far too large to be believed " * 5
    line = _state().update(Event(kind="seed", payload={"trial_id": 1, "status": "harness_error", "score": None,
                                                       "reason": long}))
    assert line.endswith(" … (all of it: evoagent show RUN 1))")
    assert " believe " not in line and "belie …" not in line  # cut between words
