from __future__ import annotations

import argparse
import time

import pytest
from engine_targets import SEED, Quadratic, Scripted

import evoagent as ea


def _run(tmp_path, evaluator=None, population=None):
    tmp_path.mkdir(exist_ok=True)
    seed = tmp_path / "seed.py"
    seed.write_text(SEED)
    return ea.Run.create(tmp_path / "run", evaluator=evaluator or Quadratic(), seeds=[seed], population=population)


def test_mutation_improves_on_the_seed_and_every_trial_is_stored(tmp_path):
    run = _run(tmp_path)
    result = ea.evolve(run, ea.ParameterMutation(max_changes=1), ea.Budget(trials=12), seed=1)
    seed_score = 100 - 9
    assert result.best is not None and result.best.score > seed_score
    assert result.best.path.read_text() == result.best.candidate.source
    assert len(result.trials) == 12 and result.stopped_because == "trial budget of 12 reached"
    assert [t.id for t in run.trials()] == [t.id for t in result.trials]
    members = run.store.members()
    assert all(b.score >= a.score for a, b in zip(members, members[1:]))  # Chain with tolerance 0
    assert run.status()["committed"] == sum(t.committed for t in result.trials)
    run.close()


def test_failures_are_labelled_and_never_committed(tmp_path):
    run = _run(tmp_path)
    op = Scripted(["X = (\n", "X = 'a'\n", "import os\nos._exit(3)\n", "X = 3.0\n"])
    trials = list(ea.iterate(run, op, ea.Budget(trials=4)))
    assert [t.status for t in trials] == [ea.Status.COMPILE_ERROR, ea.Status.INCORRECT, ea.Status.CRASH,
                                         ea.Status.OK]
    assert [t.committed for t in trials] == [False, False, False, True]
    assert "line 1" in trials[0].reason
    assert op.seen == [t.id for t in trials]
    assert run.best.source == "X = 3.0\n"
    run.close()


def test_resubmitting_a_known_version_is_a_duplicate(tmp_path):
    run = _run(tmp_path)
    trials = list(ea.iterate(run, Scripted(["X = 1.0\n", "X = 1.0\n", SEED]), ea.Budget(trials=3)))
    assert [t.status for t in trials] == [ea.Status.OK, ea.Status.DUPLICATE, ea.Status.DUPLICATE]
    run.close()


def test_token_budget_stops_the_run_cleanly(tmp_path):
    run = _run(tmp_path)
    op = Scripted(["X = 1.0\n", "X = 2.0\n", "X = 2.5\n"], usage=ea.Usage(input_tokens=600, cost_usd=0.01))
    result = ea.evolve(run, op, ea.Budget(trials=10, tokens=1000))
    assert "token budget" in result.stopped_because
    assert [t.status for t in result.trials] == [ea.Status.OK, ea.Status.BUDGET_OVERRUN]
    assert run.status()["tokens"] == 1200 and run.status()["cost_usd"] == pytest.approx(0.02)
    run.close()


def test_transcripts_and_events_are_stored(tmp_path):
    run = _run(tmp_path)
    ea.evolve(run, Scripted(["X = 2.0\n"]), ea.Budget(trials=1))
    trial = run.trials()[0]
    assert run.store.messages(trial.id) == [{"role": "assistant", "content": "proposing 'X = 2.0\\n'"}]
    kinds = [e["kind"] for e in run.store.events()]
    assert kinds[0] == "start" and "commit" in kinds and kinds[-1] == "stop"
    run.close()


def test_breaking_out_of_iterate_marks_in_flight_work_interrupted(tmp_path):
    run = _run(tmp_path)
    for _ in ea.iterate(run, Scripted(["X = 1.0\n", "X = 2.0\nDELAY = 600.0\n"]), ea.Budget(trials=10), slots=2):
        broke = time.monotonic()
        break  # the quick trial is done; the slow one (600 s) is still being evaluated
    assert time.monotonic() - broke < 300  # it was stopped, not waited for (on however busy a machine)
    counts = run.store.totals()
    assert counts["trials"] == 1 and counts["interrupted"] == 1
    assert not run.store.trials(state="running")
    run.close()


