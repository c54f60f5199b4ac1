"""`evoagent run examples/circle_packing/config.toml` with the agent on an OpenAI-compatible local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_messages_server import FakeMessagesServer
from fake_openai_server import FakeOpenAIServer

pytest.importorskip("openai")

EXAMPLE = Path(__file__).parents[2] / "examples" / "circle_packing"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _example_config(tmp_path: Path, operator: str) -> Path:
    """The example's config with absolute paths and this agentic operator instead of parameter mutation."""
    text = (EXAMPLE / "config.toml").read_text()
    text = text.replace('seeds = ["packing.py"]', f'seeds = ["{EXAMPLE / "packing.py"}"]')
    text = text.replace('target = "evaluator.py:', f'target = "{EXAMPLE / "evaluator.py"}:')
    text = text.replace('[operator]\nkind = "parameter_mutation"\nparams = { max_changes = 2 }\n', operator)
    text = text.replace("trials = 60", "trials = 2")
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _edit(server: FakeOpenAIServer, old: str, new: str, **kwargs: object) -> None:
    server.tool_call("edit_file", {"path": "packing.py", "old": old, "new": new}, **kwargs)
    server.tool_call("submit", {"hypothesis": f"{new.split('#')[0].strip()} packs more"}, **kwargs)


def test_the_circle_packing_example_runs_on_an_openai_compatible_server(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        operator = ('[operator]\nkind = "agentic"\nparams = { critique = false, supervisor = false }\n'
                    f'[operator.llm]\nbackend = "openai"\nmodel = "local-coder"\nbase_url = "{server.base_url}"\n'
                    'api_key_env = ""\nmax_retries = 1\nbackoff_s = 0\n'
                    'prices = { input_per_mtok = 0.2, output_per_mtok = 0.6, cache_write_per_mtok = 0, '
                    'cache_read_per_mtok = 0.02 }\n')
        config = _example_config(tmp_path, operator)
        _edit(server, "ROWS = 4  # evo: choices 4 5 6", "ROWS = 5  # evo: choices 4 5 6")
        server.error(503, "warming up")  # retried once
        _edit(server, "MARGIN = 0.12", "MARGIN = 0.1")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
        out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=env)
        assert out.returncode == 0, out.stderr + out.stdout
        assert server.pending == 0 and server.rejected == []
        tool_messages = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "model local-coder at http://127.0.0.1" in out.stderr
    assert tool_messages and tool_messages[-1]["content"].startswith("edited packing.py")
    status = json.loads(_cli("status", str(tmp_path / "run"), "--json", env=env).stdout)
    assert status["trials"] == 2 and status["tokens"] == 4 * 230 and status["cost_usd"] > 0
    assert status["models"][0]["model"] == "local-coder" and status["models"][0]["trials"] == 2
    assert "model local-coder: trials 2" in _cli("status", str(tmp_path / "run"), env=env).stdout


def test_a_two_model_ensemble_from_config_records_the_model_of_each_trial(tmp_path: Path) -> None:
    with FakeOpenAIServer() as local, FakeMessagesServer() as claude:
        operator = ('[operator]\nkind = "agentic"\nparams = { critique = false, supervisor = false }\n'
                    '[operator.llm]\nexploration = 0.3\n'
                    f'[[operator.models]]\nbackend = "openai"\nmodel = "local-coder"\nbase_url = "{local.base_url}"\n'
                    'api_key_env = ""\nweight = 2\n'
                    f'[[operator.models]]\nbackend = "anthropic"\nmodel = "claude-haiku-4-5"\nthinking = "off"\n'
                    f'base_url = "{claude.url}"\nmax_tokens = 4000\n')
        config = _example_config(tmp_path, operator)
        _edit(local, "ROWS = 4  # evo: choices 4 5 6", "ROWS = 5  # evo: choices 4 5 6")
        claude.tool_use("edit_file", {"path": "packing.py", "old": "MARGIN = 0.12", "new": "MARGIN = 0.1"})
        claude.tool_use("submit", {"hypothesis": "a smaller margin"})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
        env["ANTHROPIC_API_KEY"] = "sk-ant-test-ensemble"
        out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=env)
        assert out.returncode == 0, out.stderr + out.stdout
        assert local.pending == 0 and claude.pending == 0 and claude.rejected == [] and local.rejected == []
    assert "ensemble of local-coder" in out.stderr
    status = json.loads(_cli("status", str(tmp_path / "run"), "--json", env=env).stdout)
    assert {m["model"]: m["trials"] for m in status["models"]} == {"local-coder": 1, "claude-haiku-4-5": 1}
    shown = _cli("show", str(tmp_path / "run"), "3", "--no-transcript", env=env).stdout
    assert "model claude-haiku-4-5" in shown
