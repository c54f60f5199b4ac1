"""The offline policy's first move on the CUDA seed, and the CUDA edit recipe, compile with nvcc for sm_90a.

Slow for a test (each case is one nvcc run of 8 kernel instantiations and cuobjdump, about 10 s of
CPU): it is the proof, beyond the unit tests' models of the seed's static_asserts and index math,
that what the policy proposes builds and still uses tensor cores.
"""

from __future__ import annotations

import pytest

from evoagent.knowledge import KnowledgeBase
from evoagent.llm.heuristic import HeuristicPolicy
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source
from evoagent.targets.attention.cuda_static import cuda_report, cuda_tool


@pytest.mark.skipif(cuda_tool("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
@pytest.mark.parametrize("which", ["first-move", "cuda-staged-output-stores"])
def test_a_move_on_the_cuda_seed_compiles_for_sm_90a(which: str) -> None:
    source = seed_path("cuda-fa2").read_text()
    kb = KnowledgeBase()
    move = HeuristicPolicy(knowledge=kb, seed=0).moves(source)[0] if which == "first-move" else kb.recipe(which)
    report = cuda_report(find_cuda_source(move.apply(source)), "sm_90a")
    assert report["ok"], (move.id, report["errors"])
    assert len(report["kernels"]) == 8  # fp16/bf16 x D 64/128 x causal or not
    assert all(k["sass"]["tensor_core"].get("HMMA", 0) > 0 for k in report["kernels"])
    assert report["spill_bytes"] == 0
