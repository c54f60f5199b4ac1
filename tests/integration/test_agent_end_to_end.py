"""`evoagent run` on the attention target with the real anthropic client against a local fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fake_messages_server import FakeMessagesServer

from evoagent.targets.attention import default_seed

KEY = "sk-ant-test-do-not-store-3141592653"
OLD = "NUM_WARPS = 8  # evo: choices 4 8"
NEW = "NUM_WARPS = 4  # evo: choices 4 8"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True,
                          env=env, timeout=400)


def test_claude_edits_repairs_submits_and_the_engine_commits(tmp_path):
    config = tmp_path / "attention.toml"
    config.write_text(f'seeds = ["{default_seed()}"]\n[evaluator]\ntarget = "attention"\n'
                      'params = { suite = "smoke" }\n'
                      '[population]\ntolerance = 0.9\n'  # interpreter timings are noise; judge the edit only
                      '[operator]\nkind = "agentic"\nparams = { critique = true }\n'
                      '[operator.llm]\nmodel = "claude-sonnet-5-5"\nthinking = "adaptive"\n[budget]\ntrials = 1\n')
    with FakeMessagesServer() as server:
        # Every turn thinks first: the server checks that each thinking block comes back unchanged.
        for name, tool_input in [
            ("lineage", {}), ("read_file", {"path": "kernel.py"}),
            ("edit_file", {"path": "kernel.py", "old": OLD, "new": "NUM_WARPS = (  # broken"}),
            ("compile", {}),  # fails: the agent sees the syntax error and repairs it
            ("edit_file", {"path": "kernel.py", "old": "NUM_WARPS = (  # broken", "new": NEW}),
            ("test", {}), ("submit", {"hypothesis": "4 warps: fewer registers per thread"}),
            ("submit", {"hypothesis": "4 warps: fewer registers per thread (diff reviewed)"}),
        ]:
            server.tool_uses([(name, tool_input)], thinking=f"next: {name}", model="claude-sonnet-5-5")
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}
        out = _cli("run", str(config), "--run-dir", str(tmp_path / "run"), env=env)
        assert out.returncode == 0, out.stderr + out.stdout
        assert server.pending == 0 and server.rejected == []
        assert all(r.body["thinking"] == {"type": "adaptive"} for r in server.requests)
        sent_back = [b for b in server.requests[-1].body["messages"][-2]["content"] if b["type"] == "thinking"]
        assert sent_back and sent_back[0]["thinking"] == "next: submit"
        tool_results = [b for r in server.requests for m in r.body["messages"] if isinstance(m["content"], list)
                        for b in m["content"] if b.get("type") == "tool_result"]
    assert any(r["content"].startswith("status: compile_error") for r in tool_results)
    status = json.loads(_cli("status", str(tmp_path / "run"), "--json").stdout)
    assert status["trials"] == 1 and status["committed"] == 1 and status["by_status"] == {"ok": 1}
    assert status["cost_usd"] > 0 and status["unpriced_calls"] == 0  # Sonnet 5.5's price is published
    shown = _cli("show", str(tmp_path / "run"), "2").stdout
    assert "+" + NEW in shown and "[tool_use edit_file]" in shown and "status: compile_error" in shown
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
