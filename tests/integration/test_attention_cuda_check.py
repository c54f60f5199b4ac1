"""A CUDA candidate checked without a GPU: nvcc compiles it here, the static report counts its tensor-core ops.

nvcc costs one to two seconds per compile, so the module compiles the small candidate once per arch
(through the CLI, which also starts the sandbox: ~10 s in all, the reason this module is slower
than 5 s) and a broken copy once; the in-process checks after that read the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.targets.attention import AttentionEvaluator

CANDIDATE = Path(__file__).parent / "cuda_candidates" / "tiny_mma.py"
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file(),
                                reason="needs nvcc (the CUDA toolkit)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cuda-check")


@pytest.fixture(scope="module")
def checked(cache: Path) -> dict:
    env = {**os.environ, "EVOAGENT_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "check", "attention", str(CANDIDATE), "--arch",
                          "sm_90a", "--arch", "sm_100a", "--json"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 1, out.stderr  # needs_device is not ok
    return dict(json.loads(out.stdout))


def test_the_check_reports_registers_and_tensor_core_counts_per_arch(checked: dict) -> None:
    assert checked["language"] == "cuda"
    for arch in ("sm_90a", "sm_100a"):
        static = checked["static"][arch]
        assert static["ok"] and static["registers"] > 0 and static["spill_bytes"] == 0
        assert static["tensor_core"].get("HMMA", 0) > 0  # wmma::mma_sync on the tensor cores
    kernels = checked["stages"][0]["details"]["static"]["sm_90a"]["kernels"]
    assert [k["kernel"] for k in kernels] == ["tile_scores"] and kernels[0]["ptx"]


def test_without_a_gpu_the_verdict_is_needs_device_never_ok(checked: dict) -> None:
    assert checked["status"] == "needs_device" and checked["score"] is None
    assert [(s["name"], s["status"]) for s in checked["stages"]] == [("check", "ok"), ("test", "needs_device")]
    assert "runs only on a GPU" in checked["reason"]


def test_the_same_source_is_not_compiled_again(checked: dict, cache: Path) -> None:
    evaluator = AttentionEvaluator("smoke", archs=("sm_90a", "sm_100a"), cache_dir=cache / "static")  # the CLI's
    stage = evaluator.check(Candidate.from_source(CANDIDATE.read_text(), entry="kernel.py"), None)  # type: ignore
    assert stage.ok and all(report["cached"] for report in stage.details["static"].values())


def test_a_compile_error_names_its_kernel_py_line(tmp_path: Path) -> None:
    lines = CANDIDATE.read_text().splitlines()
    broken_line = next(i for i, line in enumerate(lines, 1) if "wmma::fill_fragment" in line)
    lines[broken_line - 1] += " float x = not_declared;"
    evaluator = AttentionEvaluator("smoke", cache_dir=tmp_path / "static")
    result = evaluator.evaluate(Candidate.from_source("\n".join(lines), entry="kernel.py"), None)  # type: ignore
    assert result.status is Status.COMPILE_ERROR
    assert f'kernel.py line {broken_line}: identifier "not_declared" is undefined' in result.reason
    assert f"kernel.py({broken_line}): error" in result.stages[0].logs
