from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evoagent import Candidate, EvalResult, IncompatibleRunError, RunStoreError, StageResult, Status, Usage
from evoagent.store import RunStore

scores = st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False))
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@st.composite
def results(draw):
    status = draw(st.sampled_from(list(Status)))
    metrics = draw(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(0, 1e6), max_size=4))
    score = draw(scores) if status is Status.OK else None
    stage = StageResult(name="s", status=status, reason=draw(texts), details={"k": draw(texts)})
    return EvalResult(status=status, reason=draw(texts), metrics=metrics, score=score, stages=(stage,),
                      env={"host": "h"}, device="cpu")


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "run.db", create=True)
    yield s
    s.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(source=texts, hypothesis=texts, result=results(), committed=st.booleans())
def test_trial_round_trip(store, source, hypothesis, result, committed):
    candidate = Candidate.from_source(source or "x", hypothesis=hypothesis, metadata={"op": "t"})
    committed = committed and result.ok and result.score is not None
    trial_id = store.begin_trial(operator="op", parent_id=None)
    store.add_usage(trial_id, Usage(input_tokens=3, output_tokens=4, cost_usd=0.5))
    trial = store.finish_trial(trial_id, candidate=candidate, result=result, hypothesis=hypothesis, diff="d",
                               committed=committed, eval_s=0.1, lesson="l")
    assert trial is not None and trial.state == "done"
    assert trial.status is result.status and trial.score == result.score and trial.hypothesis == hypothesis
    assert trial.usage.input_tokens == 3 and trial.usage.cost_usd == 0.5
    assert store.candidate(candidate.id) == candidate
    assert store.candidate(candidate.id).metadata == {"op": "t"}
    if result.status is not Status.DUPLICATE:
        assert store.result(candidate.id) == result
    if committed:
        assert candidate.id in [m.candidate_id for m in store.members()]


def test_each_trial_is_recorded_exactly_once(store):
    ids = [store.begin_trial(operator="op", parent_id=None) for _ in range(5)]
    result = EvalResult(status=Status.INCORRECT, reason="no")
    for t in ids[:3]:
        store.finish_trial(t, candidate=None, result=result, hypothesis="", diff="", committed=False,
                           eval_s=0, lesson="")
    assert store.mark_interrupted() == 2
    # a late finish of an interrupted trial is dropped, not recorded twice
    assert store.finish_trial(ids[4], candidate=None, result=result, hypothesis="", diff="", committed=False,
                              eval_s=0, lesson="") is None
    states = [t.state for t in store.trials()]
    assert states == ["done"] * 3 + ["interrupted"] * 2
    assert store.totals()["trials"] == 3


def test_readers_see_writes_while_writer_is_open(tmp_path, store):
    reader = RunStore(tmp_path / "run.db", readonly=True)
    store.add_event("x", {"a": 1})
    assert reader.events("x")[0]["payload"] == {"a": 1}
    reader.close()


def test_newer_schema_is_refused(tmp_path, store):
    store.close()
    db = sqlite3.connect(tmp_path / "run.db")
    db.execute("INSERT INTO migrations VALUES (99, 'm099_future', 0)")
    db.commit()
    db.close()
    with pytest.raises(IncompatibleRunError, match="newer"):
        RunStore(tmp_path / "run.db")


def test_corrupted_or_foreign_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RunStoreError, match="not a usable evoagent run database"):
        RunStore(bad)
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(RunStoreError, match="not an evoagent run database"):
        RunStore(other)


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(RunStoreError, match="no run database"):
        RunStore(tmp_path / "missing.db")


def test_candidate_lookup_by_unique_prefix(store):
    c = Candidate.from_source("a = 1\n")
    store.add_candidate(c)
    assert store.candidate(c.id[:6]) == c
    assert store.candidate("zzzz") is None


def test_lessons_after_the_ones_already_read_and_trials_by_parent_or_candidate(store):
    seed = Candidate.from_source("X = 0\n")
    children = [seed.with_files({"main.py": f"X = {i}\n"}) for i in (1, 2, 3)]
    ok = EvalResult(status=Status.OK, score=1.0, metrics={"f": 1.0})
    for i, child in enumerate(children, start=1):
        trial = store.begin_trial(operator="op", parent_id=seed.id)
        store.finish_trial(trial, candidate=child, result=ok, hypothesis=f"h{i}", diff="", committed=False,
                           eval_s=0.0, lesson=f"lesson {i}")
    assert [text for _, text in store.lessons()] == ["lesson 1", "lesson 2", "lesson 3"]
    assert [text for _, text in store.lessons(skip=2)] == ["lesson 3"]
    assert [t.hypothesis for t in store.trials(parent_id=seed.id, last=2)] == ["h2", "h3"]
    assert [t.hypothesis for t in store.trials(candidate_ids=[children[0].id, children[2].id])] == ["h1", "h3"]
    assert store.parents(children[1].id) == (seed.id,) and store.parents("0" * 16) is None


def test_a_schema_1_run_gains_niches_and_fingerprints_when_opened(tmp_path):
    from evoagent.store import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT, applied_at REAL)")
    MIGRATIONS[0](db)
    db.execute("INSERT INTO migrations VALUES (1, 'm001_initial', 0)")
    old = Candidate.from_source("x = 1  # old\n")
    db.execute("INSERT INTO candidates VALUES (?, 'main.py', ?, '[]', '', '{}', 0)", (old.id, '{"main.py": "x = 1"}'))
    db.execute("INSERT INTO evaluations (candidate_id, kind, status, score, result, created_at) "
               "VALUES (?, 'authoritative', 'ok', 1.0, '{\"status\": \"ok\"}', 0)", (old.id,))
    db.close()
    store = RunStore(path)
    assert store.equivalent_evaluated(Candidate.from_source("x = (1)\n").fingerprint) == old.id
    assert store.niche_sizes() == {} and store.last_migration_epoch() == 0
    store.close()


def test_device_usage_is_kept_per_session_and_summed_over_sessions(store):
    from evoagent.scheduling import DeviceUsage

    assert store.device_usage() == [] and store.next_usage_session() == 1
    store.record_device_usage(1, [DeviceUsage(device="0", busy_s=1.0, wall_s=4.0, calls=2)])
    store.record_device_usage(1, [DeviceUsage(device="0", busy_s=3.0, wall_s=5.0, calls=3)])  # later: replaced
    assert store.next_usage_session() == 2  # a resumed run adds its own rows
    store.record_device_usage(2, [DeviceUsage(device="0", busy_s=4.0, wall_s=5.0, calls=1),
                                  DeviceUsage(device="1", busy_s=0.0, wall_s=5.0, calls=0)])
    gpu0, gpu1 = store.device_usage()
    assert (gpu0.device, gpu0.busy_s, gpu0.wall_s, gpu0.calls, gpu0.busy_fraction) == ("0", 7.0, 10.0, 4, 0.7)
    assert (gpu1.device, gpu1.busy_fraction) == ("1", 0.0)
