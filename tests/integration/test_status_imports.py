"""`evoagent status` reads the store only: it imports no torch, whatever the target."""

from __future__ import annotations

import subprocess
import sys

import evoagent as ea
from evoagent.targets.attention import AttentionEvaluator, default_seed

PROBE = """
import sys
from evoagent.cli import main
code = main(["status", sys.argv[1]])
assert code == 0, code
heavy = sorted(name for name in ("torch", "triton", "numpy.typing", "plotly") if name in sys.modules)
print("heavy modules:", heavy)
"""


def test_status_of_an_attention_run_imports_no_torch(tmp_path):
    run = ea.Run.create(tmp_path / "run", evaluator=AttentionEvaluator(suite="smoke"), seeds=[default_seed()])
    run.close()
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "target attention" in out.stdout and "TFLOPS" not in out.stderr
    assert "heavy modules: []" in out.stdout, out.stdout
