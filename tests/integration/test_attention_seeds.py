"""The shipped Hopper seed (TMA descriptors shaped in autotune pre_hooks, warp specialization, pruned
autotuning) through the real stages, and choosing a seed by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator, seed_path
from evoagent.targets.attention.agent_text import static_report


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "seeds-cache" / "static"


@pytest.fixture(scope="module")
def sandbox(cache_dir: Path):
    with Sandbox(AttentionEvaluator("smoke", cache_dir=cache_dir).sandbox_config()) as sb:
        yield sb


def _hopper() -> Candidate:
    return Candidate.from_path(seed_path("hopper-tma"), entry="kernel.py")


def test_the_hopper_seed_passes_check_and_the_interpreter_tests(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=7, seeds=1)
    result = evaluator.evaluate(_hopper(), sandbox, stages=("check", "test"))
    assert result.status is Status.OK, result.reason
    kernels = result.stage("check").details["static"]["sm_90a"]["kernels"]
    assert all(k["tensor_core"].get("HGMMA") or k["ptx"].get("wgmma.mma_async") for k in kernels)
    assert all(k["tma"].get("UTMALDG") or k["ptx"].get("cp.async.bulk.tensor") for k in kernels)


def test_on_h100_shapes_every_pruned_config_compiles_with_tma_and_wgmma(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("h100-mha", cache_dir=cache_dir, archs=("sm_90a", "sm_100a"))
    stage = evaluator.check(_hopper(), sandbox)
    assert stage.ok, stage.reason
    report = stage.details["static"]["sm_90a"]
    configs = {k["autotune"] for k in report["kernels"]}
    assert len(configs) == 3 and any("WARP_SPECIALIZE=True" in c for c in configs)
    assert all(c in report["describes"] for c in configs)
    analysed = [k for k in report["kernels"] if k["sass_analysed"]]
    assert len(analysed) == len(report["kernels"])  # SASS per distinct cubin: the causal rows are filled too
    assert all(k["tensor_core"].get("HGMMA") and k["tma"].get("UTMALDG") for k in analysed)
    assert all(k["mix"].get("MUFU") and k["mix"].get("BAR") for k in analysed)
    table = static_report(report)
    assert all(column in table.splitlines()[1] for column in ("MUFU", "BAR", "LDSM/STSM", "setmaxnreg"))
    assert report["spill_bytes"] == 0
    # The prune asks the device's capability: for sm_100a it answers 10 and the warp-specialized
    # configs (which Triton cannot compile for Blackwell) are dropped before compiling.
    blackwell = stage.details["static"]["sm_100a"]
    assert {k["autotune"] for k in blackwell["kernels"]} == {
        "BLOCK_M=64, BLOCK_N=64, WARP_SPECIALIZE=False, num_warps=4, num_stages=3"}
    assert all(k["tensor_core"].get("UTCHMMA") for k in blackwell["kernels"] if k["sass_analysed"])


def test_inspect_shows_hgmma_and_mufu_counts_of_the_hopper_seed_without_a_gpu(sandbox: Sandbox,
                                                                             cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("h100-mha", cache_dir=cache_dir, archs=("sm_90a",))
    text = evaluator.inspect(_hopper(), sandbox, what="sass", grep="MUFU.EX2")
    assert re.search(r"counts: HGMMA \d+, MUFU \d+, BAR \d+", text), text[:2000]
    assert "matching lines of" in text and "MUFU.EX2" in text and "HGMMA." not in text  # the grep keeps its lines
    ttgir = evaluator.inspect(_hopper(), sandbox, what="ttgir", grep="warp_group_dot ")
    assert "ttng.warp_group_dot" in ttgir and ".ttgir" in ttgir
