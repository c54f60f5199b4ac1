"""`evoagent show`: a trial without a version, the supervisor's advice and question in words, never raw JSON."""

from __future__ import annotations

from evoagent import EvalResult, Status
from evoagent.cli import main
from evoagent.store import RunStore


def test_show_names_a_missing_version_and_prints_the_supervisor_in_words(tmp_path, capsys):
    store = RunStore(tmp_path / "run.db", create=True)
    trial = store.begin_trial(operator="agentic", parent_id="abc123")
    question = [{"role": "user", "content": [{"type": "text", "text": "Propose 3 directions."}]}]
    store.add_message(trial, "supervisor", question)
    store.add_event("supervisor", {"trial_id": trial, "trigger": "stall", "reason": "no commit in 8 trials",
                                   "directions": ["Try a heap.", "Cache the keys."], "sources": []}, trial_id=trial)
    store.finish_trial(trial, candidate=None, result=EvalResult(status=Status.NO_PROPOSAL, reason="nothing to try"),
                       hypothesis="", diff="", committed=False, eval_s=0.0, lesson="")
    store.close()
    assert main(["show", str(tmp_path), str(trial)]) == 0
    out = capsys.readouterr().out
    assert "candidate None" not in out and "no version (nothing was proposed)" in out
    assert "supervisor (stall): no commit in 8 trials\n  1. Try a heap.\n  2. Cache the keys." in out
    assert "[user] Propose 3 directions." in out and '{"role"' not in out


def test_show_of_a_trial_that_is_not_a_number_says_what_it_expects(tmp_path, capsys):
    try:
        main(["show", str(tmp_path), "abc"])
    except SystemExit as exit_:
        assert exit_.code == 2
    err = capsys.readouterr().err
    assert "argument trial: expected a whole number >= 1 (got 'abc')" in err and "_pos_int" not in err
