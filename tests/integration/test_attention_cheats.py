"""Every cheat category of DESIGN.md "Honest scores": a cheating kernel file never gains a score.

Each file under cheats/ says in its docstring what it tries. The test runs the real cascade (static
scan, AOT compile, launch-plan capture, the trusted replay and its verdicts) and checks the final
label and that the reason names the problem. A few tricks simply have no effect since the timed calls
replay the captured launches and never run the wrapper: those end `ok`, timing exactly the launches the
honest kernel makes (NO_EFFECT). `_honest_kernel.py`, the base most cheats start from, must pass:
otherwise the harness would be rejecting everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cheat_files import cheat

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator

CHEATS = Path(__file__).parent / "cheats"

# file -> (allowed final labels, words the reason must contain)
EXPECTED = {
    "library_attention_alias.py": ({Status.ILLEGAL}, "scaled_dot_product_attention"),
    "library_matmul_getattr.py": ({Status.ILLEGAL}, "getattr"),
    "library_softmax_eval.py": ({Status.ILLEGAL}, "eval"),
    "torch_ops_in_wrapper.py": ({Status.ILLEGAL}, "outside a Triton kernel"),
    "replay_cache.py": ({Status.ILLEGAL}, "computed with torch operations"),
    "return_input.py": ({Status.ILLEGAL}, "not one the wrapper allocated in this call"),
    "unwritten_tail.py": ({Status.INCORRECT}, "NaN"),
    "mutate_input.py": ({Status.ILLEGAL}, "modified their input k"),
    "side_thread.py": ({Status.ILLEGAL}, "threading"),
    "side_stream.py": ({Status.ILLEGAL}, "torch.cuda.Stream"),
    "patch_timer.py": ({Status.ILLEGAL}, "time"),
    "read_gc.py": ({Status.ILLEGAL}, "'gc'"),
    "low_precision.py": ({Status.INCORRECT}, "outside tolerance"),
    "fake_channel.py": ({Status.ILLEGAL}, "'os'"),
    "read_secret.py": ({Status.ILLEGAL}, "'os'"),
    "skip_work.py": ({Status.INCORRECT}, "outside tolerance"),
    "honest_when_checked.py": ({Status.ILLEGAL}, "'sys'"),
    "scope_shadowed_getattr.py": ({Status.ILLEGAL}, "binds getattr"),
    "frame_through_generator.py": ({Status.ILLEGAL}, "accesses .f_back"),
    "annotation_evaluated.py": ({Status.ILLEGAL}, "string annotation"),
    "path_through_triton.py": ({Status.ILLEGAL}, "triton.runtime.build"),
    "native_code_through_triton_build.py": ({Status.ILLEGAL}, "compiles and loads C code"),
    "patch_sync_indirect.py": ({Status.ILLEGAL}, "torch.cuda.synchronize"),
}
# Tricks the replay leaves without effect: the timed calls replay the captured launches, never the wrapper.
NO_EFFECT = ("memoise_by_pointer.py",)


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    cache = tmp_path_factory.getbasetemp() / "attention-cache" / "static"
    return AttentionEvaluator("smoke", cache_dir=cache, seed=11, seeds=2)


@pytest.fixture(scope="module")
def sandbox(evaluator: AttentionEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def test_every_cheat_file_has_an_expectation() -> None:
    files = {p.name for p in CHEATS.glob("*.py") if not p.name.startswith("_")}
    assert files == set(EXPECTED) | set(NO_EFFECT)


def test_the_honest_base_kernel_passes(evaluator: AttentionEvaluator, sandbox: Sandbox) -> None:
    result = evaluator.evaluate(Candidate.from_path(CHEATS / "_honest_kernel.py", entry="kernel.py"), sandbox,
                                stages=("check", "test"))
    assert result.status is Status.OK, result.reason


@pytest.fixture(scope="module")
def honest_launches(evaluator: AttentionEvaluator, sandbox: Sandbox) -> dict:
    result = evaluator.evaluate(Candidate.from_path(CHEATS / "_honest_kernel.py", entry="kernel.py"), sandbox,
                                stages=("benchmark",))
    assert result.status is Status.OK, result.reason
    return result.stage("benchmark").details["launches"]


@pytest.mark.parametrize("name", NO_EFFECT)
def test_a_trick_without_effect_is_timed_on_exactly_the_honest_launches(
        name: str, evaluator: AttentionEvaluator, sandbox: Sandbox, honest_launches: dict) -> None:
    result = evaluator.evaluate(cheat(name), sandbox, stages=("test", "benchmark"))
    assert result.status is Status.OK, result.reason
    assert result.stage("benchmark").details["launches"] == honest_launches


def test_a_kernel_honest_only_on_the_timed_call_it_thinks_is_checked_gains_nothing_past_the_scan(
        evaluator: AttentionEvaluator, sandbox: Sandbox, honest_launches: dict) -> None:
    """It scored ok at a fraction of the work when the child knew which repetition was checked (see its
    docstring); now no repetition runs its wrapper: the replay times the launches its capture made."""
    result = evaluator.evaluate(cheat("honest_when_checked.py"), sandbox, stages=("benchmark",))
    assert result.status is Status.OK, result.reason
    assert result.stage("benchmark").details["launches"] == honest_launches


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cheat_never_ends_ok(name: str, evaluator: AttentionEvaluator, sandbox: Sandbox) -> None:
    labels, words = EXPECTED[name]
    result = evaluator.evaluate(cheat(name), sandbox)
    assert result.status is not Status.OK and result.score is None
    assert result.status in labels, result.reason
    assert words in result.reason, result.reason
