"""A failing model API ends a trial, not the run; the CLI's model settings and start line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine_targets import SEED
from fake_messages_server import FakeMessagesServer

HERE = Path(__file__).parent
KEY = "sk-ant-test-outage-271828"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True,
                          env=env, timeout=240)


def _config(tmp_path: Path, *, trials: int, llm: str, engine: str = "") -> Path:
    (tmp_path / "seed.py").write_text(SEED)
    path = tmp_path / "config.toml"
    path.write_text(
        f'seeds = ["seed.py"]\n[evaluator]\ntarget = "{HERE / "engine_targets.py"}:Quadratic"\n'
        '[operator]\nkind = "agentic"\nparams = { critique = false, supervisor = false }\n'
        f"[operator.llm]\n{llm}\n[budget]\ntrials = {trials}\n[engine]\nmodel_backoff_s = 0\n{engine}")
    return path


def _env(server: FakeMessagesServer | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    if server is not None:
        env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.url)
    return env


def _edit(server: FakeMessagesServer, old: str, x: str) -> None:
    server.tool_uses([("edit_file", {"path": "main.py", "old": f"X = {old}", "new": f"X = {x}"})],
                     thinking=f"try X = {x}")
    server.tool_use("submit", {"hypothesis": f"X = {x} is closer to 3"})


def test_an_outage_for_one_trial_labels_it_and_the_run_goes_on(tmp_path: Path) -> None:
    llm = 'model = "claude-future-1"\nthinking = "adaptive"\nmax_retries = 1\nbackoff_s = 0'
    config = _config(tmp_path, trials=3, llm=llm)
    with FakeMessagesServer() as server:
        server.error(529, "overloaded_error", "Overloaded").error(529, "overloaded_error", "Overloaded")
        _edit(server, "0.0", "1.0")
        _edit(server, "1.0", "2.0")
        out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=_env(server))
        assert out.returncode == 0, out.stderr + out.stdout
        assert server.pending == 0 and server.rejected == []
    assert "operator agentic, model claude-future-1 (thinking adaptive" in out.stderr
    assert "price unknown" in out.stderr
    assert "model_error" in out.stderr and "HTTP 529 overloaded_error: Overloaded" in out.stderr
    status = json.loads(_cli("status", str(tmp_path / "run"), "--json").stdout)
    assert status["by_status"] == {"model_error": 1, "ok": 2} and status["trials"] == 3
    assert status["tokens"] > 0 and status["cost_usd"] == 0 and status["unpriced_calls"] == 4
    assert "unknown for 4 call(s)" in _cli("status", str(tmp_path / "run")).stdout
    assert "stopped: trial budget of 3 reached" in out.stdout


def test_the_run_stops_after_k_failed_trials_in_a_row(tmp_path: Path) -> None:
    config = _config(tmp_path, trials=10, llm='model = "claude-sonnet-4-6"\nmax_retries = 0',
                     engine="model_failure_limit = 2")
    with FakeMessagesServer() as server:
        for _ in range(2):
            server.error(500, "api_error", "Internal server error")
        out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=_env(server))
    assert out.returncode == 0, out.stderr + out.stdout
    assert "stopped: the model API failed in 2 trials in a row (last: model API failed: Anthropic Messages API " \
           "request for 'claude-sonnet-4-6' failed: HTTP 500 api_error: Internal server error)" in out.stdout
    assert "model API failing (1 trial(s) in a row): next trial in 0 s" in out.stderr


def test_a_backend_asked_for_without_its_key_is_refused_at_start(tmp_path: Path) -> None:
    config = _config(tmp_path, trials=1, llm='model = "claude-sonnet-5-5"')
    out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=_env(None))
    assert out.returncode == 2 and "ANTHROPIC_API_KEY is not set" in out.stderr
    assert not (tmp_path / "run").exists()
    out = _cli("run", "attention", "--model", "claude-sonnet-5-5", "--run-dir", str(tmp_path / "r2"), env=_env(None))
    assert out.returncode == 2 and "ANTHROPIC_API_KEY is not set" in out.stderr


def test_agentic_without_a_key_says_it_runs_offline(tmp_path: Path) -> None:
    (tmp_path / "seed.py").write_text(SEED)
    config = tmp_path / "config.toml"
    config.write_text(f'seeds = ["seed.py"]\n[evaluator]\ntarget = "{HERE / "engine_targets.py"}:Quadratic"\n'
                      '[operator]\nkind = "agentic"\n[budget]\ntrials = 1\n')
    out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), "--usd", "2.5", env=_env(None))
    assert out.returncode == 0, out.stderr
    assert "model offline HeuristicPolicy" in out.stderr and "ANTHROPIC_API_KEY is not set" in out.stderr
    assert "budget 1 trials, $2.50" in out.stderr
