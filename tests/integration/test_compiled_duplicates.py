"""A version whose compiled kernels and host code match an evaluated version's is a `duplicate` (no reward for trivia)."""

from __future__ import annotations

from pathlib import Path

import evoagent as ea
from evoagent.llm.scripted import ScriptedLLM
from evoagent.result import Status
from evoagent.targets.attention import AttentionEvaluator, default_seed


def test_a_new_module_constant_in_an_evaluated_kernel_is_a_duplicate_after_its_compile(tmp_path: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=tmp_path / "cache" / "static", seed=3, seeds=1, extra_shapes=1)
    seed = ea.Candidate.from_path(default_seed(), entry="kernel.py")
    run = ea.Run.create(tmp_path / "run", evaluator=evaluator, seeds=[seed], population=ea.Chain())
    llm = ScriptedLLM()
    llm.enqueue_tool_use("edit_file", {"path": "kernel.py", "old": "BLOCK_M = 128  # evo: choices 64 128",
                                       "new": "BLOCK_M = 128  # evo: choices 64 128\nTILE_HINT = 256  # tuned later"})
    llm.enqueue_tool_use("submit", {"hypothesis": "a tile hint for later"})
    operator = ea.AgenticVariationOperator(llm, supervisor=False, critique=False)
    [trial] = list(ea.iterate(run, operator, ea.Budget(trials=1)))
    assert trial.status is Status.DUPLICATE and not trial.committed
    assert f"identical to version {seed.id}" in trial.reason and "only the compile was spent" in trial.reason
    assert run.store.count_evaluations("authoritative") == 1  # the seed's: the duplicate was not tested nor timed
    run.close()
