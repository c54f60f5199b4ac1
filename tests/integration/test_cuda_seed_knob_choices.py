"""Every value a `// evo: choices` knob of the CUDA seed offers compiles with nvcc for sm_90a.

One knob moved at a time from the seed's values (the moves the offline policy makes); each is one
nvcc -cubin of the 8 kernel instantiations (about 10 CPU-seconds), so the test is slow and runs
only where nvcc is installed.
"""

from __future__ import annotations

import pytest

from evoagent.knowledge.recipes import marked_params, param_recipe
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source
from evoagent.targets.attention.cuda_static import compile_cubin, cuda_tool

SEED = seed_path("cuda-fa2").read_text()
MOVES = [(p.name, choice) for p in marked_params(SEED) for choice in p.choices if choice != p.value]


def test_the_knobs_offer_other_values_to_compile() -> None:
    assert {name for name, _ in MOVES} == {"BLOCK_M", "BLOCK_N", "NUM_STAGES", "MIN_BLOCKS_PER_SM"}
    assert ("NUM_STAGES", "1") in MOVES and len(MOVES) == 6


@pytest.mark.slow
@pytest.mark.skipif(cuda_tool("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
@pytest.mark.parametrize(("name", "value"), MOVES, ids=[f"{n}={v}" for n, v in MOVES])
def test_each_knob_choice_of_the_cuda_seed_compiles_for_sm_90a(name: str, value: str) -> None:
    variant = param_recipe(name, value).apply(SEED)
    assert [p.value for p in marked_params(variant) if p.name == name] == [value]
    done = compile_cubin(find_cuda_source(variant).for_compiler(), "sm_90a")
    assert done["ok"], (name, value, done["errors"], done["log"][-2000:])
    assert done["cubin"] and ".entry" in done["ptx"]
