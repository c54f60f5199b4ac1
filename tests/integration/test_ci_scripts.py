"""The CI's helper venvs see the packages of the Python that makes them, from inside a venv as from outside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def _site(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_a_venv_made_from_inside_a_venv_sees_the_callers_packages_its_own_first(tmp_path):
    caller = tmp_path / "caller"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(caller)], check=True)
    (_site(caller / "bin" / "python") / "caller_only_probe.py").write_text("WHERE = 'caller'\n")
    (_site(caller / "bin" / "python") / "shadowed_probe.py").write_text("WHERE = 'caller'\n")
    made = tmp_path / "made"
    subprocess.run(["bash", str(REPO / ".ci" / "caller_venv.sh"), str(made)], check=True, cwd=REPO,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": str(caller / "bin" / "python")}, timeout=300)
    (_site(made / "bin" / "python") / "shadowed_probe.py").write_text("WHERE = 'own'\n")
    probe = "import caller_only_probe, shadowed_probe; print(caller_only_probe.WHERE, shadowed_probe.WHERE)"
    out = subprocess.run([str(made / "bin" / "python"), "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["caller", "own"]
