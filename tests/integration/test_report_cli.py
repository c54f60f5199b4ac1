"""`evoagent report` and `evoagent status --watch` on real runs, finished and still being written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from engine_targets import SEED, Quadratic

import evoagent as ea

HERE = Path(__file__).parent
pytest.importorskip("plotly")


def evoagent(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"evoagent {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def test_report_reads_a_run_while_it_is_being_written(tmp_path):
    (tmp_path / "main.py").write_text(SEED)
    with ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[tmp_path / "main.py"]) as run:
        ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=3), seed=0)
        run.store.add_event("start", {"budget": {"trials": 4}})  # as a resumed evolve() records it
        run.store.begin_trial(operator="parameter_mutation", parent_id=run.best.id)  # one trial in flight
        out = evoagent("report", str(tmp_path / "run"))  # the writer still holds the run's lock
        text = (tmp_path / "run" / "report.html").read_text()
    assert "report.html" in out.stdout and "self-contained" in out.stdout
    assert "running (1 trial(s) in flight)" in text and "trials</th><td>3 of 4" in text
    assert "evoagent report: quadratic" in text  # stored with the run: the class need not be importable here


def test_report_replaces_an_earlier_report_and_nothing_else(tmp_path):
    (tmp_path / "main.py").write_text(SEED)
    with ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[tmp_path / "main.py"]) as run:
        ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=1), seed=0)
    target = tmp_path / "out" / "r.html"
    evoagent("report", str(tmp_path / "run"), "--out", str(target))
    evoagent("report", str(tmp_path / "run"), "--out", str(target))  # an earlier report is replaced
    (tmp_path / "notes.html").write_text("<html>my notes</html>")
    refused = evoagent("report", str(tmp_path / "run"), "--out", str(tmp_path / "notes.html"), check=False)
    assert refused.returncode == 2 and "is not an evoagent report" in refused.stderr
    assert (tmp_path / "notes.html").read_text() == "<html>my notes</html>"
    assert evoagent("report", str(tmp_path / "nope"), check=False).stderr.startswith("evoagent: error: ")


def test_report_open_on_a_machine_without_a_display_says_where_the_file_is(tmp_path, monkeypatch):
    (tmp_path / "main.py").write_text(SEED)
    with ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[tmp_path / "main.py"]):
        pass
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = evoagent("report", str(tmp_path / "run"), "--open")
    uri = (tmp_path / "run" / "report.html").resolve().as_uri()
    assert f"no browser could be opened here (no display); open {uri} in a browser" in out.stderr


def test_status_watch_follows_a_run_until_it_stops(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    config = tmp_path / "config.toml"
    config.write_text(f'seeds = ["seed.py"]\n[evaluator]\ntarget = "{HERE / "engine_targets.py"}:Quadratic"\n'
                      '[operator]\nkind = "parameter_mutation"\n[budget]\ntrials = 4\n')
    run = subprocess.Popen([sys.executable, "-m", "evoagent.cli", "run", str(config), "--run-dir",
                            str(tmp_path / "run"), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        header = run.stderr.readline()  # printed once the run directory exists
        assert "evoagent: run" in header
        watched = evoagent("status", str(tmp_path / "run"), "--watch", "--interval", "0.1")
    finally:
        stdout, _ = run.communicate(timeout=300)
    assert run.returncode == 0, stdout
    last = watched.stdout.split("run ")[-1]
    assert "stopped (trial budget of 4 reached)" in last and "trials 4/4" in last and "score" not in last.split("|")[0]
    assert "evoagent report" in stdout and "evoagent resume" in stdout
