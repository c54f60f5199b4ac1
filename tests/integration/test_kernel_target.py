"""The kernel target on the softmax example: honest, reference-calling, wrong and result-reusing ModelNew files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.kernel import KernelEvaluator, reference_seed
from evoagent.targets.kernel.problem import Problem

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "kernels"
CANDIDATES = Path(__file__).parent / "kernel_candidates"
SOFTMAX = EXAMPLES / "softmax.py"


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> KernelEvaluator:
    return KernelEvaluator(SOFTMAX, cache_dir=tmp_path_factory.getbasetemp() / "kernel-cache" / "static", seed=3,
                           baselines=False)


@pytest.fixture(scope="module")
def sandbox(evaluator: KernelEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def _evaluate(evaluator: KernelEvaluator, sandbox: Sandbox, path: Path, stages: tuple[str, ...] | None = None):
    return evaluator.evaluate(Candidate.from_path(path, entry="kernel.py"), sandbox, stages=stages)


def test_the_honest_softmax_passes_every_stage_with_a_speedup(evaluator: KernelEvaluator, sandbox: Sandbox) -> None:
    result = _evaluate(evaluator, sandbox, EXAMPLES / "solutions" / "softmax.py")
    assert result.status is Status.OK, result.reason
    test = result.stage("test")
    assert test.details["cases"] == 2 * 3 * 2  # two shapes (one ragged) x two seeds x three input modes
    assert any(int(s.split("dim=")[1]) % 2 == 1 for s in test.details["shapes"])  # the ragged shape is odd
    bench = result.stage("benchmark")
    assert bench.details["eager_ms"] > 0 and bench.details["candidate_ms"] > 0
    assert result.metrics["problem"] == pytest.approx(bench.details["eager_ms"] / bench.details["candidate_ms"])
    assert bench.details["authoritative"] is False
    assert result.stage("check").details["static"]["sm_90a"]["kernels"][0]["kernel"] == "_softmax_rows"


def test_a_candidate_running_the_reference_torch_ops_is_illegal(evaluator: KernelEvaluator, sandbox: Sandbox) -> None:
    result = _evaluate(evaluator, sandbox, CANDIDATES / "softmax_calls_reference.py", ("check", "test"))
    assert result.status is Status.ILLEGAL
    assert "aten.exp" in result.reason and "outside its kernels" in result.reason


def test_a_kernel_wrong_on_ragged_rows_is_incorrect(evaluator: KernelEvaluator, sandbox: Sandbox) -> None:
    result = _evaluate(evaluator, sandbox, CANDIDATES / "softmax_wrong.py", ("check", "test"))
    assert result.status is Status.INCORRECT
    assert "outside tolerance" in result.reason


def test_a_candidate_reusing_its_results_is_not_ok(evaluator: KernelEvaluator, sandbox: Sandbox) -> None:
    result = _evaluate(evaluator, sandbox, CANDIDATES / "softmax_reuses_result.py", ("check", "test"))
    assert result.status in (Status.ILLEGAL, Status.INCORRECT), result.reason


def test_the_library_softmax_is_refused_by_the_static_scan(evaluator: KernelEvaluator, sandbox: Sandbox,
                                                           tmp_path: Path) -> None:
    text = reference_seed(Problem.load(SOFTMAX)).replace("# evoagent:", "# not the seed:")
    result = evaluator.evaluate(Candidate.from_source(text, entry="kernel.py"), sandbox)
    assert result.status is Status.ILLEGAL and "library softmax" in result.reason


def test_the_reference_seed_is_scored_as_the_baseline(evaluator: KernelEvaluator, sandbox: Sandbox) -> None:
    seed = Candidate.from_source(reference_seed(Problem.load(SOFTMAX)), entry="kernel.py")
    result = evaluator.evaluate(seed, sandbox)
    assert result.status is Status.OK and result.score == 0.0
    assert result.stage("benchmark").details["reference"] is True
    assert result.stage("benchmark").details["eager_ms"] > 0


def test_check_kernel_prints_the_attention_json_shape() -> None:
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", "check", "kernel", str(SOFTMAX),
                          str(CANDIDATES / "softmax_wrong.py"), "--no-compile", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    data = json.loads(out.stdout)
    assert out.returncode == 1 and data["status"] == "incorrect"
    assert {"status", "reason", "score", "language", "metrics", "device", "stages", "static"} <= set(data)
    assert data["language"] == "triton" and [s["name"] for s in data["stages"]] == ["check", "test"]


def test_a_result_remembered_by_input_address_is_caught_by_the_benchmark(evaluator: KernelEvaluator,
                                                                         sandbox: Sandbox) -> None:
    result = _evaluate(evaluator, sandbox, CANDIDATES / "softmax_memo_by_pointer.py")
    assert result.stage("test") is not None and result.stage("test").ok  # fresh tensors every test case
    assert result.status is Status.INCORRECT and result.stage("benchmark") is not None
    assert "timed call 2 of" in result.reason and "same tensors" in result.reason
