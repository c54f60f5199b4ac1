"""The README's Python example runs as written (with a smaller budget)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(block.strip().splitlines()) <= 16
    code = block.replace("ea.Budget(trials=6)", "ea.Budget(trials=2)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[1].endswith("kernel.py") and float(lines[0].split()[0]) > 0
    assert len(lines) == 3  # the score line and one line per trial


def test_readme_main_command_runs_offline_and_prints_where_the_run_is(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "run", "attention", "--trials", "2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "target attention on cpu-interpreter | operator agentic" in out.stderr  # offline policy, labelled
    assert "recipe " in out.stderr  # the HeuristicPolicy's hypotheses name their recipes
    run_dir = next((tmp_path / "runs").iterdir())
    assert f"run stored in runs/{run_dir.name}" in out.stdout and "trials: 2" in out.stdout
    assert (run_dir / "best" / "kernel.py").is_file()
