"""The offline policy's first move on the CUDA seed compiles with nvcc for sm_90a and still uses tensor cores.

Slow for a test (one nvcc run of 8 kernel instantiations and cuobjdump, about 10 s of CPU): it is the
proof, beyond the unit tests' model of the seed's static_asserts, that what the policy proposes builds.
"""

from __future__ import annotations

import pytest

from evoagent.knowledge import KnowledgeBase
from evoagent.llm.heuristic import HeuristicPolicy
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source
from evoagent.targets.attention.cuda_static import cuda_report, cuda_tool


@pytest.mark.skipif(cuda_tool("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
def test_the_policys_first_move_on_the_cuda_seed_compiles_for_sm_90a() -> None:
    source = seed_path("cuda-fa2").read_text()
    move = HeuristicPolicy(knowledge=KnowledgeBase(), seed=0).moves(source)[0]
    report = cuda_report(find_cuda_source(move.apply(source)), "sm_90a")
    assert report["ok"], (move.id, report["errors"])
    assert len(report["kernels"]) == 8  # fp16/bf16 x D 64/128 x causal or not
    assert all(k["sass"]["tensor_core"].get("HMMA", 0) > 0 for k in report["kernels"])
