"""The engine's side of one variation step: its `TrialServices` and `Remeasure`, and the texts it hands over.

`EngineServices` and `EngineRemeasure` send a trial's evaluations, messages, usage and events to the run
through an `EngineView` (the engine, seen from here); every evaluation goes through `evaluate_retrying`
(a lost machine's evaluation runs once more). `commit_rule`, `outcome_of` and `lesson_text` put the
population's rule, a finished trial and what it taught into the forms a `VariationContext` carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .candidate import Candidate
from .errors import EvaluatorError
from .evaluator import Evaluator
from .executors import Executor, cluster_gone
from .formatting import format_delta
from .population import Population
from .records import Trial, TrialOutcome, Usage
from .result import EvalResult, Status
from .sandbox import SandboxResult
from .scheduling import Priority, gpu_priority
from .store import RunStore


class EngineView(Protocol):
    """What the trial services use of the engine running them."""

    store: RunStore
    evaluator: Evaluator
    executor: Executor

    def emit(self, kind: str, payload: dict[str, Any], trial: Trial | None = None, *, store: bool = True) -> None: ...

    def charge(self, trial_id: int, usage: Usage) -> None: ...


def evaluate_retrying(engine: EngineView, candidate: Candidate, trial_id: int, *, stages: Sequence[str] | None = None,
                      evaluator: Evaluator | None = None) -> EvalResult:
    """`evaluator.evaluate` through the engine's executor, once more if the machine running it was lost.

    An evaluation ended by `infrastructure` (a Ray worker, actor or node died) is stored as a `lost`
    evaluation of the trial, with an event, and run again; a second loss is the trial's label.
    """
    evaluator = evaluator or engine.evaluator
    result = evaluator.evaluate(candidate, engine.executor, stages=stages)
    if result.status is not Status.INFRASTRUCTURE or cluster_gone(engine.executor):
        return result  # a lost cluster ends the run: its trials are interrupted, not retried
    engine.store.add_evaluation(candidate, result, kind="lost", trial_id=trial_id)
    engine.emit("infrastructure", {"trial_id": trial_id, "candidate_id": candidate.id, "reason": result.reason[:300],
                                   "what": "evaluation"})
    again = evaluator.evaluate(candidate, engine.executor, stages=stages)
    if again.status is Status.INFRASTRUCTURE:
        return dataclasses.replace(again, reason=f"{again.reason} (lost twice: the retry was lost too)")
    return again


class EngineRemeasure:
    """`Remeasure` for one would-be commit: timing stages in the run's sandbox, stored as `confirmation`."""

    def __init__(self, engine: EngineView, trial_id: int, candidate: Candidate, incumbent_id: str) -> None:
        self._engine, self._trial_id = engine, trial_id
        self._candidate, self._incumbent_id = candidate, incumbent_id

    def candidate(self) -> EvalResult:
        return self._measure(self._candidate)

    def best(self) -> EvalResult:
        incumbent = self._engine.store.candidate(self._incumbent_id)  # read only when a population confirms
        assert incumbent is not None  # Check internal correctness.
        return self._measure(incumbent)

    def aggregate(self, metrics: Mapping[str, float]) -> float | None:
        return self._engine.evaluator.aggregate(metrics)

    def _measure(self, who: Candidate) -> EvalResult:
        engine = self._engine
        with gpu_priority(Priority.CONFIRM):  # a would-be commit jumps every other GPU call
            again = evaluate_retrying(engine, who, self._trial_id, stages=engine.evaluator.timing_stages)
        engine.store.add_evaluation(who, again, kind="confirmation", trial_id=self._trial_id)
        return again




