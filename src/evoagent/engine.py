"""evolve() and iterate(): the loop that keeps variation slots busy, evaluates, commits and stops."""

from __future__ import annotations

import dataclasses
import queue
import random
import shlex
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget_meter import BudgetMeter
from .candidate import Candidate
from .config import Budget, Options
from .errors import BudgetExhausted, ClusterLost, ConfigError, LLMError
from .evaluator import Evaluator
from .executors import ClusterExecutor, cluster_gone, open_executor
from .operators.base import Proposal, VariationContext, VariationOperator
from .population import Pick, StoredMembers
from .records import Descriptors, Event, EventHandler, Member, Trial, Usage
from .result import EvalResult, Status
from .run import Run
from .scheduling import Priority, gpu_priority
from .services import Knowledge
from .trial_services import (
    EngineRemeasure,
    EngineServices,
    commit_rule,
    evaluate_retrying,
    lesson_text,
    outcome_of,
)

# Budget, Options (config) and Event (records) stay importable from here.
__all__ = ["BestVersion", "Budget", "Event", "EvolveResult", "Options", "evolve", "export_best", "iterate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BestVersion:
    candidate: Candidate
    result: EvalResult
    path: Path  # the best version's entry file, written under <run>/best/

    @property
    def score(self) -> float | None:
        return self.result.score


@dataclass(frozen=True, slots=True, kw_only=True)
class EvolveResult:
    best: BestVersion | None
    trials: tuple[Trial, ...]  # the trials finished by this call
    stopped_because: str
    run_dir: Path


class _Engine:
    """The state of one evolve() call. Worker threads run variation steps; the caller's thread yields trials."""

    def __init__(self, run: Run, operators: Sequence[VariationOperator], budget: Budget, options: Options) -> None:
        self.run, self.store, self.evaluator = run, run.store, run.evaluator
        self.operators, self.budget, self.options = list(operators), budget, options
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.stop_reason = ""
        # trial id -> (candidate id, AST fingerprint) being evaluated; empty before the proposal
        self.inflight: dict[int, tuple[str, str]] = {}
        self.inflight_keys: dict[int, tuple[str, str]] = {}  # trial id -> (candidate id, compiled key)
        self.done: queue.Queue[Trial | _Dropped | BaseException] = queue.Queue()
        self.since_commit = 0
        self.knowledge: Knowledge | None = None  # the latest knowledge base handed to operators
        self.lessons_read = 0
        self.own_lessons: list[Any] = []  # this run's lessons, as knowledge.Lesson
        self.since_proposal = 0  # trials in a row whose operator made no proposal
        self.model_failures = 0  # trials in a row ended by a failed model call
        self.paused_until = 0.0  # monotonic time before which no trial starts (backing off a failing API)
        self.executor = open_executor(options.executor, options.sandbox_config or self.evaluator.sandbox_config())
        self.store.set_meta("confinement", self.executor.confinement.as_dict())  # of the latest session
        self.store.set_meta("executor", self.executor.describe())
        device = self.evaluator.device_label()  # so that `evoagent status` never imports the target (torch)
        self.store.set_meta("target", {"name": self.evaluator.name, "device": device,
                                       "caption": self.evaluator.score_caption(device)})
        self.store.set_meta("executor_nodes", self.executor.nodes() if isinstance(self.executor, ClusterExecutor)
                            else [])  # of this session: a resumed run on the local executor has none
        if isinstance(self.executor, ClusterExecutor):  # nodes joining and leaving, a lost head
            self.executor.watch(self._cluster_changed, self._cluster_gone)
        self.usage_session = self.store.next_usage_session()  # this session's GPU busy time, beside earlier ones
        totals = self.store.totals()  # the budgets count on from the run's totals, the time from a ready sandbox
        self.meter = BudgetMeter(budget, self.lock, trials_done=totals["trials"], new_tokens=totals["new_tokens"],
                                 cost_usd=totals["cost_usd"])

    # -- events and budgets ---------------------------------------------------------------

    def emit(self, kind: str, payload: dict[str, Any], trial: Trial | None = None, *, store: bool = True) -> None:
        if store:
            self.store.add_event(kind, payload, trial_id=trial.id if trial else payload.get("trial_id"))
        if self.options.on_event is not None:
            self.options.on_event(Event(kind=kind, payload=payload, trial=trial))

    def charge(self, trial_id: int, usage: Usage) -> None:
        self.store.add_usage(trial_id, usage)
        over = self.meter.spend(usage)
        if over:
            raise BudgetExhausted(over)

    def may_start(self) -> bool:
        return not self.stop.is_set() and not self.meter.exhausted()

    def pause_left(self) -> float:
        """Seconds to wait before the next trial may start (backing off a failing model API)."""
        return max(0.0, self.paused_until - time.monotonic())

    # -- a cluster executor's news (from its threads) ----------------------------------------

    def _cluster_changed(self) -> None:
        """Records the live nodes, their calls and the weakest confinement seen (`evoagent status` shows them)."""
        self.record_cluster()
        self.emit("cluster", {"executor": self.executor.describe(),
                              "confinement": self.executor.confinement.describe()}, store=False)

    def _cluster_gone(self, reason: str) -> None:
        """Ends the run: the main loop raises this; in-flight trials are marked interrupted, to resume."""
        with self.lock:
            self.stop_reason = reason
        self.stop.set()
        self.store.set_meta("executor", self.executor.describe())  # "ray (ADDRESS, gone)"
        self.done.put(self.gone_error(reason))

    def gone_error(self, reason: str) -> ClusterLost:
        return ClusterLost(f"{reason}; resume with `evoagent resume {shlex.quote(str(self.run.dir))}`")

    def record_cluster(self) -> None:
        if isinstance(self.executor, ClusterExecutor) and not self.executor.gone:
            self.store.set_meta("executor", self.executor.describe())
            self.store.set_meta("executor_nodes", self.executor.nodes())
            self.store.set_meta("confinement", self.executor.confinement.as_dict())

    # -- seeds ----------------------------------------------------------------------------

    def evaluate_seeds(self) -> None:
        evaluated = {t.candidate_id for t in self.store.trials(state="done") if t.operator == "seed"}
        for seed in self.run.seeds:
            if seed.id in evaluated:
                continue
            trial_id = self.store.begin_trial(operator="seed", parent_id=None)
            started = time.perf_counter()
            with gpu_priority(Priority.AUTHORITATIVE):
                result = evaluate_retrying(self, seed, trial_id)
            if type(self.evaluator).equivalence_key is not Evaluator.equivalence_key:  # later equivalents: duplicates
                key = self.evaluator.equivalence_key(seed, result)
                if key is not None:
                    self.store.add_compiled_key(key, seed.id)
            gone = cluster_gone(self.executor)
            if gone:  # not the seed's result: it is evaluated again when the run is resumed
                self.store.mark_interrupted([trial_id])
                raise self.gone_error(gone)
            descriptors = self._descriptors(seed, result)
            niches = self.run.population.seed_niches(descriptors)
            placed = tuple(n for n in niches if self.run.population.decide(result, self._best(n)).committed)
            committed = bool(placed) if niches else self.run.population.decide(result, self._best(None)).committed
            trial = self.store.finish_trial(
                trial_id, candidate=seed, result=result, hypothesis="seed", diff="", committed=committed,
                eval_s=time.perf_counter() - started, lesson="", niche=niches[0] if len(niches) == 1 else None,
                placed_in=placed, descriptors=descriptors.values if descriptors else None)
            self.emit("seed", {"trial_id": trial_id, "status": result.status.value, "score": result.score,
                               "reason": result.reason}, trial)
        if self.store.latest_member() is None:
            reasons = "; ".join(f"{t.candidate_id}: {t.reason or 'correct, but no score was measured'}"
                                for t in self.store.trials(state="done") if t.operator == "seed")
            self.stop_reason = f"no seed passed evaluation ({reasons})"
            self.stop.set()

    # -- one trial ------------------------------------------------------------------------

    def start_trial(self, slot: int) -> int:
        with self.lock:
            last = self.store.last_trial_id()
            rng = random.Random(f"{self.options.seed}:{last}")
            pick = self.run.population.pick(StoredMembers(self.store), rng, last + 1)
            trial_id = self.store.begin_trial(operator=self.operators[slot].name, parent_id=pick.parent.candidate_id,
                                              niche=pick.niche)
            self.inflight[trial_id] = ("", "")
            self.meter.pending += 1
        thread = threading.Thread(target=self._worker, args=(slot, trial_id, pick, rng),
                                  name=f"evoagent-slot-{slot}", daemon=True)
        thread.start()
        return trial_id

    def _worker(self, slot: int, trial_id: int, pick: Pick, rng: random.Random) -> None:
        try:
            trial = self._trial(self.operators[slot], trial_id, pick, rng)
            self.done.put(trial if trial is not None else _Dropped(trial_id))
        except BaseException as exc:  # surfaces in the caller's thread
            self.done.put(exc)

    def _context(self, trial_id: int, parent: Candidate, pick: Pick, rng: random.Random) -> VariationContext:
        best = self.run.lineage.best()
        best_pair = None
        if best is not None:
            best_candidate, best_result = self.store.candidate(best[0]), self.store.result(best[0])
            if best_candidate is not None and best_result is not None:
                best_pair = (best_candidate, best_result)
        recent = [outcome_of(t) for t in self.store.trials(state="done", last=20, include_seeds=False)]
        return VariationContext(
            trial_id=trial_id, parent=parent, parent_result=self.store.result(parent.id), best=best_pair,
            evaluator=self.evaluator, lineage=self.run.lineage, recent=recent, knowledge=self._knowledge(), rng=rng,
            run_dir=self.run.dir, commit_rule=commit_rule(self.run.population), budget_left=self.meter.left(),
            services=EngineServices(self, trial_id), niche=self.run.population.view(StoredMembers(self.store), pick),
            model_stats=self.store.model_stats())

    def _trial(self, operator: VariationOperator, trial_id: int, pick: Pick, rng: random.Random) -> Trial | None:
        parent = self.store.candidate(pick.parent.candidate_id)
        assert parent is not None  # Check internal correctness.
        context = self._context(trial_id, parent, pick, rng)
        proposal, failure = self._vary(operator, context)
        if proposal is not None and proposal.final:  # the operator has nothing more to try: this trial is the last
            self._request_stop(proposal.reason or f"operator {operator.name!r} has nothing more to try")
        candidate = proposal.candidate if proposal else None
        if candidate is not None and not candidate.parents:
            candidate = dataclasses.replace(candidate, parents=(parent.id,))
        hypothesis = (proposal.hypothesis if proposal else "") or (candidate.hypothesis if candidate else "")
        started = time.perf_counter()
        if failure is not None:
            result = failure
        elif candidate is None:
            result = EvalResult(status=Status.NO_PROPOSAL,
                                reason=(proposal.reason if proposal else "") or "the operator made no proposal")
        elif (same := self._seen(trial_id, candidate)) is not None:
            result = EvalResult(status=Status.DUPLICATE, reason=f"equivalent to version {same} (same normalised "
                                "AST), which was already evaluated: no evaluation spent")
        else:
            with gpu_priority(Priority.AUTHORITATIVE):  # before the agents' exploratory GPU calls
                result = self._authoritative(trial_id, candidate)
        descriptors = self._descriptors(candidate, result)
        niche = self.run.population.niche(pick, descriptors)
        best = self._best(niche)
        decision = self.run.population.decide(result, best, self._remeasure(trial_id, candidate, best))
        if decision.best_score is not None:
            self.emit("confirm", {"trial_id": trial_id, "score": decision.result.score, "passed": decision.committed,
                                  "best_score": decision.best_score, "best_id": best.candidate_id if best else None,
                                  **(decision.improvement.to_dict() if decision.improvement else {})})
        eval_s = time.perf_counter() - started
        with self.lock:
            if cluster_gone(self.executor):  # its evaluation was cut short: interrupted, evaluated again on resume
                self.store.mark_interrupted([trial_id])
                return None
            now = self._best(niche)
            if decision.committed and now != best:  # another slot committed meanwhile: judge against the new best
                decision = self.run.population.decide(decision.result, now)
            result, committed = decision.result, decision.committed
            lesson = lesson_text(trial_id, hypothesis, result, committed, self.store.result(parent.id))
            trial = self.store.finish_trial(
                trial_id, candidate=candidate, result=result, hypothesis=hypothesis,
                diff=candidate.diff(parent) if candidate else "", committed=committed,
                eval_s=eval_s, lesson=lesson, niche=niche, placed_in=(niche,) if committed and niche else (),
                descriptors=descriptors.values if descriptors else None)
            self.inflight.pop(trial_id, None)
            self.inflight_keys.pop(trial_id, None)
        if trial is not None:
            operator.observe(outcome_of(trial))
        return trial

    def _vary(self, operator: VariationOperator,
              context: VariationContext) -> tuple[Proposal | None, EvalResult | None]:
        try:
            return operator.vary(context), None
        except BudgetExhausted as exc:
            self._request_stop(str(exc))
            return None, EvalResult(status=Status.BUDGET_OVERRUN, reason=str(exc))
        except LLMError as exc:  # the API failed through the backend's retries: this trial ends, the run goes on
            return None, EvalResult(status=Status.MODEL_ERROR, reason=f"model API failed: {exc}")
        except Exception as exc:  # an operator bug is ours: record it, keep the run going
            return None, EvalResult(status=Status.HARNESS_ERROR,
                                    reason=f"operator {operator.name!r} raised {type(exc).__name__}: {exc}")

    def _knowledge(self) -> Knowledge | None:
        """The knowledge base with this run's lessons so far added to the ones it came with.

        Only lessons learned since the last call are read; the knowledge base shares its index and
        each lesson's tokens with the previous one (so the cost per trial does not grow with the run).
        """
        knowledge = self.options.knowledge
        if knowledge is None:
            return None
        from .knowledge import Lesson

        with self.lock:
            new = self.store.lessons(skip=self.lessons_read)
            if new or self.knowledge is None:
                self.lessons_read += len(new)
                self.own_lessons += [Lesson(run=self.run.dir.name, trial_id=t, text=text) for t, text in new]
                self.knowledge = knowledge.with_lessons([*knowledge.lessons, *self.own_lessons])
            return self.knowledge

    def _seen(self, trial_id: int, candidate: Candidate) -> str | None:
        """The id of an evaluated (or in-flight) version equivalent to `candidate` (same AST fingerprint)."""
        key = candidate.fingerprint
        with self.lock:
            same = next((cid for cid, fp in self.inflight.values() if fp == key), None)
            same = same or self.store.equivalent_evaluated(key)
            if same is None:
                self.inflight[trial_id] = (candidate.id, key)
            return same

    def _authoritative(self, trial_id: int, candidate: Candidate) -> EvalResult:
        """The authoritative evaluation; for a target that names what a version compiles to, the first stage
        runs alone and a version that compiles to an evaluated one's kernels is a `duplicate`."""
        ev = self.evaluator
        if type(ev).equivalence_key is Evaluator.equivalence_key or len(ev.stages) < 2:
            return evaluate_retrying(self, candidate, trial_id)
        first = evaluate_retrying(self, candidate, trial_id, stages=ev.stages[:1])
        key = ev.equivalence_key(candidate, first) if first.ok else None
        if key is not None:
            with self.lock:
                same = next((cid for tid, (cid, k) in self.inflight_keys.items() if k == key and tid != trial_id),
                            None) or self.store.compiled_equivalent(key, candidate.id)
                self.inflight_keys[trial_id] = (candidate.id, key)
            self.store.add_compiled_key(key, candidate.id)
            if same is not None:
                return EvalResult(status=Status.DUPLICATE, stages=first.stages, env=first.env, device=first.device,
                                  reason=f"its compiled kernels are identical to version {same}'s, which was already "
                                         "evaluated: only the compile was spent")
        if not first.ok:
            return first
        rest = evaluate_retrying(self, candidate, trial_id, stages=ev.stages[1:])
        metrics = {**first.metrics, **rest.metrics}
        return dataclasses.replace(rest, stages=first.stages + rest.stages, metrics=metrics,
                                   score=ev.aggregate(metrics) if rest.ok and metrics else None)

    def _best(self, niche: str | None) -> Member | None:
        """The best member of a niche (island or cell), or of the whole population."""
        return StoredMembers(self.store, niche).best()

    def _descriptors(self, candidate: Candidate | None, result: EvalResult) -> Descriptors | None:
        """The target's descriptors of a correct version, when the population places versions by them."""
        if candidate is None or not result.ok or not self.run.population.uses_descriptors:
            return None
        return self.evaluator.descriptors(candidate, result)

    def migrate(self) -> None:
        """Runs the migrations due after the trials finished so far (catching up after a kill)."""
        every = self.run.population.migrate_every
        if not every:
            return
        done = []
        with self.lock:  # no slot commits while the moves are chosen and stored
            for epoch in range(self.store.last_migration_epoch() + 1, self.meter.trials_done // every + 1):
                moves = self.run.population.migration(StoredMembers(self.store))
                self.store.add_migration(epoch, moves)
                done.append({"epoch": epoch, "moves": [
                    {"from": m.niche, "to": dest, "candidate_id": m.candidate_id} for dest, m in moves]})
        for payload in done:
            self.emit("migration", payload)

    def _remeasure(self, trial_id: int, candidate: Candidate | None, best: Member | None) -> EngineRemeasure | None:
        """The re-measurement service for a population that confirms (None when there is nothing to time)."""
        if candidate is None or best is None or best.candidate_id == candidate.id or not self.evaluator.timing_stages:
            return None
        return EngineRemeasure(self, trial_id, candidate, best.candidate_id)

    def _request_stop(self, reason: str) -> None:
        with self.lock:
            if not self.stop.is_set():
                self.stop_reason = reason
                self.stop.set()

    # -- after each trial -----------------------------------------------------------------

    def record_usage(self) -> None:
        """Stores this session's GPU busy and wall seconds so far (`evoagent status` shows them)."""
        usage = self.executor.gpu_usage()
        if usage:
            self.store.record_device_usage(self.usage_session, usage)
        self.record_cluster()

    def after(self, trial: Trial) -> None:
        self.meter.trials_done += 1
        self.record_usage()
        self.migrate()
        self.since_commit = 0 if trial.committed else self.since_commit + 1
        self.since_proposal = self.since_proposal + 1 if trial.status is Status.NO_PROPOSAL else 0
        payload = {"trial_id": trial.id, "status": str(trial.status), "score": trial.score,
                   "committed": trial.committed, "hypothesis": trial.hypothesis[:200], "reason": trial.reason[:200],
                   "niche": trial.niche}
        self.emit("commit" if trial.committed else "trial", payload, trial, store=trial.committed)
        best, target, patience = self.run.lineage.best(), self.options.target_score, self.options.patience
        if target is not None and best is not None and best[1] >= target:
            self._request_stop(f"target score {target} reached ({best[1]:.6g})")
        elif patience and self.since_commit >= patience:
            self._request_stop(f"no commit in {patience} trials")
        elif self.options.no_proposal_limit and self.since_proposal >= self.options.no_proposal_limit:
            self._request_stop(f"no proposal in {self.since_proposal} trials in a row (last: {trial.reason})")
        self._after_model_failure(trial)

    def _after_model_failure(self, trial: Trial) -> None:
        """Counts trials in a row ended by a failed model call: back off, and stop after the limit."""
        if trial.status is not Status.MODEL_ERROR:
            self.model_failures = 0
            return
        self.model_failures += 1
        limit = self.options.model_failure_limit
        if limit and self.model_failures >= limit:
            self._request_stop(f"the model API failed in {self.model_failures} trials in a row "
                               f"(last: {trial.reason.splitlines()[0][:200]})")
            return
        delay = min(self.options.model_backoff_s * 2.0 ** (self.model_failures - 1), _MAX_MODEL_BACKOFF_S)
        self.paused_until = time.monotonic() + delay
        self.emit("backoff", {"trial_id": trial.id, "delay_s": delay, "failures": self.model_failures,
                              "reason": trial.reason[:200]})


@dataclass(frozen=True)
class _Dropped:
    trial_id: int  # finished after being marked interrupted (e.g. after Ctrl-C)


_MAX_MODEL_BACKOFF_S = 3600.0
_USAGE_EVERY_S = 60.0  # while trials run longer than this, their GPU busy time is stored this often


def _operators(operator: VariationOperator | Sequence[VariationOperator], slots: int) -> list[VariationOperator]:
    if isinstance(operator, VariationOperator):
        return [operator] * slots
    operators = list(operator)
    if len(operators) != slots or not all(isinstance(o, VariationOperator) for o in operators):
        raise ConfigError(f"pass one VariationOperator, or a list of exactly {slots} (one per slot)")
    return operators


def _options(options: Options | None, changes: dict[str, Any]) -> Options:
    known = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; the Options fields are {', '.join(sorted(known))}")
    return dataclasses.replace(options or Options(), **changes)


def iterate(run: Run, operator: VariationOperator | Sequence[VariationOperator], budget: Budget | None = None,
            options: Options | None = None, **changes: Any) -> Iterator[Trial]:
    """Runs the search, yielding each finished trial; stop early by breaking out of the loop.

    `options` (an `Options`) says how; keyword arguments change single fields of it (`slots=2`).
    """
    if run.store.readonly:
        raise ConfigError(f"run {str(run.dir)!r} was opened read-only; open it writable to evolve it")
    options = _options(options, changes)
    display = None
    if options.progress:
        from .progress import progress_for

        display = progress_for(run.store, run.evaluator)
        options = dataclasses.replace(options, on_event=_also(display, options.on_event))
    engine = _Engine(run, _operators(operator, options.slots), budget or Budget(), options)
    try:
        yield from _drive(engine, options.slots)
    finally:
        if display is not None:
            display.close()


def _also(first: EventHandler, then: EventHandler | None) -> EventHandler:
    """One handler calling `first` and then `then` (the caller's own) with every event."""
    def both(event: Event) -> None:
        first(event)
        if then is not None:
            then(event)
    return both


def _drive(engine: _Engine, slots: int) -> Iterator[Trial]:
    store = engine.store
    resumed = store.mark_interrupted()
    engine.emit("start", {"resumed_interrupted": resumed, "budget": dataclasses.asdict(engine.budget)})
    free = list(range(slots))
    by_trial: dict[int, int] = {}
    try:
        engine.evaluate_seeds()
        engine.migrate()
        while True:
            while free and engine.may_start() and not engine.pause_left():
                slot = free.pop()
                by_trial[engine.start_trial(slot)] = slot
            if not by_trial:
                if engine.may_start():  # nothing in flight, backing off a failing model API
                    engine.stop.wait(engine.pause_left())
                    continue
                break
            try:
                item = engine.done.get(timeout=min(engine.pause_left() or _USAGE_EVERY_S, _USAGE_EVERY_S))
            except queue.Empty:  # the pause is over (start trials in the free slots), or long trials run on
                engine.record_usage()
                continue
            if isinstance(item, BaseException):
                raise item
            engine.meter.pending -= 1
            if isinstance(item, _Dropped):
                free.append(by_trial.pop(item.trial_id))
                continue
            free.append(by_trial.pop(item.id))
            engine.after(item)
            yield item
        engine.stop_reason = engine.stop_reason or engine.meter.exhausted() or "done"
    except (KeyboardInterrupt, GeneratorExit):
        engine.stop_reason = "interrupted"
        engine.stop.set()
        raise
    finally:
        if by_trial:
            store.mark_interrupted(list(by_trial))
        engine.record_usage()
        engine.executor.close()
        engine.emit("stop", {"reason": engine.stop_reason or "stopped", **engine.run.status()})


def evolve(run: Run, operator: VariationOperator | Sequence[VariationOperator], budget: Budget | None = None,
           options: Options | None = None, **changes: Any) -> EvolveResult:
    """Runs the search until a budget or stop condition ends it (Ctrl-C stops gracefully); arguments as `iterate`."""
    options = _options(options, changes)
    trials: list[Trial] = []
    reason = ""

    def remember(event: Event) -> None:
        nonlocal reason
        if event.kind == "stop":
            reason = event.payload.get("reason", "")
        if options.on_event is not None:
            options.on_event(event)

    try:
        for trial in iterate(run, operator, budget, dataclasses.replace(options, on_event=remember)):
            trials.append(trial)
    except KeyboardInterrupt:
        reason = "interrupted"
    return EvolveResult(best=export_best(run), trials=tuple(trials), stopped_because=reason, run_dir=run.dir)


def export_best(run: Run) -> BestVersion | None:
    """Writes the best committed version under <run>/best/ and returns it."""
    candidate, result = run.best, run.best_result
    if candidate is None or result is None:
        return None
    target = run.dir / "best"
    target.mkdir(exist_ok=True)
    for old in target.iterdir():
        if old.is_file():
            old.unlink()
    return BestVersion(candidate=candidate, result=result, path=candidate.write_to(target))
