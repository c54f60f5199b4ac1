"""Every built-in Triton recipe applies to the shipped seed kernel, compiles for sm_90a and passes the CPU test stage.

The recipes of the CUDA documents (agent_text.CUDA_DOCUMENTS) are for CUDA candidates: the CUDA seed's
tests apply and compile them (tests/unit/test_cuda_seed_recipes.py, tests/integration/test_cuda_seed_moves.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from recording_services import RecordingServices

from evoagent.candidate import Candidate
from evoagent.knowledge import KnowledgeBase, Recipe
from evoagent.result import EvalResult, Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator, default_seed
from evoagent.targets.attention.agent_text import CUDA_DOCUMENTS

RECIPES = [r for r in KnowledgeBase().recipes() if r.doc not in CUDA_DOCUMENTS]
SEED = default_seed().read_text()


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    cache = tmp_path_factory.getbasetemp() / "recipes-cache" / "static"
    return AttentionEvaluator("smoke", archs=("sm_90a",), seeds=1, extra_shapes=2, seed=11, cache_dir=cache)


@pytest.fixture(scope="module")
def sandbox(evaluator: AttentionEvaluator):
    with Sandbox(evaluator.sandbox_config()) as sb:
        yield sb


def _check_and_test(evaluator: AttentionEvaluator, sandbox: Sandbox, source: str) -> EvalResult:
    return evaluator.evaluate(Candidate(files={"kernel.py": source}), sandbox, stages=("check", "test"))


def _assert_hopper_kernel(result: EvalResult) -> None:
    assert result.status is Status.OK, f"{result.status}: {result.reason}\n{result.stages[-1].logs[-3000:]}"
    hopper = result.stage("check").details["static"]["sm_90a"]
    assert hopper["ok"] and hopper["kernels"]
    for kernel in hopper["kernels"]:  # tensor cores still used: wgmma in the PTX, HGMMA in the SASS
        assert kernel["ptx"].get("wgmma.mma_async", 0) > 0, kernel
        assert kernel["tensor_core"].get("HGMMA", 0) > 0 or not kernel["sass_analysed"], kernel
    assert 0 < hopper["shared_bytes"] <= 232448 and 0 < hopper["registers"] <= 255


def test_the_builtin_documents_carry_recipes_of_both_kinds() -> None:
    kinds = {r.kind for r in RECIPES}
    assert kinds == {"edit", "param"} and len(RECIPES) >= 8


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.id for r in RECIPES])
def test_each_recipe_applies_to_the_seed_compiles_for_sm90a_and_passes_the_test_stage(
        recipe: Recipe, evaluator: AttentionEvaluator, sandbox: Sandbox) -> None:
    assert recipe.check(SEED) is None
    changed = recipe.apply(SEED)
    assert changed != SEED and not recipe.applies(changed)  # applied once, not twice
    _assert_hopper_kernel(_check_and_test(evaluator, sandbox, changed))


EDITS = [r for r in RECIPES if r.kind == "edit"]


@pytest.mark.parametrize("order", ["document", "reverse"])
def test_the_edit_recipes_compose_into_one_correct_kernel(order: str, evaluator: AttentionEvaluator,
                                                          sandbox: Sandbox) -> None:
    source, applied = SEED, []
    for recipe in EDITS if order == "document" else EDITS[::-1]:
        if recipe.applies(source):  # a recipe whose text an earlier one changed is skipped
            source, applied = recipe.apply(source), applied + [recipe.id]
    assert len(applied) >= len(EDITS) - 1, applied
    _assert_hopper_kernel(_check_and_test(evaluator, sandbox, source))


def test_a_broken_recipe_result_is_caught_by_the_stages(evaluator: AttentionEvaluator, sandbox: Sandbox) -> None:
    """The harness can fail: a recipe that drops the causal mask's diagonal test is `incorrect`."""
    wrong = SEED.replace("offs_m[:, None] >= offs_n[None, :]", "offs_m[:, None] > offs_n[None, :]")
    assert wrong != SEED
    result = _check_and_test(evaluator, sandbox, wrong)
    assert result.status is Status.INCORRECT


def test_the_seed_file_is_the_one_the_recipes_were_written_against() -> None:
    assert Path(default_seed()).name == "fa2.py"
    assert "# evo: choices" in SEED and "_attention_forward[grid](" in SEED


class _Lineage:
    def summary(self) -> str:
        return "Best committed version: seed."


def test_the_heuristic_policy_drives_one_agentic_step_on_the_seed(evaluator: AttentionEvaluator,
                                                                  sandbox: Sandbox) -> None:
    from evoagent.llm.heuristic import HeuristicPolicy
    from evoagent.operators.agentic import AgenticVariationOperator
    from evoagent.operators.base import VariationContext

    kb = KnowledgeBase()
    policy = HeuristicPolicy(knowledge=kb, seed=0)
    parent = Candidate.from_path(default_seed(), entry="kernel.py")
    context = VariationContext(trial_id=1, parent=parent, parent_result=None, best=None, evaluator=evaluator,
                               lineage=_Lineage(), knowledge=kb,  # type: ignore[arg-type]
                               services=RecordingServices(run=lambda c, stages: evaluator.evaluate(c, sandbox, stages=stages)))
    proposal = AgenticVariationOperator(policy, knowledge=kb, supervisor=False).vary(context)
    first = policy.moves(SEED)[0]
    assert proposal.candidate is not None, proposal.reason
    assert proposal.hypothesis == first.hypothesis
    assert proposal.candidate.source == first.apply(SEED)