def test_target_score_and_patience_stop_conditions(tmp_path):
    run = _run(tmp_path)
    result = ea.evolve(run, Scripted(["X = 3.0\n", "X = 2.0\n"]), ea.Budget(trials=10), target_score=100.0)
    assert result.stopped_because.startswith("target score") and len(result.trials) == 1
    run.close()
    run = _run(tmp_path / "b")
    result = ea.evolve(run, Scripted(["X = -5.0\n", "X = -6.0\n", "X = -7.0\n"]), ea.Budget(trials=10), patience=2)
    assert result.stopped_because == "no commit in 2 trials" and len(result.trials) == 2
    run.close()


def test_no_correct_seed_stops_with_the_reason(tmp_path):
    seed = tmp_path / "seed.py"
    seed.write_text("X = (\n")
    run = ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[seed])
    result = ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=3))
    assert result.best is None and "no seed passed evaluation" in result.stopped_because
    assert "line 1" in result.stopped_because
    run.close()


def test_tree_population_with_parallel_slots(tmp_path):
    run = _run(tmp_path, population=ea.Tree("tournament"))
    result = ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=8), slots=2, seed=3)
    assert len(result.trials) == 8
    ok = [t for t in result.trials if t.status is ea.Status.OK]
    assert all(t.committed for t in ok)  # every correct candidate becomes a node
    run.close()


def test_second_writer_is_refused_but_readers_work(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ea.RunStoreError, match="being written by pid"):
        ea.Run.open(tmp_path / "run")
    reader = ea.Run.open(tmp_path / "run", readonly=True)
    assert reader.status()["trials"] == 0
    reader.close()
    run.close()


def test_existing_run_directory_is_never_overwritten(tmp_path):
    _run(tmp_path).close()
    before = (tmp_path / "run" / "run.db").read_bytes()
    with pytest.raises(ea.RunStoreError, match="already holds a run"):
        _run(tmp_path)
    assert (tmp_path / "run" / "run.db").read_bytes() == before


def test_lineage_summary_graph_and_git_export(tmp_path):
    run = _run(tmp_path)
    ea.evolve(run, Scripted(["X = 1.0\n", "X = (\n", "X = 2.0\n"]), ea.Budget(trials=3))
    text = run.lineage.summary()
    assert "Chain from the root to the best" in text and "try X = 2.0" in text and "compile_error" in text
    short = run.lineage.summary(max_chain=2)  # the newest versions of a long chain, and a note
    assert "The newest 2 versions of the chain" in short and "try X = 1.0" in short.split("Latest")[0]
    assert "(seed)" not in short
    chain = run.lineage.ancestors(run.best)
    assert [c.source for c in chain] == [SEED, "X = 1.0\n", "X = 2.0\n"]
    graph = run.lineage.graph()
    assert graph.number_of_nodes() == 4 and graph.number_of_edges() == 3
    repo = run.lineage.to_git(tmp_path / "git")
    import subprocess

    log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["try X = 2.0", "try X = 1.0", "seed"]
    run.close()


def test_function_evaluator_shortcut_scores_and_rejects(tmp_path):
    from engine_targets import score_x

    evaluator = ea.FunctionEvaluator(score_x, entry="main.py")
    with ea.Sandbox(evaluator.sandbox_config()) as sandbox:
        good = evaluator.evaluate(ea.Candidate.from_source("X = 2.0\n"), sandbox)
        bad = evaluator.evaluate(ea.Candidate.from_source("X = 'a'\n"), sandbox)
    assert good.ok and good.score == pytest.approx(99.0)
    assert bad.status is ea.Status.INCORRECT and "X must be a number" in bad.reason
    rebuilt = ea.FunctionEvaluator(**evaluator.spec()["params"])
    assert rebuilt.score_fn is score_x


def test_knowledge_in_each_context_holds_this_runs_lessons_and_earlier_ones(tmp_path):
    from evoagent.knowledge import KnowledgeBase, Lesson

    seen, found = [], []

    class Reader(Scripted):
        def vary(self, context):
            seen.append([lesson.text for lesson in context.knowledge.lessons])
            found.append({hit.doc for hit in context.knowledge.search("compile_error try X", k=3)})
            return super().vary(context)

    run = _run(tmp_path)
    kb = KnowledgeBase().with_lessons([Lesson(run="older", trial_id=7, text="trial 7: tiles 64x64 -> slower")])
    ea.evolve(run, Reader(["X = 1.0\n", "X = (\n", "X = 2.0\n"]), ea.Budget(trials=3), knowledge=kb)
    assert [len(s) for s in seen] == [1, 2, 3]
    assert seen[2][0].startswith("trial 7") and "try X = (" in seen[2][2] and "compile_error" in seen[2][2]
    assert "lessons" in found[2]
    run.close()


