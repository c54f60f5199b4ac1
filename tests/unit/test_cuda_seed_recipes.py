"""The offline policy on the CUDA seed: recipes that apply move its constexpr knobs, the others skip it."""

from __future__ import annotations

import re

import pytest

from evoagent.knowledge import KnowledgeBase
from evoagent.knowledge.recipes import marked_params
from evoagent.llm.heuristic import HeuristicPolicy
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.agent_text import CUDA_DOCUMENTS

SEED = seed_path("cuda-fa2").read_text()
_CONSTANT = re.compile(r"^constexpr int ([A-Z_]+) = ([^;]+);", re.MULTILINE)


def knobs(source: str) -> dict[str, int]:
    """The CUDA source's integer constants, evaluated in order as the C++ compiler would."""
    values: dict[str, int] = {}
    for name, expr in _CONSTANT.findall(source):
        values[name] = int(eval(expr.replace("/", "//"), {}, dict(values)))  # noqa: S307 - our own seed's text
    return values


def kernel_accepts(source: str) -> bool:
    """The seed's static_asserts and the choices marked on its knobs, checked on the constants."""
    k = knobs(source)
    shared_bytes = (k["BLOCK_M"] + 2 * k["NUM_STAGES"] * k["BLOCK_N"]) * 128 * 2
    return (k["BLOCK_M"] == 16 * k["NUM_WARPS"] and k["BLOCK_N"] % 16 == 0 and 1 <= k["NUM_STAGES"] <= 4
            and shared_bytes <= 232448
            and all(p.value in p.choices for p in marked_params(source)))


def test_the_seed_marks_its_tiles_stages_and_launch_bounds() -> None:
    assert [p.name for p in marked_params(SEED)] == ["BLOCK_M", "BLOCK_N", "NUM_STAGES", "MIN_BLOCKS_PER_SM"]
    assert kernel_accepts(SEED)


def test_triton_recipes_skip_the_cuda_seed_with_a_reason_and_tile_recipes_apply() -> None:
    kb = KnowledgeBase()
    applies = {r.id for r in kb.recipes() if r.applies(SEED)}
    cuda_recipes = {r.id for r in kb.recipes() if r.doc in CUDA_DOCUMENTS}
    assert len(cuda_recipes) >= 3 and cuda_recipes <= applies  # every recipe of the CUDA documents
    assert {"tile-64x64-4warp", "tile-128x128-2stage"} <= applies
    for recipe in kb.recipes():
        if recipe.id not in applies:
            assert recipe.check(SEED).startswith(f"recipe {recipe.id!r} does not apply: ")
        else:
            assert kernel_accepts(recipe.apply(SEED)), recipe.id


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_offline_policy_proposes_valid_edits_to_the_cuda_seed(seed: int) -> None:
    policy = HeuristicPolicy(knowledge=KnowledgeBase(), seed=seed)
    moves = policy.moves(SEED)
    assert moves and all(m.applies(SEED) for m in moves)
    first = moves[0].apply(SEED)
    assert first != SEED and "CUDA_SOURCE = r\"\"\"" in first and kernel_accepts(first)
    changed = [line for line in first.splitlines() if line not in SEED.splitlines()]
    assert changed and all(line.startswith("constexpr int ") for line in changed)
    # Single-knob moves stay within the marked choices; only the NUM_WARPS relation can rule one out.
    singles = [m for m in moves if m.id.startswith("param-")]
    assert singles and all(kernel_accepts(m.apply(SEED)) for m in singles)
