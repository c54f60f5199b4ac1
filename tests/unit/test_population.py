from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evoagent import Chain, ConfigError, EvalResult, Status, Tree
from evoagent.population import MatchOrImprove, MemberList
from evoagent.store import Member


def _ok(score: float) -> EvalResult:
    return EvalResult(status=Status.OK, score=score, metrics={"a": score})


def _members(scores):
    return MemberList([Member(seq=i + 1, candidate_id=f"c{i}", trial_id=i + 1, score=s)
                       for i, s in enumerate(scores)])


def test_chain_commits_first_correct_result_and_refuses_failures():
    chain = Chain()
    assert chain.accepts(_ok(1.0), None)
    assert not chain.accepts(EvalResult(status=Status.INCORRECT, reason="wrong"), None)


def test_chain_tolerance_admits_small_regressions_only():
    chain = Chain(tolerance=0.01)
    assert chain.accepts(_ok(99.2), 100.0)
    assert not chain.accepts(_ok(98.9), 100.0)


def test_chain_starts_from_the_latest_member():
    assert Chain().select_parent(_members([1.0, 3.0, 2.9]), random.Random(0)).candidate_id == "c2"


def test_tree_parent_selection_modes():
    members = _members([1.0, 5.0, 2.0])
    assert Tree("best").select_parent(members, random.Random(0)).candidate_id == "c1"
    assert Tree(lambda ms, rng: ms.at(0)).select_parent(members, random.Random(0)).candidate_id == "c0"
    picked = {Tree("tournament", tournament_size=2).select_parent(members, random.Random(s)).candidate_id
              for s in range(30)}
    assert picked <= {"c1", "c2"} and len(picked) == 2  # the worst never wins a tournament of 2 from 3


def test_tree_commits_every_correct_result():
    assert Tree().accepts(_ok(0.1), 10.0)


def test_bad_settings_are_rejected_with_the_value():
    with pytest.raises(ConfigError, match="tolerance"):
        Chain(tolerance=1.5)
    with pytest.raises(ConfigError, match="parent_selection"):
        Tree("random")


@given(st.floats(0, 0.2), st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=60))
def test_committed_scores_never_fall_below_best_times_tolerance(tolerance, outcomes):
    chain = Chain(tolerance=tolerance)
    members: list[Member] = []
    for score in outcomes:
        result = EvalResult(status=Status.INCORRECT, reason="x") if score is None else _ok(score)
        best = max((m.score for m in members), default=None)
        if chain.accepts(result, best):
            assert result.score is not None
            assert best is None or result.score >= best - tolerance * abs(best)
            members.append(Member(seq=len(members) + 1, candidate_id=str(len(members)), trial_id=1,
                                  score=result.score))
    assert all(m.score is not None for m in members)


def test_rule_spec_is_recorded():
    assert Chain(tolerance=0.005).spec() == {"kind": "chain", "confirm": 0, "rule": "match_or_improve",
                                             "tolerance": 0.005}
    assert Chain(confirm=2).spec()["confirm"] == 2 and Tree(confirm=1).spec()["confirm"] == 1
    assert MatchOrImprove(0.0)(1.0, 1.0)


class _Remeasure:
    """Scripted re-measurements: the candidate's and the incumbent's metrics, in order."""

    def __init__(self, candidate, best):
        self._candidate, self._best = list(candidate), list(best)
        self.calls: list[str] = []

    def candidate(self) -> EvalResult:
        self.calls.append("candidate")
        return self._candidate.pop(0)

    def best(self) -> EvalResult:
        self.calls.append("best")
        return self._best.pop(0)

    def aggregate(self, metrics):
        return metrics["a"]


def _best(score: float) -> Member:
    return Member(seq=1, candidate_id="incumbent", trial_id=1, score=score)


def test_decide_commits_on_one_measurement_without_confirm():
    decision = Chain().decide(_ok(2.0), _best(1.0), _Remeasure([], []))
    assert decision.committed and decision.result == _ok(2.0) and decision.best_score is None
    assert not Chain().decide(_ok(0.5), _best(1.0)).committed


