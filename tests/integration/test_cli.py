from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from engine_targets import SEED
from held_run import done_trials, start_and_hold

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def evoagent(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True,
                         cwd=cwd, timeout=240)
    if check and out.returncode != 0:
        raise AssertionError(f"evoagent {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def _config(tmp_path: Path, *, trials: int, delay_s: float = 0.0, extra: str = "") -> Path:
    (tmp_path / "seed.py").write_text(SEED)
    path = tmp_path / "config.toml"
    path.write_text(
        f'seeds = ["seed.py"]\n[evaluator]\ntarget = "{HERE / "engine_targets.py"}:Quadratic"\n'
        f"params = {{ delay_s = {delay_s} }}\n[operator]\nkind = \"parameter_mutation\"\n"
        f"[budget]\ntrials = {trials}\n{extra}")
    return path


def test_run_status_best_lineage_and_show(tmp_path):
    config = _config(tmp_path, trials=6)
    run_dir = tmp_path / "run"
    out = evoagent("run", str(config), "--run-dir", str(run_dir))
    assert "best:" in out.stdout and f"run stored in {run_dir}" in out.stdout
    status = json.loads(evoagent("status", str(run_dir), "--json").stdout)
    assert status["trials"] == 6 and sum(status["by_status"].values()) == 6
    assert isinstance(status["committed"], int) and status["best_score"] > 0
    assert status["tokens"] == 0 and status["cost_usd"] == 0
    assert status["confinement"]["level"] in ("full", "partial")  # "partial" where the kernel lacks a mechanism
    assert "sandbox confinement " + status["confinement"]["description"] in evoagent("status", str(run_dir)).stdout
    assert "X =" in evoagent("best", str(run_dir)).stdout
    evoagent("best", str(run_dir), "--output", str(tmp_path / "best.py"))
    refused = evoagent("best", str(run_dir), "--output", str(tmp_path / "best.py"), check=False)
    assert refused.returncode == 2 and "nothing is overwritten" in refused.stderr
    assert "Chain from the root" in evoagent("lineage", str(run_dir)).stdout
    evoagent("lineage", str(run_dir), "--format", "graphml", "--output", str(tmp_path / "l.graphml"))
    assert "<graphml" in (tmp_path / "l.graphml").read_text()
    shown = evoagent("show", str(run_dir), "2").stdout
    assert "hypothesis: set X" in shown and "+X =" in shown


@pytest.mark.parametrize("args, message", [
    (["run", "missing.toml"], "config file 'missing.toml' does not exist"),
    (["run", "nosuchtarget"], "unknown built-in target 'nosuchtarget'"),
    (["status", "not-a-run"], "is not a run directory"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    out = evoagent(*args, cwd=tmp_path, check=False)
    assert out.returncode == 2 and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_bad_config_values_name_the_key(tmp_path):
    config = _config(tmp_path, trials=2, extra="[engine]\nslotz = 2\n")
    out = evoagent("run", str(config), "--run-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "unknown key 'engine.slotz'" in out.stderr and "did you mean 'slots'" in out.stderr
    assert not (tmp_path / "r").exists()
    config.write_text(config.read_text().replace("slotz = 2", "").replace('"seed.py"', '"gone.py"'))
    out = evoagent("run", str(config), "--run-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "seed" in out.stderr and "gone.py" in out.stderr


def test_existing_run_is_not_overwritten_by_run(tmp_path):
    config = _config(tmp_path, trials=1)
    evoagent("run", str(config), "--run-dir", str(tmp_path / "r"))
    before = json.loads(evoagent("status", str(tmp_path / "r"), "--json").stdout)
    out = evoagent("run", str(config), "--run-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "already holds a run" in out.stderr
    assert json.loads(evoagent("status", str(tmp_path / "r"), "--json").stdout) == before


def _start_and_hold(tmp_path: Path, *, trials: int, reported: int, stdout: int,
                    background: bool = False) -> tuple[subprocess.Popen, Path]:
    """Starts a run of the quadratic target and holds it after `reported` trials (see held_run)."""
    hold = tmp_path / "hold"
    config = _config(tmp_path, trials=trials, extra="")
    config.write_text(config.read_text().replace("params = {", f'params = {{ hold_file = "{hold}", timeout_s = 600.0,'))
    run_dir = tmp_path / "run"
    return start_and_hold(config, run_dir, hold, reported=reported, stdout=stdout, background=background), run_dir


def test_sigkill_mid_run_then_resume_loses_no_finished_trial(tmp_path):
    proc, run_dir = _start_and_hold(tmp_path, trials=12, reported=3, stdout=subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its sandbox servers, without warning
    proc.communicate()
    before = done_trials(run_dir / "run.db")
    assert 3 <= len(before) < 12
    status = evoagent("status", str(run_dir)).stdout.splitlines()[0]  # the store still says running
    assert re.search(rf"\| not running: process {proc.pid} is gone with [12] trial\(s\) in flight; "
                     rf"resume it with `evoagent resume {re.escape(str(run_dir))}`$", status), status
    watched = evoagent("status", str(run_dir), "--watch", check=False)
    assert watched.returncode == 1 and watched.stderr.strip() == (
        f"evoagent: run {str(run_dir)!r} stopped without finishing (process {proc.pid} is gone); "
        f"resume it with `evoagent resume {run_dir}`")
    (tmp_path / "hold").unlink()
    evoagent("resume", str(run_dir), "--quiet")
    after = done_trials(run_dir / "run.db")
    assert after[: len(before)] == before and len(after) == 12
    status = json.loads(evoagent("status", str(run_dir), "--json").stdout)
    assert status["trials"] == 12 and status["interrupted"] <= 1


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "started-with-sigint-ignored"])
def test_ctrl_c_stops_gracefully_and_records_in_flight_work(tmp_path, background):
    """In the background (SIGINT ignored at start, as `cmd &` / nohup leave it) `kill -INT` stops it the same way."""
    proc, run_dir = _start_and_hold(tmp_path, trials=50, reported=2, stdout=subprocess.PIPE, background=background)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the foreground group
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130) and "stopped: interrupted" in stdout
    con = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    states = dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    con.close()
    assert "running" not in states and states["done"] >= 3  # the held trial is done (its child got the signal) or interrupted


def test_status_and_help_import_no_torch(tmp_path):
    """Building the CLI parser must not import the attention target's torch (it took ~5 s per `evoagent status`)."""
    blocker = ("import sys\nclass B:\n    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'torch':\n            raise ImportError('torch imported')\n"
               "sys.meta_path.insert(0, B())\nfrom evoagent.cli import main\n"
               "assert main(['status', 'not-a-run']) == 2\n"
               "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
               "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False" and "is not a run directory" in out.stderr


def test_adapt_starts_a_new_run_from_the_best_version(tmp_path):
    config = _config(tmp_path, trials=4)
    evoagent("run", str(config), "--run-dir", str(tmp_path / "a"), "--quiet")
    best = evoagent("best", str(tmp_path / "a")).stdout
    evoagent("adapt", str(tmp_path / "a"), "--run-dir", str(tmp_path / "b"), "--trials", "2",
             "--instruction", "keep X near 3", "--quiet")
    con = sqlite3.connect(f"file:{tmp_path / 'b' / 'run.db'}?mode=ro", uri=True)
    seed_files, = con.execute("SELECT c.files FROM trials t JOIN candidates c ON c.id = t.candidate_id "
                              "WHERE t.operator = 'seed'").fetchone()
    stored = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    con.close()
    assert json.loads(seed_files) == {"main.py": best}
    assert stored["instruction"] == "keep X near 3" and stored["adapted_from"] == str(tmp_path / "a")
    assert json.loads(evoagent("status", str(tmp_path / "b"), "--json").stdout)["trials"] == 2


def test_knowledge_section_adds_documents_and_lessons_of_earlier_runs(tmp_path):
    from evoagent import assemble
    from evoagent.config import load_config

    evoagent("run", str(_config(tmp_path, trials=2)), "--run-dir", str(tmp_path / "earlier"), "--quiet")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "house-rules.md").write_text("# House rules\n\n## Tiles\n\nPrefer 128x64 tiles on H100.\n")
    config = _config(tmp_path, trials=1, extra='[knowledge]\npaths = ["notes"]\nlesson_runs = ["earlier"]\n')
    loaded = load_config(config)
    kb = assemble.build_knowledge(loaded, assemble.build_evaluator(loaded))
    assert [lesson.trial_id for lesson in kb.lessons] == [2, 3]
    assert kb.search("prefer tiles on H100", k=1)[0].doc == "house-rules"
    assert {d.name for d in kb.documents} == {"house-rules", "lessons"}  # no attention guides for this target
    out = evoagent("run", str(config), "--run-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "read by the agentic operators only" in out.stderr
    bad = _config(tmp_path, trials=1, extra='[knowledge]\nlesson_runs = ["nowhere"]\n')
    bad.write_text(bad.read_text().replace('"parameter_mutation"', '"heuristic"'))
    out = evoagent("run", str(bad), "--run-dir", str(tmp_path / "r"), check=False)
    assert out.returncode == 2 and "nowhere" in out.stderr and "not a run directory" in out.stderr
    assert not (tmp_path / "r").exists()


def test_resumed_agent_opens_with_a_summary_of_its_earlier_transcript(tmp_path):
    config = _config(tmp_path, trials=1)
    config.write_text(config.read_text().replace('"parameter_mutation"', '"heuristic"')
                      .replace("# evo: range -10 10 step 0.5", "# evo: choices 0.0 2.0 3.0"))
    (tmp_path / "seed.py").write_text(SEED.replace("# evo: range -10 10 step 0.5", "# evo: choices 0.0 2.0 3.0"))
    evoagent("run", str(config), "--run-dir", str(tmp_path / "run"), "--quiet")
    evoagent("resume", str(tmp_path / "run"), "--trials", "2", "--quiet")
    con = sqlite3.connect(f"file:{tmp_path / 'run' / 'run.db'}?mode=ro", uri=True)
    summary, = con.execute("SELECT content FROM messages WHERE trial_id = 3 AND role = 'summary'").fetchone()
    con.close()
    text = json.loads(summary)
    assert text.startswith("Summary of your earlier work (this run was resumed)") and "- lineage" in text
