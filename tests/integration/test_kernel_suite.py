"""`evoagent suite kernel FOLDER`: one search per problem file, a table and suite.json, and a second call resumes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_suite_runs_each_problem_reports_a_table_and_resumes_as_a_whole(tmp_path: Path) -> None:
    folder = tmp_path / "problems"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "kernels" / "softmax.py", folder / "softmax.py")
    (folder / "helpers.py").write_text("X = 1\n")  # not a problem: skipped
    command = [sys.executable, "-m", "evoagent.cli", "suite", "kernel", str(folder), "--trials", "1",
               "--run-dir", str(tmp_path / "suite"), "--shape", "dim=256", "--no-compile", "--quiet"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| softmax | 1 | yes |" in out.stdout and "fast_1 = " in out.stdout
    data = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert [r["problem"] for r in data["rows"]] == ["softmax"] and data["rows"][0]["correct"] is True
    assert (tmp_path / "suite" / "suite.md").read_text().count("| softmax |") == 1

    again = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert again.returncode == 0 and "| softmax | 1 | yes |" in again.stdout
    assert "evoagent: run" not in again.stderr  # the finished problem is not searched again