def test_decide_rejects_a_lucky_measurement_on_the_medians():
    remeasure = _Remeasure([_ok(0.9), _ok(1.0)], [_ok(1.1), _ok(1.2)])
    decision = Chain(confirm=2).decide(_ok(3.0), _best(1.0), remeasure)
    assert remeasure.calls == ["candidate", "best", "candidate", "best"]  # interleaved
    assert not decision.committed and decision.result.score == 1.0 and decision.best_score == 1.15
    assert decision.improvement is not None and decision.improvement.rounds == 2
    assert decision.result.reason.startswith("0.826x best incumbent (paired rounds 0.818-0.833, 2 re-measurements")
    assert decision.result.reason.endswith("not committed: the re-measurements do not show it beyond noise")


def test_decide_refuses_a_commit_whose_worst_paired_round_is_slower_than_the_incumbent():
    # the medians pass (1.05 vs 1.0), but one round measured beside the incumbent shows it slower: noise
    remeasure = _Remeasure([_ok(1.2), _ok(0.9), _ok(1.05)], [_ok(1.0), _ok(1.0), _ok(1.0)])
    decision = Chain(confirm=3).decide(_ok(1.1), _best(1.0), remeasure)
    assert not decision.committed and decision.improvement is not None
    assert (decision.improvement.low, decision.improvement.ratio, decision.improvement.high) == (0.9, 1.05, 1.2)


_scores = st.floats(min_value=0.5, max_value=2.0, allow_nan=False)


@given(rounds=st.lists(st.tuples(_scores, _scores), min_size=1, max_size=5),
       tolerance=st.sampled_from([0.0, 0.005, 0.05]))
def test_a_commit_after_remeasurement_shows_every_paired_round_within_the_rule(rounds, tolerance):
    remeasure = _Remeasure([_ok(a) for a, _ in rounds], [_ok(b) for _, b in rounds])
    decision = Chain(tolerance=tolerance, confirm=len(rounds)).decide(_ok(2.0), _best(1.0), remeasure)
    ratios = [a / b for a, b in rounds]
    figure = decision.improvement
    assert figure is not None and figure.rounds == len(rounds)
    assert figure.low == min(ratios) and figure.high == max(ratios) and figure.low <= figure.ratio <= figure.high
    if decision.committed:  # no commit rests on a lucky round: the worst one passes the rule too
        assert figure.low >= 1 - tolerance - 1e-12
        assert decision.result.score >= decision.best_score * (1 - tolerance) - 1e-12
    elif figure.low >= 1 - tolerance and decision.result.score >= decision.best_score * (1 - tolerance):
        raise AssertionError(f"refused although every round passed: {figure}")


def test_decide_keeps_a_real_gain_with_its_median_score():
    decision = Chain(confirm=2).decide(_ok(2.0), _best(1.0), _Remeasure([_ok(1.8), _ok(2.2)], [_ok(1.0), _ok(1.1)]))
    assert decision.committed and decision.result.score == 2.0 and decision.result.metrics == {"a": 2.0}


def test_decide_refuses_a_candidate_whose_remeasurement_fails():
    crash = EvalResult(status=Status.CRASH, reason="segfault")
    decision = Chain(confirm=2).decide(_ok(2.0), _best(1.0), _Remeasure([crash], []))
    assert not decision.committed and decision.result.status is Status.CRASH
    assert decision.result.reason == "re-measurement 1 of 2: segfault"


def test_decide_judges_the_first_measurement_when_the_incumbent_cannot_be_remeasured():
    broken = EvalResult(status=Status.CRASH, reason="gone")
    decision = Chain(confirm=1).decide(_ok(2.0), _best(1.0), _Remeasure([_ok(0.5)], [broken]))
    assert decision.committed and decision.result == _ok(2.0)


def test_decide_without_an_incumbent_or_a_remeasure_service_does_not_remeasure():
    remeasure = _Remeasure([], [])
    assert Chain(confirm=2).decide(_ok(2.0), None, remeasure).committed and remeasure.calls == []
    assert Chain(confirm=2).decide(_ok(2.0), _best(1.0), None).committed
