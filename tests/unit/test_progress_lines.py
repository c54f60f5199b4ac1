"""The CLI's progress lines name what each engine event carries."""

from __future__ import annotations

from evoagent.commands import _progress
from evoagent.records import Event


def test_supervisor_advice_is_shown_with_its_reason_and_directions(capsys):
    show = _progress(None)
    show(Event(kind="supervisor", payload={"trigger": "stall", "reason": "no version was committed in the last 8 trials",
                                           "directions": ["Vectorize the loads", "Split the K loop"], "sources": []}))
    line = capsys.readouterr().err
    assert line.startswith("  supervisor: no version was committed in the last 8 trials: 1. Vectorize the loads; "
                           "2. Split the K loop")


def test_a_backoff_says_how_long_the_engine_waits(capsys):
    _progress(None)(Event(kind="backoff", payload={"trial_id": 4, "delay_s": 120.0, "failures": 2, "reason": "x"}))
    assert "model API failing (2 trial(s) in a row): next trial in 120 s" in capsys.readouterr().err