class EngineServices:
    """`TrialServices` of one trial: exploratory evaluations, transcript, usage and events go to the run."""

    def __init__(self, engine: EngineView, trial_id: int) -> None:
        self._engine, self._trial_id = engine, trial_id

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None,
                 configs: Sequence[str] | None = None) -> EvalResult:
        engine = self._engine
        evaluator = engine.evaluator if configs is None else engine.evaluator.restricted(configs)
        result = evaluate_retrying(engine, candidate, self._trial_id, stages=stages, evaluator=evaluator)
        engine.store.add_evaluation(candidate, result, kind="exploratory", trial_id=self._trial_id)
        return result

    def experiment(self, candidate: Candidate, script: str, timeout_s: float) -> SandboxResult:
        engine = self._engine
        out = engine.evaluator.experiment(candidate, script, engine.executor, timeout_s=timeout_s)
        if out.status is Status.INFRASTRUCTURE:  # the worker was lost: once more, as evaluations are
            engine.emit("infrastructure", {"trial_id": self._trial_id, "reason": out.reason[:300],
                                           "what": "experiment"})
            out = engine.evaluator.experiment(candidate, script, engine.executor, timeout_s=timeout_s)
        return out

    def remeasure(self, candidates: Sequence[Candidate], configs: Sequence[str] | None,
                  rounds: int) -> list[list[EvalResult]]:
        """The timing stages (as a population's confirmation runs them), each candidate in turn per round.

        Stored as exploratory evaluations of the trial; an evaluator without timing stages raises.
        """
        engine = self._engine
        evaluator = engine.evaluator if configs is None else engine.evaluator.restricted(configs)
        if not evaluator.timing_stages:
            raise EvaluatorError(f"{type(evaluator).__name__} has no timing stages to compare versions on")
        runs: list[list[EvalResult]] = [[] for _ in candidates]
        for _ in range(rounds):
            for i, candidate in enumerate(candidates):
                result = evaluate_retrying(engine, candidate, self._trial_id, stages=evaluator.timing_stages,
                                           evaluator=evaluator)
                engine.store.add_evaluation(candidate, result, kind="exploratory", trial_id=self._trial_id)
                runs[i].append(result)
        return runs

    def inspect(self, candidate: Candidate, what: str, grep: str = "", kernel: str = "") -> str:
        engine = self._engine
        return engine.evaluator.inspect(candidate, engine.executor, what=what, grep=grep, kernel=kernel)

    def record_message(self, role: str, content: Any) -> None:
        self._engine.store.add_message(self._trial_id, role, content)

    def charge(self, usage: Usage) -> None:
        self._engine.charge(self._trial_id, usage)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        self._engine.emit(kind, {**payload, "trial_id": self._trial_id})

    def label_model(self, model: str) -> None:
        self._engine.store.label_model(self._trial_id, model)

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        store = self._engine.store
        found = store.candidate(candidate_id)
        return (found, store.result(found.id)) if found else None


def commit_rule(population: Population) -> str:
    """The population's commit rule in words, for the agent."""
    tolerance = getattr(population.rule, "tolerance", None)
    if tolerance is not None:
        text = (f"a correct version is committed if its score >= best - {tolerance:g} * |best| "
                f"(tolerance {tolerance:.2%} of the best committed score)")
    else:
        text = f"a correct version is committed if the population's rule {population.spec().get('rule')!r} accepts it"
    if population.confirm:
        text += (f"; a would-be commit is first re-measured {population.confirm} more time(s), interleaved with the "
                 "best, and judged on the per-configuration medians")
    return text


def outcome_of(t: Trial) -> TrialOutcome:
    return TrialOutcome(trial_id=t.id, candidate_id=t.candidate_id, parent_id=t.parent_id, hypothesis=t.hypothesis,
                        status=t.status or Status.HARNESS_ERROR, reason=t.reason, score=t.score,
                        committed=t.committed)


def lesson_text(trial_id: int, hypothesis: str, result: EvalResult, committed: bool,
                start: EvalResult | None) -> str:
    """One line: what was tried, the outcome and, for a scored result, its Δ vs the starting version
    with the configurations that moved most either way."""
    what = (hypothesis or "no hypothesis").splitlines()[0][:160]
    outcome = "committed" if committed else result.status.value
    delta = ""
    if result.score is not None and start is not None and start.score:
        delta = f", score {result.score:.6g} ({format_delta(result.score, start.score)} vs its starting version"
        moved = sorted((result.metrics[k] / v - 1, k) for k, v in start.metrics.items() if v and k in result.metrics)
        if len(moved) > 1:
            delta += (f"; per configuration from {100 * moved[0][0]:+.2f}% ({moved[0][1]}) to "
                      f"{100 * moved[-1][0]:+.2f}% ({moved[-1][1]})")
        delta += ")"
    elif result.reason:
        delta = f" ({result.reason.splitlines()[0][:120]})"
    return f"trial {trial_id}: {what} -> {outcome}{delta}"
