"""Supervisor: stall and cycle detection from recent trials, directions from the model and the knowledge base."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from recording_services import RecordingServices

from evoagent.candidate import Candidate
from evoagent.errors import BudgetExhausted, ConfigError, LLMError
from evoagent.evaluator import Evaluator
from evoagent.llm.scripted import ScriptedLLM
from evoagent.operators.base import TrialOutcome, Usage, VariationContext
from evoagent.operators.supervisor import Advice, Supervisor
from evoagent.records import NicheView
from evoagent.result import StageResult, Status

SEED = "BLOCK_M = 64\n"


class NullEvaluator(Evaluator):
    name = "toy"
    description = "Make it fast."
    stages = ("check",)

    def check(self, candidate: Candidate, sandbox: Any) -> StageResult:
        return StageResult()


@dataclass
class FakeLineage:
    def summary(self) -> str:
        return "Best committed version: seed (score 1)."


@dataclass
class FakeRecipe:
    id: str
    title: str
    notes: str = ""
    requires: str = ""
    needs: tuple[str, ...] = ()

    def applies(self, source: str) -> bool:
        return self.requires in source


@dataclass
class FakeKnowledge:
    items: list[FakeRecipe] = field(default_factory=list)

    def recipes(self) -> list[FakeRecipe]:
        return list(self.items)


def outcome(trial_id: int, status: Status = Status.OK, committed: bool = False, hypothesis: str = "tweak") -> TrialOutcome:
    return TrialOutcome(trial_id=trial_id, candidate_id=f"c{trial_id}", parent_id="seed", hypothesis=hypothesis,
                        status=status, reason="" if status is Status.OK else "it broke",
                        score=1.0 if status is Status.OK else None, committed=committed)


@dataclass
class Recorder:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[tuple[str, Any]] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    budget_tokens: int | None = None

    def charge(self, usage: Usage) -> None:
        self.usage.append(usage)
        if self.budget_tokens is not None and sum(u.tokens for u in self.usage) > self.budget_tokens:
            raise BudgetExhausted("token budget reached")


def context(recent: list[TrialOutcome], rec: Recorder, knowledge: Any = None) -> VariationContext:
    return VariationContext(
        trial_id=max((o.trial_id for o in recent), default=0) + 1, parent=Candidate.from_source(SEED),
        parent_result=None, best=None, evaluator=NullEvaluator(), lineage=FakeLineage(), recent=recent,
        knowledge=knowledge,
        services=RecordingServices(events=rec.events, messages=rec.messages, on_charge=rec.charge),
    )


def test_no_advice_while_versions_keep_being_committed() -> None:
    sup = Supervisor(stall_steps=3, failure_streak=3)
    recent = [outcome(1), outcome(2), outcome(3, committed=True), outcome(4), outcome(5)]
    assert sup.detect(recent) is None


def test_a_stall_is_that_many_trials_without_a_commit() -> None:
    sup = Supervisor(stall_steps=3, failure_streak=3)
    recent = [outcome(1, committed=True), outcome(2), outcome(3, Status.INCORRECT), outcome(4)]
    assert sup.detect(recent) == ("stall", "no trial improved the score in the last 3 trials")


def test_commits_that_do_not_raise_the_score_do_not_end_a_stall() -> None:
    sup = Supervisor(stall_steps=3, failure_streak=9)
    recent = [outcome(1), outcome(2, committed=True), outcome(3, committed=True)]  # each scores 1.0
    assert sup.detect(recent, {"seed": 1.0}) == ("stall", "no trial improved the score in the last 3 trials")
    assert sup.detect(recent, {"seed": 0.9}) is None  # trial 3 scored above the version it started from


def test_an_unproductive_cycle_is_failed_submissions_in_a_row() -> None:
    sup = Supervisor(stall_steps=10, failure_streak=3)
    recent = [outcome(1), outcome(2, Status.COMPILE_ERROR), outcome(3, Status.INCORRECT), outcome(4, Status.DUPLICATE)]
    trigger, reason = sup.detect(recent)  # type: ignore[misc]
    assert trigger == "cycle" and "compile_error, incorrect, duplicate" in reason


def test_advice_is_not_repeated_until_new_trials_show_the_problem_again() -> None:
    rec = Recorder()
    sup = Supervisor(stall_steps=2, failure_streak=5)
    recent = [outcome(1), outcome(2)]
    assert sup.review(context(recent, rec)) is not None
    assert sup.review(context(recent, rec)) is None
    assert sup.review(context(recent + [outcome(3)], rec)) is None
    assert sup.review(context(recent + [outcome(3), outcome(4)], rec)) is not None


def test_stall_advice_combines_model_and_untried_knowledge_directions() -> None:
    rec = Recorder()
    llm = ScriptedLLM().enqueue_text("Here you go:\n1. Split K/V loads across warps\n2) Use exp2 for softmax\n"
                                     "3. Persistent kernel over tiles\n")
    kb = FakeKnowledge([
        FakeRecipe("block-128", "Raise BLOCK_M to 128", notes="more reuse per load"),
        FakeRecipe("tried-one", "Pipeline loads"),
        FakeRecipe("needs-causal", "Skip masked blocks", requires="CAUSAL"),
    ])
    recent = [outcome(i, hypothesis="recipe tried-one: pipeline loads") for i in range(1, 4)]
    advice = Supervisor(llm, stall_steps=3, failure_streak=9).review(context(recent, rec, kb))
    assert advice is not None and advice.trigger == "stall"
    assert advice.directions[:3] == ("Split K/V loads across warps", "Use exp2 for softmax", "Persistent kernel over tiles")
    assert advice.directions[3] == "Raise BLOCK_M to 128 (more reuse per load) [knowledge: recipe block-128]"
    assert advice.sources == ("model", "model", "model", "knowledge:block-128")  # tried and inapplicable skipped
    kind, payload = rec.events[-1]
    assert kind == "supervisor" and payload["directions"] == list(advice.directions)
    assert len(rec.usage) == 1  # the model call was charged
    prompt = llm.requests[0].text()
    assert "no trial improved the score in the last 3 trials" in prompt and "recipe tried-one" in prompt
    assert llm.requests[0].tools == []


class MhaEvaluator(NullEvaluator):
    def traits(self) -> frozenset[str]:
        return frozenset({"mha", "bf16", "d128", "causal", "full"})


def test_recipes_the_suite_cannot_use_are_not_proposed() -> None:
    kb = FakeKnowledge([FakeRecipe("gqa-pack-heads", "Pack the query heads of a GQA group", needs=("gqa",)),
                        FakeRecipe("block-128", "Raise BLOCK_M to 128", needs=("bf16",))])
    ctx = dataclasses.replace(context([outcome(1), outcome(2)], Recorder(), kb), evaluator=MhaEvaluator())
    advice = Supervisor(None, stall_steps=2).review(ctx)
    assert advice is not None and advice.sources == ("knowledge:block-128",)
    unknown = Supervisor(None, stall_steps=2).review(context([outcome(1), outcome(2)], Recorder(), kb))
    assert unknown is not None and "knowledge:gqa-pack-heads" in unknown.sources  # traits unknown: no filter


def test_a_failing_model_leaves_knowledge_directions_and_says_why() -> None:
    rec = Recorder()
    llm = ScriptedLLM().enqueue(LLMError("API down"))
    kb = FakeKnowledge([FakeRecipe("block-128", "Raise BLOCK_M to 128")])
    advice = Supervisor(llm, stall_steps=2).review(context([outcome(1), outcome(2)], rec, kb))
    assert advice is not None and advice.sources == ("knowledge:block-128",)
    assert rec.events[-1][1]["model_error"] == "API down"


def test_without_model_or_knowledge_generic_directions_are_given() -> None:
    advice = Supervisor(None, stall_steps=2, directions=2).review(context([outcome(1), outcome(2)], Recorder()))
    assert advice is not None and len(advice.directions) == 2 and advice.sources == ("default", "default")


def test_the_fallback_directions_are_the_targets_own_vocabulary() -> None:
    generic = Supervisor(None, stall_steps=2).review(context([outcome(1), outcome(2)], Recorder()))
    assert generic is not None
    words = " ".join(generic.directions).lower()
    assert not any(gpu in words for gpu in ("occupancy", "warps", "spills", "block sizes", "memory traffic"))

    class KernelEvaluator(NullEvaluator):
        def supervisor_directions(self) -> tuple[str, ...]:
            return ("Attack occupancy.", "Revisit warps and stages.")

    ctx = dataclasses.replace(context([outcome(1), outcome(2)], Recorder()), evaluator=KernelEvaluator())
    advice = Supervisor(None, stall_steps=2).review(ctx)
    assert advice is not None and advice.directions == ("Attack occupancy.", "Revisit warps and stages.")


def test_the_supervisor_suggests_the_empty_cell_the_population_names() -> None:
    niche = NicheView(name="cell a=1", text="MAP-Elites: 1 cells filled.", suggestion="cell a=2")
    ctx = dataclasses.replace(context([outcome(1), outcome(2)], Recorder()), niche=niche)
    advice = Supervisor(None, stall_steps=2, directions=2).review(ctx)
    assert advice is not None and advice.sources == ("population", "default", "default")
    assert "empty MAP-Elites cell a=2" in advice.directions[0] and "cell a=2" in advice.text()


def test_budget_exhaustion_in_the_supervisor_call_propagates() -> None:
    rec = Recorder(budget_tokens=1)
    llm = ScriptedLLM().enqueue_text("1. something")
    with pytest.raises(BudgetExhausted):
        Supervisor(llm, stall_steps=2).review(context([outcome(1), outcome(2)], rec))


def test_advice_text_lists_the_directions() -> None:
    text = Advice(trigger="stall", reason="no commit in 8 trials", directions=("a", "b")).text()
    assert text.startswith("Supervisor: no commit in 8 trials.") and "  1. a\n  2. b" in text


@pytest.mark.parametrize("kwargs", [{"stall_steps": 0}, {"failure_streak": -1}, {"directions": 1.5}])
def test_bad_thresholds_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        Supervisor(**kwargs)
