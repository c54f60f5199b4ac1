"""No false positives: honest kernels that do what real Triton wrappers do pass check and test here.

Each file under honest/ uses one pattern a legitimate kernel uses and a GPU-less machine used to
reject: asserting the inputs are on CUDA, sizing a persistent grid from the SM count, asking Triton
for the active target at import, pruned autotuning. The shipped Hopper seed covers TMA descriptors
shaped in an autotune pre_hook and warp specialization (tests/integration/test_attention_seeds.py).
What truly needs a GPU ends `needs_device`, never a label that blames the kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cheat_files import HONEST, honest

from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator

RUNNABLE = ("device_assert.py", "persistent_sm_count.py", "import_time_target.py", "pruned_autotune.py")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "honest-cache" / "static"


@pytest.fixture(scope="module")
def sandbox(cache_dir: Path):
    with Sandbox(AttentionEvaluator("smoke", cache_dir=cache_dir).sandbox_config()) as sb:
        yield sb


def test_every_honest_file_is_exercised() -> None:
    assert {p.name for p in HONEST.glob("*.py")} == {*RUNNABLE, "synchronizes_device.py"}


@pytest.mark.parametrize("name", RUNNABLE)
def test_an_honest_pattern_passes_check_and_test_without_a_gpu(name: str, sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=3, seeds=1, extra_shapes=2)
    result = evaluator.evaluate(honest(name), sandbox, stages=("check", "test"))
    assert result.status is Status.OK, result.reason
    static = result.stage("check").details["static"]["sm_90a"]
    assert static["ok"] and static["kernels"] and static["describes"]
    assert all(k["registers"] for k in static["kernels"])


def test_the_report_lists_every_autotune_config_that_survives_pruning(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=3)
    stage = evaluator.check(honest("pruned_autotune.py"), sandbox)
    assert stage.ok, stage.reason
    static = stage.details["static"]["sm_90a"]
    # The smoke suite's N <= 64 prunes the 128-row config; the two others are each compiled and reported.
    tuned = {k["autotune"] for k in static["kernels"]}
    assert tuned == {"BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=2",
                     "BLOCK_M=64, BLOCK_N=32, num_warps=4, num_stages=3"}
    assert {k["autotune_rank"] for k in static["kernels"]} == {"1 of 2", "2 of 2"}
    assert all(name in static["describes"] for name in tuned)


def test_a_kernel_that_needs_the_device_is_labelled_needs_device(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=3)
    result = evaluator.evaluate(honest("synchronizes_device.py"), sandbox)
    assert result.status is Status.NEEDS_DEVICE
    assert "CUDA" in result.reason and "synchronize" in result.reason
