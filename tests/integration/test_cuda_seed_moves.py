"""The offline policy's first move on the CUDA seed, with the CUDA edit recipe on top, compiles for sm_90a.

Slow for a test (one nvcc run of 8 kernel instantiations and cuobjdump, about 10 s of CPU): it is
the proof, beyond the unit tests' models of the seed's static_asserts and index math, that what the
policy proposes builds and still uses tensor cores.
"""

from __future__ import annotations

import pytest

from evoagent.knowledge import KnowledgeBase
from evoagent.llm.heuristic import HeuristicPolicy
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source
from evoagent.targets.attention.cuda_static import cuda_report, cuda_tool


@pytest.mark.skipif(cuda_tool("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
def test_the_policys_first_move_and_the_cuda_edit_recipe_compile_for_sm_90a() -> None:
    source = seed_path("cuda-fa2").read_text()
    kb = KnowledgeBase()
    first = HeuristicPolicy(knowledge=kb, seed=0).moves(source)[0]
    staged = kb.recipe("cuda-staged-output-stores")
    assert first.id != staged.id and staged.applies(first.apply(source))
    report = cuda_report(find_cuda_source(staged.apply(first.apply(source))), "sm_90a")
    assert report["ok"], (first.id, report["errors"])
    assert len(report["kernels"]) == 8  # fp16/bf16 x D 64/128 x causal or not
    assert all(k["sass"]["tensor_core"].get("HMMA", 0) > 0 for k in report["kernels"])
    assert report["spill_bytes"] == 0
