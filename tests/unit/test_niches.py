"""Islands and MAP-Elites: migration, cell assignment, parent selection, decisions and resume (property tests)."""

from __future__ import annotations

import bisect
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evoagent import ConfigError, Descriptors, EvalResult, Islands, MapElites, Status, Tree
from evoagent.candidate import Candidate
from evoagent.niches import parse_cell, population_from_spec
from evoagent.population import MemberList, Pick, StoredMembers
from evoagent.records import Member
from evoagent.store import RunStore


def _ok(score: float) -> EvalResult:
    return EvalResult(status=Status.OK, score=score, metrics={"a": score})


# (island index, candidate number, score): members placed on islands, in placement order
placements = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 12), st.floats(0, 100)), max_size=40)


def _island_members(n: int, rows: list[tuple[int, int, float]]) -> MemberList:
    return MemberList([Member(seq=i + 1, candidate_id=f"c{c}", trial_id=i + 1, score=s, niche=f"island {k % n}")
                       for i, (k, c, s) in enumerate(rows)])


@given(st.integers(1, 5), st.integers(1, 3), placements)
def test_migration_moves_each_islands_best_to_the_next_island_once(n, migrants, rows):
    members = _island_members(n, rows)
    moves = Islands(n, migrants=migrants).migration(members)
    for destination, member in moves:
        source = int(member.niche.split()[1])
        assert destination == f"island {(source + 1) % n}" and n > 1
        assert member in members.niche(member.niche).top(migrants)
        assert not members.niche(destination).has(member.candidate_id)
    assert len(set(moves)) == len(moves)
    for i in range(n if n > 1 else 0):  # every top member not yet next door moves
        destination = members.niche(f"island {(i + 1) % n}")
        expected = [m for m in members.niche(f"island {i}").top(migrants) if not destination.has(m.candidate_id)]
        assert [m for d, m in moves if m.niche == f"island {i}"] == expected


@given(st.integers(1, 6), st.integers(0, 1000), placements)
def test_islands_work_round_robin_and_start_from_their_own_island(n, trial, rows):
    members = _island_members(5, rows)
    if not len(members):
        return
    pick = Islands(n, policy="chain").pick(members, random.Random(trial), trial)
    island = f"island {trial % n}"
    assert pick.niche == island
    local = members.niche(island)
    assert pick.parent == (local.latest() if len(local) else members.latest())


edges = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=5, unique=True).map(sorted)


@given(edges, st.floats(-2e3, 2e3, allow_nan=False), st.floats(-2e3, 2e3, allow_nan=False))
def test_cells_follow_the_bin_edges(bins, x, y):
    elites = MapElites(["x"], bins={"x": bins})
    cell_x = elites.cell(Descriptors(values={"x": x}))
    cell_y = elites.cell(Descriptors(values={"x": y}))
    same_bin = bisect.bisect_right(bins, x) == bisect.bisect_right(bins, y)
    assert (cell_x == cell_y) == same_bin
    assert parse_cell(cell_x).keys() == {"x"}


@given(st.dictionaries(st.sampled_from(["BLOCK_M", "num_warps", "registers", "shared_kib"]),
                       st.one_of(st.none(), st.integers(0, 512).map(float)), min_size=1))
def test_a_cell_names_each_descriptor_once_in_order(values):
    cell = MapElites().cell(Descriptors(values=values, bins={"registers": (96.0, 160.0)}))
    parsed = parse_cell(cell)
    assert list(parsed) == list(values)
    for name, value in values.items():
        assert (parsed[name] == "n/a") == (value is None)


def test_a_descriptor_the_target_does_not_report_is_a_config_error():
    with pytest.raises(ConfigError, match="'warps' is not one the target reports"):
        MapElites(["warps"]).cell(Descriptors(values={"num_warps": 4.0}))
    with pytest.raises(ConfigError, match="increasing"):
        MapElites(bins={"x": [3, 1]})


cells = st.lists(st.tuples(st.sampled_from(["a=1", "a=2", "a=3 b=1", "a=1 b=2"]), st.integers(0, 9),
                           st.floats(0, 10)), min_size=1, max_size=30)


def _cell_members(rows):
    return MemberList([Member(seq=i + 1, candidate_id=f"c{c}", trial_id=i + 1, score=s, niche=f"cell {cell}")
                       for i, (cell, c, s) in enumerate(rows)])


@given(cells, st.integers(0, 10**6))
def test_map_elites_starts_from_the_elite_of_a_filled_cell(rows, seed):
    members = _cell_members(rows)
    pick = MapElites().pick(members, random.Random(seed), 1)
    assert pick.parent in members.elites()
    assert pick.parent == members.niche(pick.niche).best()


@given(cells, st.sampled_from(["cell a=1", "cell a=9"]), st.floats(0, 10))
def test_map_elites_keeps_a_result_when_its_cell_is_empty_or_it_beats_the_elite(rows, cell, score):
    members = _cell_members(rows)
    elite = members.niche(cell).best()
    decision = MapElites().decide(_ok(score), elite)
    assert decision.committed == (elite is None or score >= elite.score)
    assert not MapElites().decide(EvalResult(status=Status.INCORRECT, reason="wrong"), None).committed


def test_the_view_names_neighbouring_elites_and_an_empty_cell_to_aim_for():
    members = _cell_members([("a=1 b=1", 1, 2.0), ("a=2 b=1", 2, 3.0), ("a=1 b=2", 3, 1.0)])
    parent = members.niche("cell a=2 b=1").best()
    view = MapElites().view(members, Pick(parent=parent, niche="cell a=2 b=1"))
    assert "cell a=1 b=1: c1" in view.text and "cell a=1 b=2" not in view.text.split("Empty")[0]
    assert view.suggestion == "cell a=2 b=2"


def test_island_specs_rebuild_the_same_population():
    islands = Islands(3, migrate_every=5, migrants=2, policy={"kind": "tree", "tournament_size": 2})
    again = population_from_spec(islands.spec())
    assert again.spec() == islands.spec() and isinstance(again.policy, Tree)
    with pytest.raises(ConfigError, match="policy"):
        Islands(policy="islands")
    with pytest.raises(ConfigError, match="unknown key 'population.nn'"):
        population_from_spec({"kind": "islands", "nn": 3})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 10)), min_size=1, max_size=12), st.integers(0, 99))
def test_a_reopened_store_gives_the_same_picks_and_migration(tmp_path_factory, rows, seed):
    path = tmp_path_factory.mktemp("run") / "run.db"
    islands = Islands(3, migrate_every=2)
    store = RunStore(path, create=True)
    for i, (island, score) in enumerate(rows):
        candidate = Candidate.from_source(f"X = {i}\n")
        trial = store.begin_trial(operator="t", parent_id=None, niche=f"island {island}")
        store.finish_trial(trial, candidate=candidate, result=_ok(score), hypothesis="", diff="", committed=True,
                           eval_s=0.0, lesson="", niche=f"island {island}", placed_in=(f"island {island}",))
    store.add_migration(1, islands.migration(StoredMembers(store)))
    before = [islands.pick(StoredMembers(store), random.Random(seed), t) for t in range(6)]
    moves = islands.migration(StoredMembers(store))
    store.close()
    reopened = RunStore(path)
    rebuilt = population_from_spec(islands.spec())
    assert [rebuilt.pick(StoredMembers(reopened), random.Random(seed), t) for t in range(6)] == before
    assert rebuilt.migration(StoredMembers(reopened)) == moves
    assert reopened.last_migration_epoch() == 1
    reopened.close()
