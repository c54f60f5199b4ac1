"""`evoagent run` on a kernel problem with the offline policy: the reference seed, then a committed template kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evoagent.run import Run

ROOT = Path(__file__).resolve().parents[2]


def test_an_offline_run_on_softmax_commits_a_kernel_that_passes_its_test(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(f'''
[evaluator]
target = "kernel:{ROOT / "examples" / "kernels" / "softmax.py"}"
params = {{ baselines = false, seed = 7 }}

[budget]
trials = 1
''')
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "run", str(config), "--run-dir",
                          str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    with Run.open(tmp_path / "run", readonly=True) as run:
        trials = run.store.trials(state="done")
        seed, first = trials[0], trials[1]
        assert seed.operator == "seed" and seed.score == 0.0  # the reference, scored as the baseline
        assert first.committed and first.status.value == "ok" and first.score is not None and first.score > 0
        assert "template-row-softmax" in first.hypothesis
        result = run.store.result(first.candidate_id)
        assert result is not None and result.stage("test") is not None and result.stage("test").ok