def _noisy_run(tmp_path, confirm, luck):
    from engine_targets import Noisy

    evaluator = Noisy(luck)
    run = _run(tmp_path, evaluator=evaluator, population=ea.Chain(confirm=confirm))
    return run, evaluator


def test_a_lucky_measurement_is_committed_without_confirmation(tmp_path):
    # The seed (X = 0) scores 91; X = 6.5 truly scores 87.75 but measures 97.75 once.
    run, _ = _noisy_run(tmp_path, 0, {"X = 6.5\n": [10.0]})
    trials = list(ea.iterate(run, Scripted(["X = 6.5\n"]), ea.Budget(trials=1)))
    assert trials[0].committed and trials[0].score == pytest.approx(97.75)
    run.close()


def test_confirmation_rejects_luck_and_keeps_real_gains(tmp_path):
    from evoagent.views import summarize

    run, evaluator = _noisy_run(tmp_path, 2, {"X = 6.5\n": [10.0]})
    trials = list(ea.iterate(run, Scripted(["X = 6.5\n", "X = 2.0\n"]), ea.Budget(trials=2)))
    lucky, real = trials
    assert not lucky.committed and lucky.status is ea.Status.OK
    assert lucky.score == pytest.approx(87.75) and "0.964x best" in lucky.reason  # 87.75 / 91 in each round
    assert lucky.reason.endswith("not committed: the re-measurements do not show it beyond noise")
    assert real.committed and real.score == pytest.approx(99.0)
    # interleaved: candidate, best, candidate, best after the first measurement of each trial
    assert evaluator.measured[1:6] == ["X = 6.5\n", "X = 6.5\n", SEED, "X = 6.5\n", SEED]
    assert run.store.count_evaluations("confirmation") == 8
    assert [e["payload"]["passed"] for e in run.store.events("confirm")] == [False, True]
    assert run.store.events("confirm")[1]["payload"]["ratio"] == pytest.approx(99.0 / 91.0)  # the shown figure
    assert summarize(run.store).ratio_to_seed == pytest.approx(99.0 / 91.0)  # the headline: the same figure
    run.close()


def test_confirm_must_be_a_non_negative_integer():
    with pytest.raises(ea.ConfigError, match="confirm must be an integer >= 0"):
        ea.Chain(confirm=-1)


def test_parallel_slots_never_overrun_the_trial_budget(tmp_path):
    from engine_targets import Noisy

    for attempt in range(3):  # fast trials finishing together are where a miscount would show
        run = _run(tmp_path / str(attempt), evaluator=Noisy(), population=ea.Tree("best"))
        result = ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=40), slots=3, seed=attempt)
        assert len(result.trials) == 40 and run.status()["trials"] == 40
        run.close()


def test_time_budget_ends_a_long_model_step_at_its_next_call(tmp_path):
    class Slow(Scripted):
        def vary(self, context):
            time.sleep(0.3)  # a long agent turn
            return super().vary(context)

    from engine_targets import Noisy

    run = _run(tmp_path, evaluator=Noisy())  # no sandbox: the seed is scored at once
    op = Slow(["X = 1.0\n", "X = 2.0\n"], usage=ea.Usage(input_tokens=1))
    result = ea.evolve(run, op, ea.Budget(trials=5, hours=0.1 / 3600))
    assert result.stopped_because == f"time budget of {0.1 / 3600} h reached"
    assert [t.status for t in result.trials] == [ea.Status.BUDGET_OVERRUN]
    run.close()


class _GivesUp(ea.VariationOperator):
    """Makes a proposal for its first `proposals` steps, then none."""

    name = "gives_up"

    def __init__(self, proposals: int) -> None:
        self.left = proposals

    def vary(self, context):
        if self.left <= 0:
            return ea.Proposal(candidate=None, reason="nothing left to try")
        self.left -= 1
        return ea.Proposal(candidate=context.parent.with_files({"main.py": f"X = {self.left}.0\n"}), hypothesis="x")


def test_a_trial_without_a_proposal_is_labelled_no_proposal_not_budget_overrun(tmp_path):
    from engine_targets import Noisy

    run = _run(tmp_path, evaluator=Noisy())
    result = ea.evolve(run, _GivesUp(1), ea.Budget(trials=3), no_proposal_limit=0)
    assert [t.status for t in result.trials] == [ea.Status.OK, ea.Status.NO_PROPOSAL, ea.Status.NO_PROPOSAL]
    assert result.trials[1].reason == "nothing left to try" and result.stopped_because == "trial budget of 3 reached"
    run.close()


