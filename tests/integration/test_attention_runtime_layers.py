"""The runtime layers hold on their own: with the static scan skipped, the capture's op trace and timer check
and the trusted replay's checks still refuse cheating kernels (the scan is feedback, not the boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cheat_files import cheat

from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator

CHEATS = Path(__file__).parent / "cheats"


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    cache = tmp_path_factory.getbasetemp() / "attention-cache" / "static"
    return AttentionEvaluator("smoke", cache_dir=cache, seed=21, seeds=2, extra_shapes=2, reps=2)


@pytest.fixture(scope="module")
def sandbox(evaluator: AttentionEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def _run(evaluator: AttentionEvaluator, sandbox: Sandbox, name: str, stage: str):
    return evaluator.evaluate(cheat(name), sandbox, stages=(stage,))


def test_library_attention_is_caught_by_the_op_trace(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "library_attention_alias.py", "test")
    assert result.status is Status.ILLEGAL
    assert "launched no Triton kernel" in result.reason or "outside a Triton kernel" in result.reason


def test_library_matmul_found_by_string_is_caught_by_the_op_trace(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "library_matmul_getattr.py", "test")
    assert result.status is Status.ILLEGAL


def test_searching_the_heap_finds_no_reference_to_copy(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "read_gc.py", "test")  # the reference only exists in the trusted process
    assert result.status in (Status.INCORRECT, Status.ILLEGAL), result.reason


def test_writing_into_inherited_descriptors_cannot_forge_a_pass(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "fake_channel.py", "test")
    assert result.status is not Status.OK and result.score is None


def test_timers_replaced_at_import_make_the_benchmark_illegal(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "patch_timer.py", "benchmark")
    assert result.status is Status.ILLEGAL and "time.perf_counter" in result.reason


def test_the_output_of_a_timed_call_is_checked_too(evaluator, sandbox) -> None:
    result = _run(evaluator, sandbox, "skip_work.py", "benchmark")  # the benchmark alone: no test stage before it
    assert result.status is Status.INCORRECT and ", call 1 (inputs seed" in result.reason, result.reason
