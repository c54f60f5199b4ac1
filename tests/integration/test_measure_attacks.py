"""Attacks on the measurement itself, written against the in-process timing and evaluated past the static
scan (the stages run without the check stage, as if the scan had been bypassed).

Each file under measure_attacks/ says what it tries. Against the old harness, where the process that
timed and checked a kernel also ran it, `lazy_output`, `phase_by_pointer` and `phase_by_nan_fill` scored
`ok` at 6x to 1000x the honest kernel's score. Now the wrapper runs only in a capture child; the trusted
side replays the captured launches on inputs it makes, keeps the clock and checks every call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cheat_files import _load

from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator

ATTACKS = Path(__file__).parent / "measure_attacks"

# file -> (allowed labels, words the reason must contain)
EXPECTED = {
    "lazy_output.py": ({Status.ILLEGAL}, "plain torch.Tensor"),
    "phase_by_pointer.py": ({Status.ILLEGAL}, "outside a Triton kernel"),
    "phase_by_nan_fill.py": ({Status.ILLEGAL}, "outside a Triton kernel"),
    "phase_by_call_count.py": ({Status.ILLEGAL}, "differ between two calls of the same shape"),
    "forge_report.py": ({Status.ILLEGAL}, "malformed"),
    "patch_harness_by_frames.py": ({Status.ILLEGAL, Status.INCORRECT}, ""),
    "python_in_kernel_body.py": ({Status.ILLEGAL}, "'__import__'"),
    "blind_op_trace.py": ({Status.INCORRECT}, "NaN"),
}

pytestmark = pytest.mark.xdist_group("measure_attacks")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    return AttentionEvaluator("smoke", cache_dir=tmp_path_factory.mktemp("measure-attacks") / "static", seed=5,
                              seeds=2)


@pytest.fixture(scope="module")
def sandbox(evaluator: AttentionEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def test_every_attack_file_has_an_expectation() -> None:
    assert {p.name for p in ATTACKS.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_attack_on_the_measurement_gains_no_score(name: str, evaluator: AttentionEvaluator,
                                                     sandbox: Sandbox) -> None:
    labels, words = EXPECTED[name]
    result = evaluator.evaluate(_load(ATTACKS / name), sandbox, stages=("test", "benchmark"))
    assert result.status in labels and result.score is None, (result.status, result.reason)
    assert words in result.reason, result.reason


def test_the_patched_harness_attack_reaches_the_replay_and_is_wrong_there(evaluator: AttentionEvaluator,
                                                                          sandbox: Sandbox) -> None:
    """Its patch changes what the capture reports (half the grid) and it leaves the timers the capture checks
    alone; the replay of that plan leaves half the output unwritten, which the trusted side sees as NaN."""
    result = evaluator.evaluate(_load(ATTACKS / "patch_harness_by_frames.py"), sandbox, stages=("test",))
    assert result.status is Status.INCORRECT and "NaN" in result.reason, result.reason
