"""The README's Python example runs as written (with a smaller budget)."""

from __future__ import annotations

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
