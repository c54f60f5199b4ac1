"""What a new user meets: a target of their own, run with the offline policy, with a bug in their evaluator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]

SORTER = '''\
BLOCK = 4  # evo: choices 2 4 8


def sort(xs):
    return sorted(xs)
'''

HELPERS = '''\
def data(n):
    return [(7 * i) % 11 for i in range(n)]
'''

# The bug: the table of weights forgets BLOCK = 8, so judging that version raises KeyError on line 24.
EVALUATOR = '''\
import importlib

from evoagent import Evaluator, StageResult, Status
from helpers import data


def run_sort():
    sorter = importlib.import_module("sorter")
    xs = data(50)
    return sorter.sort(xs) == sorted(xs), sorter.BLOCK


class SortEvaluator(Evaluator):
    name = "sorter"
    score_unit = "points"
    entry = "sorter.py"
    stages = ("judge",)

    def judge(self, candidate, sandbox):
        out = sandbox.call(run_sort, files=candidate.files, timeout_s=30)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        weights = {2: 1.0, 4: 1.1}
        sorted_ok, block = out.value; points = weights[block]
        if not sorted_ok:
            return StageResult.fail(Status.INCORRECT, "not sorted")
        return StageResult(metrics={"points": points})
'''
BUG_LINE = 24

CONFIG = '''\
seeds = ["sorter.py"]
[evaluator]
target = "evaluator.py:SortEvaluator"
[operator]
kind = "agentic"
[budget]
trials = 8
'''


def evoagent(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


def test_a_new_user_sees_their_evaluator_bug_with_file_and_line_and_an_honest_offline_policy(tmp_path):
    target = tmp_path / "sorter"
    target.mkdir()
    for name, text in (("sorter.py", SORTER), ("helpers.py", HELPERS), ("evaluator.py", EVALUATOR),
                       ("config.toml", CONFIG)):
        (target / name).write_text(text)
    assert EVALUATOR.splitlines()[BUG_LINE - 1].strip().startswith("sorted_ok, block = out.value")

    run = evoagent("run", "sorter/config.toml", "--run-dir", "run", cwd=tmp_path)  # no ANTHROPIC_API_KEY: offline
    said = run.stdout + run.stderr
    assert run.returncode == 0, said
    assert "Traceback" not in said and "model ended" not in said and "without calling a tool" not in said
    assert "stopped: the offline policy has nothing more to try for this target: 1 parameter, 0 recipes tried" \
        in said
    assert f"KeyError: 8 at evaluator.py:{BUG_LINE}" in said  # the progress line names the user's file and line
    assert "duplicate" not in said  # no value it already tried

    broken = next(line.split() for line in evoagent("status", "run", cwd=tmp_path).stdout.splitlines()
                  if line.split()[:1] == ["trial"] and "harness_error" in line)
    trial = broken[1]
    shown = evoagent("show", "run", trial, cwd=tmp_path).stdout
    assert f'File "{target / "evaluator.py"}", line {BUG_LINE}, in judge' in shown
    first = shown.index("in the evaluator's code")
    assert first < shown.index("Traceback (most recent call last)")  # the user's frames come first
    assert "candidate None" not in shown and "parent None" not in shown

    assert evoagent("report", "run", cwd=tmp_path).returncode == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert f"evaluator.py:{BUG_LINE}" in page and f"line {BUG_LINE}, in judge" in page


def tutorial_files(page: str) -> dict[str, str]:
    """The fenced blocks of the tutorial whose first line names a file of the sorter example."""
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", page, flags=re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# sorter/"):
            files[first.removeprefix("# ")] = block
    return files


def test_the_tutorials_complete_target_runs_as_written(tmp_path):
    files = tutorial_files((REPO / "docs" / "tutorial.md").read_text())
    assert sorted(files) == ["sorter/config.toml", "sorter/evaluator.py", "sorter/sorter.py"]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    run = evoagent("run", "sorter/config.toml", "--run-dir", "run", "--trials", "2", cwd=tmp_path)
    said = run.stdout + run.stderr
    assert run.returncode == 0, said
    assert "seed ok: score" in said and "sorts/s" in said and "best: version" in said
    assert "Traceback" not in said
