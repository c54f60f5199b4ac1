"""The shared views of a store: trials table, score series, lineage tree, summary."""

from __future__ import annotations

import pytest

from evoagent import Candidate, EvalResult, Status, Usage, views
from evoagent.store import RunStore


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "run.db", create=True)
    yield s
    s.close()


def _trial(store, parent, source, *, status=Status.OK, score=None, committed=False, tokens=0, hypothesis="h"):
    trial_id = store.begin_trial(operator="seed" if parent is None else "op", parent_id=parent.id if parent else None)
    if tokens:
        store.add_usage(trial_id, Usage(input_tokens=tokens, cost_usd=tokens / 1000))
    candidate = Candidate.from_source(source, parents=(parent.id,) if parent else ())
    result = EvalResult(status=status, score=score, metrics={"a": score} if score is not None else {},
                        reason="" if status is Status.OK else "bad")
    store.finish_trial(trial_id, candidate=candidate, result=result, hypothesis=hypothesis, diff="",
                       committed=committed, eval_s=0.0, lesson="")
    return candidate


def _lineage(store):
    seed = _trial(store, None, "s = 0", score=2.0, committed=True, hypothesis="seed")
    better = _trial(store, seed, "s = 1", score=3.0, committed=True, tokens=100)
    _trial(store, seed, "s = 2", status=Status.INCORRECT, tokens=50)
    _trial(store, better, "s = 3", score=2.4, tokens=20)
    return seed, better


def test_rows_give_the_ratio_to_the_parent_and_the_label(store):
    _lineage(store)
    rows = views.trial_rows(store)
    assert [r.status for r in rows] == ["ok", "ok", "incorrect", "ok"]
    assert rows[1].ratio_to_parent == pytest.approx(1.5) and rows[3].ratio_to_parent == pytest.approx(0.8)
    assert rows[2].ratio_to_parent is None and rows[0].is_seed and not rows[1].is_seed


def test_score_series_steps_with_commits_and_keeps_failures_unscored(store):
    _lineage(store)
    series = views.score_series(views.trial_rows(store))
    assert series.scores == (2.0, 3.0, None, 2.4)
    assert series.best_so_far == (2.0, 3.0, 3.0, 3.0)
    assert series.labels == ("committed", "committed", "incorrect", "ok") and series.seed_score == 2.0


def test_lineage_tree_places_children_one_generation_below_their_committed_parent(store):
    _lineage(store)
    nodes = {n.trial_id: n for n in views.lineage_tree(views.trial_rows(store))}
    assert [nodes[i].depth for i in (1, 2, 3, 4)] == [0, 1, 1, 2]
    assert nodes[3].parent_trial_id == 1 and nodes[4].parent_trial_id == 2 and nodes[3].status == "incorrect"


def test_lineage_tree_leaves_out_children_of_versions_outside_the_lineage(store):
    seed, _ = _lineage(store)
    loser = Candidate.from_source("s = 3", parents=(seed.id,))
    _trial(store, loser, "s = 9", score=1.0)
    assert 5 not in {n.trial_id for n in views.lineage_tree(views.trial_rows(store))}


def test_label_counts_are_cumulative_over_variation_trials(store):
    _lineage(store)
    assert views.label_counts(views.trial_rows(store)) == {"committed": [1, 1, 1], "incorrect": [0, 1, 1],
                                                           "ok": [0, 0, 1]}


def test_summary_names_the_unit_ratio_to_seed_and_budget(store):
    _lineage(store)
    store.add_event("start", {"budget": {"trials": 10}})
    summary = views.summarize(store, caption="widgets per second")
    assert summary.trials == 3 and summary.committed == 1 and summary.budget_trials == 10
    assert summary.tokens == 170 and summary.cost_usd == pytest.approx(0.17) and summary.stopped == ""
    line = summary.line()
    assert "trials 3/10" in line and "best 3 widgets per second (1.500x seed)" in line
    assert "labels: incorrect 1, ok 2" in line
    store.add_event("stop", {"reason": "trial budget of 10 reached"})
    assert views.summarize(store).stopped == "trial budget of 10 reached"


def test_summary_of_an_empty_run_says_there_is_no_correct_version(store):
    summary = views.summarize(store, caption="u")
    assert "no correct version yet" in summary.line() and summary.ratio_to_seed is None


def test_html_summaries_escape_what_they_show(store):
    _trial(store, None, "s = 0", score=2.0, committed=True, hypothesis="<script>alert(1)</script>")
    shown = store.trials()[0]._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "committed" in shown
    assert "<b>evoagent run</b>" in views.summary_html(views.summarize(store, caption="u"))


def test_a_started_run_between_two_trials_is_running_not_stopped(store):
    assert views.summarize(store).state() == "not running"  # nothing ever started
    store.add_event("start", {"budget": {"trials": 10_000}})
    _lineage(store)  # every trial so far is finished: none in flight at this moment
    assert views.summarize(store).state() == "running, between trials"
    store.begin_trial(operator="op", parent_id=None)
    assert views.summarize(store).state() == "running, 1 trial(s) in flight"
    store.add_event("stop", {"reason": "trial budget of 10000 reached"})
    assert views.summarize(store).state() == "stopped (trial budget of 10000 reached)"


def test_one_improvement_figure_the_remeasured_ratio_to_the_parent_and_its_product_to_the_seed(store):
    seed = _trial(store, None, "s = 0", score=2.0, committed=True, hypothesis="seed")
    first = _trial(store, seed, "s = 1", score=3.0, committed=True)
    store.add_event("confirm", {"trial_id": 2, "best_id": seed.id, "ratio": 1.2, "low": 1.1, "high": 1.3,
                                "rounds": 2})
    _trial(store, first, "s = 2", score=3.3, committed=True)  # committed without re-measurement: 3.3 / 3.0
    rows = views.trial_rows(store)
    assert rows[1].parent_figure == views.Ratio(value=1.2, low=1.1, high=1.3, rounds=2)  # not 3.0 / 2.0
    assert rows[1].ratio_to_parent == 1.2 and rows[2].parent_figure == views.Ratio(value=pytest.approx(1.1))
    summary = views.summarize(store)
    assert summary.ratio_to_seed == pytest.approx(1.32)  # 1.2 x 1.1, not 3.3 / 2.0 = 1.65
    assert summary.seed_text() == "1.320x the seed (1.210-1.430 over 2 re-measurements)"
    assert summary.seed_text("seed") in summary.line()
    assert views.improvement_lines(store, 2) == [
        f"improvement: 1.200x its parent {seed.id} (1.100-1.300 over 2 re-measurements)",
        "improvement: 1.200x the seed (1.100-1.300 over 2 re-measurements)"]
