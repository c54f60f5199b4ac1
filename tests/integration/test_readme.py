"""The README's Python example and main command run as written (with a budget of one trial: each test is one
attention run on the CPU interpreter, 15 to 20 CPU-seconds, most of it the sandbox start and the seed's evaluation)."""

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
    code = block.replace("ea.Budget(trials=6)", "ea.Budget(trials=1)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[1].endswith("kernel.py") and float(lines[0].split()[0]) > 0
    assert len(lines) == 2  # the score line and one line per trial


def test_readme_main_command_prints_scores_with_their_unit_and_where_to_look_next(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "run", "attention", "--trials", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "target attention on cpu-interpreter | operator agentic" in out.stderr  # offline policy, labelled
    assert "recipe " in out.stderr  # the HeuristicPolicy's hypotheses name their recipes
    run_dir = next((tmp_path / "runs").iterdir())
    assert f"run stored in runs/{run_dir.name}" in out.stdout and "trials: 1" in out.stdout
    assert (run_dir / "best" / "kernel.py").is_file()
    unit = "TFLOPS (cpu-interpreter: not GPU speed)"
    assert "seed ok: score " in out.stderr and all(unit in line for line in out.stderr.splitlines()
                                                     if " score " in line and "trial" in line)
    assert f"{unit}, " in next(line for line in out.stdout.splitlines() if line.startswith("best: version"))
    last = out.stdout.rstrip().splitlines()[-3:]  # it ends with where to look next
    assert [line.split()[:2] for line in last] == [["evoagent", "report"], ["evoagent", "resume"],
                                                   ["evoagent", "status"]]
