"""evoagent works where bm25s, anthropic, openai, pydantic and ray cannot be imported (the GPU machine has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("bm25s", "anthropic", "openai", "pydantic", "ray")

# benchmarks/offline/sitecustomize.py is imported at interpreter start (site imports `sitecustomize`
# from sys.path) and answers every import of these packages with ModuleNotFoundError.
OFFLINE_SITE = ROOT / "benchmarks" / "offline"


@pytest.fixture
def blocked_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(OFFLINE_SITE), str(ROOT / "src")])
    env["EVOAGENT_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("ANTHROPIC_API_KEY", None)
    return env


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)


def test_the_blocker_really_blocks(blocked_env) -> None:
    done = _python("import bm25s", blocked_env)
    assert done.returncode != 0 and "No module named 'bm25s' (blocked" in done.stderr


def test_evoagent_imports_and_checks_the_seed_without_the_optional_packages(blocked_env) -> None:
    code = (
        "import sys, evoagent, evoagent.llm, evoagent.targets.attention\n"
        "from evoagent.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        f"print('loaded:', sorted({{m.split('.')[0] for m in sys.modules}} & set({BLOCKED!r})))\n"
        "sys.exit(rc)\n"
    )
    seed = str(ROOT / "kernels" / "attention" / "fa2.py")
    done = _python(code, blocked_env, "check", "attention", seed, "--suite", "smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok score ") and "TFLOPS (cpu-interpreter: not GPU speed)" in done.stdout.splitlines()[0]
    assert "[check] ok" in done.stdout and "[test] ok" in done.stdout
    assert "loaded: []" in done.stdout


def test_an_offline_run_evolves_the_seed_without_the_optional_packages(blocked_env, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from evoagent.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run_dir = tmp_path / "run"
    done = _python(code, blocked_env, "run", "attention", "--suite", "smoke", "--trials", "1", "--run-dir",
                   str(run_dir), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HeuristicPolicy" in done.stderr or "agentic" in done.stderr
    status = _python(code, blocked_env, "status", str(run_dir), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["trials"] >= 1


def test_knowledge_search_and_the_offline_policy_work_without_bm25s(blocked_env) -> None:
    code = (
        "from evoagent.knowledge import KnowledgeBase\n"
        "from evoagent.llm import HeuristicPolicy\n"
        "hits = KnowledgeBase().search('skip fully masked key blocks in causal attention', k=3)\n"
        "print(hits[0].doc, hits[0].section)\n"
        "HeuristicPolicy(seed=0)\n"
    )
    done = _python(code, blocked_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "causal-masking"


def test_the_anthropic_backend_says_how_to_install_the_sdk(blocked_env) -> None:
    code = (
        "from evoagent.errors import ConfigError\n"
        "from evoagent.llm import Anthropic\n"
        "try:\n"
        "    Anthropic()\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = _python(code, blocked_env)
    assert done.returncode == 0, done.stderr
    assert "pip install 'evoagent[anthropic]'" in done.stdout


def test_the_ray_executor_says_how_to_install_ray_before_creating_a_run(blocked_env, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = "import sys\nfrom evoagent.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    done = _python(code, blocked_env, "run", str(ROOT / "examples" / "circle_packing" / "config.toml"),
                   "--executor", "ray", "--run-dir", str(run_dir), "--quiet")
    assert done.returncode != 0
    assert 'pip install "evoagent[ray]"' in done.stderr and "Traceback" not in done.stderr
    assert not run_dir.exists()
