"""Bad candidates get the right label and a reason an agent can act on (line numbers, the limit, the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator, default_seed

SEED = default_seed().read_text()


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    cache = tmp_path_factory.getbasetemp() / "attention-cache" / "static"
    return AttentionEvaluator("smoke", cache_dir=cache, seed=3, seeds=1, extra_shapes=1)


@pytest.fixture(scope="module")
def sandbox(evaluator: AttentionEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def _evaluate(evaluator: AttentionEvaluator, sandbox: Sandbox, source: str, stages=None):
    return evaluator.evaluate(Candidate.from_source(source, entry="kernel.py"), sandbox, stages=stages)


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_a_kernel_that_does_not_compile_reports_the_file_line(evaluator, sandbox) -> None:
    broken = SEED.replace("m_new = tl.maximum(m_i, tl.max(qk, 1))", "m_new = tl.maximum(m_i, tl.max(qk, 1, 2, 3))")
    assert broken != SEED
    result = _evaluate(evaluator, sandbox, broken)
    assert result.status is Status.COMPILE_ERROR
    assert result.reason.startswith("check: sm_90a: kernel _attention_forward")
    assert f"line {_line_of(broken, 'tl.max(qk, 1, 2, 3)')}:" in result.reason


def test_too_much_shared_memory_is_a_compile_error_with_the_limit(evaluator, sandbox) -> None:
    greedy = SEED.replace("BLOCK_N = 64  # evo", "BLOCK_N = 256  # evo").replace("NUM_STAGES = 3  # evo",
                                                                                "NUM_STAGES = 4  # evo")
    result = _evaluate(evaluator, sandbox, greedy)
    assert result.status is Status.COMPILE_ERROR
    assert "over the sm_90a limit of 232448" in result.reason and "num_stages" in result.reason


def test_wrong_output_dtype_is_incorrect(evaluator, sandbox) -> None:
    wrong = SEED.replace("out = torch.empty_like(q)", "out = torch.empty_like(q, dtype=torch.float32)")
    result = _evaluate(evaluator, sandbox, wrong, stages=("test",))
    assert result.status is Status.INCORRECT and "output dtype float32, expected float16" in result.reason


def test_wrong_output_shape_is_incorrect(evaluator, sandbox) -> None:
    wrong = SEED.replace("    return out\n", "    return out[:, :, :, : head_dim // 2]\n", 1)
    result = _evaluate(evaluator, sandbox, wrong, stages=("test",))
    assert result.status is Status.INCORRECT and "output shape" in result.reason


def test_a_wrapper_that_raises_is_a_compile_error_naming_its_line(evaluator, sandbox) -> None:
    raising = SEED.replace("    out = torch.empty_like(q)\n", "    raise ValueError('not today')\n", 1)
    result = _evaluate(evaluator, sandbox, raising)
    assert result.status is Status.COMPILE_ERROR
    assert "ValueError: not today" in result.reason and f"line {_line_of(raising, 'not today')}" in result.reason


def test_a_module_that_fails_at_import_is_a_crash_with_the_traceback(evaluator, sandbox) -> None:
    result = evaluator.evaluate(Candidate.from_source(SEED + "\nundefined_name + 1\n", entry="kernel.py"), sandbox,
                                stages=("test",))
    assert result.status is Status.CRASH and "NameError" in result.reason


def test_the_cli_reports_a_missing_file(tmp_path: Path) -> None:
    import argparse

    from evoagent.targets.attention.cli import add_check_parser

    parser = argparse.ArgumentParser()
    add_check_parser(parser.add_subparsers())
    args = parser.parse_args(["check", "attention", str(tmp_path / "missing.py")])
    with pytest.raises(FileNotFoundError, match="missing.py"):
        args.func(args)


@pytest.mark.parametrize("stages", [("check",), ("test",)])
def test_running_out_of_memory_in_any_stage_is_oom_never_a_compile_error(evaluator, sandbox, stages) -> None:
    hungry = SEED.replace("out = torch.empty_like(q)", "out = torch.empty_like(q)\n    torch.empty(1 << 50, dtype=torch.uint8)")
    assert hungry != SEED
    result = _evaluate(evaluator, sandbox, hungry, stages=stages)
    assert result.status is Status.OOM, result.reason
    assert "allocate" in result.reason
