"""VariationOperator: the protocol every variation operator implements, and what it is handed."""

from __future__ import annotations

import abc
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..candidate import Candidate
from ..records import ModelStats, NicheView, TrialOutcome, Usage
from ..references import class_reference
from ..result import EvalResult
from ..services import Knowledge, NoServices, TrialServices

if TYPE_CHECKING:
    from ..evaluator import Evaluator
    from ..lineage import Lineage
    from ..sandbox import SandboxResult

# TrialOutcome and Usage live in records; they stay importable from here.
__all__ = ["Proposal", "TrialOutcome", "Usage", "VariationContext", "VariationOperator"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """What one variation step hands back: a new candidate and the hypothesis behind it.

    `candidate` is None when the operator gave up (no submission within its own limits); the
    engine records that trial as `no_proposal` with `reason` (and stops the run after
    `Options.no_proposal_limit` of them in a row). `final` says the operator has nothing more to
    try for this target: the engine stops the run after this trial, with `reason` as the cause.
    """

    candidate: Candidate | None
    hypothesis: str = ""
    reason: str = ""
    final: bool = False


@dataclass(kw_only=True)
class VariationContext:
    """Everything a variation step may read, and the few things it may do to the run.

    The engine builds one per trial. Exploratory evaluations (`evaluate`) go through the same
    sandbox and are recorded, but never committed; only the engine's authoritative evaluation of
    the returned `Proposal` counts.

    Attributes:
        trial_id: the trial this step belongs to.
        parent: the starting version chosen by the population policy.
        parent_result: its authoritative evaluation.
        best: the best committed version and its result.
        evaluator: the target (its description, entry file and stage names).
        lineage: the ancestry view (text summaries for prompts).
        recent: the last finished trials, newest last.
        knowledge: the knowledge base (with the run's lessons so far), or None.
        rng: a random source seeded per trial (deterministic runs).
        run_dir: the run's directory (None outside a run).
        commit_rule: the population's commit rule in words (tolerance, re-measurements).
        budget_left: what is left of the run's budgets, in words, when the step starts.
        services: what the engine does for this trial (`TrialServices`); by default nothing is
            recorded or charged and `evaluate` raises, for contexts built outside a run.
        niche: the island or MAP-Elites cell this step works in and its neighbours (None: one population).
        model_stats: per-model trials, commits, tokens and USD of the run so far (an ensemble's
            bandit reads them).
    """

    trial_id: int
    parent: Candidate
    parent_result: EvalResult | None
    best: tuple[Candidate, EvalResult] | None
    evaluator: Evaluator
    lineage: Lineage
    recent: Sequence[TrialOutcome] = ()
    knowledge: Knowledge | None = None
    rng: random.Random = field(default_factory=random.Random)
    run_dir: Path | None = None
    commit_rule: str = ""
    budget_left: str = ""
    services: TrialServices = field(default_factory=NoServices)
    niche: NicheView | None = None
    model_stats: Mapping[str, ModelStats] = field(default_factory=dict)

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None = None,
                 configs: Sequence[str] | None = None) -> EvalResult:
        """Runs (some) stages on a draft, on all or the named configurations; exploratory, never committed."""
        return self.services.evaluate(candidate, stages, configs)

    def experiment(self, candidate: Candidate, script: str, timeout_s: float = 60.0) -> SandboxResult:
        """Runs a short script beside a draft's files in the sandbox, confined as candidates are."""
        return self.services.experiment(candidate, script, timeout_s)

    def remeasure(self, candidates: Sequence[Candidate], configs: Sequence[str] | None = None,
                  rounds: int = 3) -> list[list[EvalResult]]:
        """Times each candidate in turn, `rounds` times, in the same executor (exploratory, never committed)."""
        return self.services.remeasure(candidates, configs, rounds)

    def inspect(self, candidate: Candidate, what: str, grep: str = "", kernel: str = "") -> str:
        """A draft's compiled code (SASS, PTX, TTGIR...) as text, lines matching `grep`; no GPU needed."""
        return self.services.inspect(candidate, what, grep, kernel)

    def record_message(self, role: str, content: Any) -> None:
        """Appends one message (JSON-serializable) to this trial's transcript."""
        self.services.record_message(role, content)

    def charge(self, usage: Usage) -> None:
        """Counts model usage against the run's budgets; raises BudgetExhausted when one runs out."""
        self.services.charge(usage)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Records an event (for example supervisor advice) in the run's store."""
        self.services.emit(kind, payload)

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        """Any version of this run by id (or unique id prefix), with its authoritative result."""
        return self.services.get(candidate_id)

    def label_model(self, model: str) -> None:
        """Records the model this step asks (per-model counts in the run)."""
        self.services.label_model(model)


class VariationOperator(abc.ABC):
    """Proposes a new candidate from the run's state. Subclasses implement `vary`."""

    name: str = "operator"

    @abc.abstractmethod
    def vary(self, context: VariationContext) -> Proposal:
        """One variation step: read the context, return a proposal (never raise for candidate trouble)."""

    def observe(self, outcome: TrialOutcome) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Told the authoritative outcome of the proposal this operator made (memory hook)."""

    def remember(self, transcript: Sequence[Mapping[str, Any]]) -> None:  # noqa: B027 (optional hook)
        """Given the run's stored transcripts when a run resumes (memory hook; an empty list for a new run)."""

    def spec(self) -> dict[str, Any]:
        """How to rebuild this operator (stored with the run)."""
        return {"class": class_reference(type(self)), "params": {}}
