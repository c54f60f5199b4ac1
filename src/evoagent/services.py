"""The services one part hands another, as protocols: a knowledge base, and what the engine does for a trial.

A leaf module: the types it names are imported for type checking only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .candidate import Candidate
    from .knowledge.base import Hit, Lesson
    from .knowledge.recipes import Recipe
    from .records import Usage
    from .result import EvalResult
    from .sandbox import SandboxResult


class Knowledge(Protocol):
    """What operators and the engine read from a knowledge base (`KnowledgeBase` is the built-in one)."""

    @property
    def lessons(self) -> tuple[Lesson, ...]: ...

    def with_lessons(self, lessons: Sequence[Lesson]) -> Knowledge:
        """The same documents plus these one-line lessons (searchable like the rest)."""
        ...

    def search(self, query: str, k: int = 5) -> list[Hit]: ...

    def read(self, doc: str, section: str | None = None) -> str: ...

    def recipes(self) -> list[Recipe]: ...


class TrialServices(Protocol):
    """What the engine does for one trial on its operator's behalf (see `VariationContext`)."""

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None,
                 configs: Sequence[str] | None = None) -> EvalResult:
        """Runs (some) stages on a draft, on all or the named configurations; exploratory, never committed."""
        ...

    def experiment(self, candidate: Candidate, script: str, timeout_s: float) -> SandboxResult:
        """Runs a short script beside a draft's files in the sandbox (the evaluator's `experiment`)."""
        ...

    def inspect(self, candidate: Candidate, what: str, grep: str = "", kernel: str = "") -> str:
        """A draft's compiled code as text, lines matching `grep` (the evaluator's `inspect`)."""
        ...

    def remeasure(self, candidates: Sequence[Candidate], configs: Sequence[str] | None,
                  rounds: int) -> list[list[EvalResult]]:
        """The evaluator's timing stages on each candidate in turn, `rounds` times, interleaved in one executor."""
        ...

    def record_message(self, role: str, content: Any) -> None:
        """Appends one message (JSON-serializable) to the trial's transcript."""
        ...

    def charge(self, usage: Usage) -> None:
        """Counts model usage against the run's budgets; raises BudgetExhausted when one runs out."""
        ...

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Records an event (for example supervisor advice) in the run's store."""
        ...

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        """Any version of the run by id (or unique id prefix), with its authoritative result."""
        ...

    def label_model(self, model: str) -> None:
        """Records the model this trial asks (per-model trials, commits, tokens and USD)."""
        ...


class NoServices:
    """`TrialServices` for a context built outside a run (tests, notebooks): records nothing, charges nothing.

    Subclass it and override what a test needs.
    """

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None,
                 configs: Sequence[str] | None = None) -> EvalResult:
        raise RuntimeError("this VariationContext has no evaluator attached (pass services=...)")

    def experiment(self, candidate: Candidate, script: str, timeout_s: float) -> SandboxResult:
        raise RuntimeError("this VariationContext has no sandbox attached (pass services=...)")

    def inspect(self, candidate: Candidate, what: str, grep: str = "", kernel: str = "") -> str:
        raise RuntimeError("this VariationContext has no sandbox attached (pass services=...)")

    def remeasure(self, candidates: Sequence[Candidate], configs: Sequence[str] | None,
                  rounds: int) -> list[list[EvalResult]]:
        raise RuntimeError("this VariationContext has no evaluator attached (pass services=...)")

    def record_message(self, role: str, content: Any) -> None:
        return None

    def charge(self, usage: Usage) -> None:
        return None

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        return None

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        return None

    def label_model(self, model: str) -> None:
        return None
