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