def test_the_run_stops_when_the_operator_keeps_making_no_proposal(tmp_path):
    from engine_targets import Noisy

    run = _run(tmp_path, evaluator=Noisy())
    result = ea.evolve(run, _GivesUp(2), ea.Budget(trials=50), ea.Options(no_proposal_limit=3))
    assert [t.status.value for t in result.trials] == ["ok", "ok", "no_proposal", "no_proposal", "no_proposal"]
    assert result.stopped_because == "no proposal in 3 trials in a row (last: nothing left to try)"
    run.close()


def test_unknown_option_names_the_options_fields(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ea.ConfigError, match=r"unknown option\(s\) slotz; the Options fields are .*slots"):
        ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=1), slotz=2)
    run.close()


def test_gpu_calls_queue_by_their_role_and_busy_time_is_stored(tmp_path, capsys):
    from engine_targets import Exploring, GpuQuadratic

    from evoagent import commands

    evaluator = GpuQuadratic()
    run = _run(tmp_path, evaluator=evaluator, population=ea.Chain(confirm=1))
    trials = list(ea.iterate(run, Exploring(["X = 2.0\n"]), ea.Budget(trials=1)))
    assert trials[0].committed
    # the seed, the agent's draft, the authoritative evaluation, then the candidate and the best re-measured
    assert evaluator.priorities == ["authoritative", "exploratory", "authoritative", "confirm", "confirm"]
    (usage,) = run.store.device_usage()
    assert usage.device == "0" and usage.calls == 5 and 0 < usage.busy_s <= usage.wall_s
    (shown,) = run.status()["gpu_usage"]
    assert shown["calls"] == 5 and shown["busy_fraction"] == pytest.approx(usage.busy_s / usage.wall_s)
    run.close()
    args = argparse.Namespace(run_dir=str(tmp_path / "run"), watch=False, json=False, interval=1.0)
    assert commands.status(args) == 0  # (the CLI's parser would import the attention target: torch)
    assert f"GPU 0: busy {usage.busy_s / usage.wall_s:.1%} of the wall time" in capsys.readouterr().out


def test_one_trials_cpu_stage_runs_while_anothers_gpu_stage_holds_the_gpu(tmp_path):
    """The run can only finish if the RELEASE draft's CPU call ends while the HOLD draft is timed."""
    from engine_targets import GpuQuadratic

    hold = tmp_path / "hold"
    hold.write_text("")
    evaluator = GpuQuadratic(hold_file=str(hold))
    run = _run(tmp_path, evaluator=evaluator, population=ea.Tree("best"))
    drafts = Scripted(["X = 1.0  # HOLD\n", "X = 2.0  # RELEASE\n"])
    trials = list(ea.iterate(run, drafts, ea.Budget(trials=2), slots=2))
    assert sorted(t.status for t in trials) == [ea.Status.OK, ea.Status.OK]
    assert evaluator.overlapped == [True]
    run.close()


def test_gpu_busy_time_is_stored_while_a_long_trial_runs(tmp_path, monkeypatch):
    """The first trial's timing is held until its session's GPU usage shows in the store."""
    import threading

    from engine_targets import GpuQuadratic

    from evoagent import engine

    monkeypatch.setattr(engine, "_USAGE_EVERY_S", 0.01)
    hold = tmp_path / "hold"
    run = _run(tmp_path, evaluator=GpuQuadratic(hold_file=str(hold)))
    reader = ea.Run.open(tmp_path / "run", readonly=True)
    runner = threading.Thread(target=lambda: list(ea.iterate(run, Scripted(["X = 1.0  # HOLD\n"]),
                                                             ea.Budget(trials=1))))
    hold.write_text("")
    runner.start()
    deadline = time.monotonic() + 60  # (a guard against hanging, not a timing threshold)
    while [u.calls for u in reader.store.device_usage()] != [2] and time.monotonic() < deadline:
        time.sleep(0.01)
    (usage,) = reader.store.device_usage()
    hold.unlink()
    runner.join(60)
    assert usage.calls == 2 and 0 < usage.busy_s <= usage.wall_s  # the seed's timing and the held one, still running
    assert run.store.trials()[-1].status is ea.Status.OK
    reader.close()
    run.close()
