"""Population policies: which version the next variation starts from, and which results are committed."""

from __future__ import annotations

import abc
import dataclasses
import inspect
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ConfigError
from .records import Descriptors, Member, NicheView
from .result import EvalResult
from .store import RunStore


class Members(Protocol):
    """The committed members, as a policy may query them (backed by the store; cheap at any size).

    `niche(name)` is the same view restricted to one island or MAP-Elites cell (its placements,
    migrants included); `elites()` is the best member of every niche, in the order the niches were
    first filled (`elite_count()` and `elite_at(i)` without reading them all).
    """

    def __len__(self) -> int: ...
    def best(self) -> Member | None: ...
    def latest(self) -> Member | None: ...
    def at(self, index: int) -> Member: ...
    def top(self, k: int) -> list[Member]: ...
    def has(self, candidate_id: str) -> bool: ...
    def niche(self, name: str) -> Members: ...
    def elites(self) -> list[Member]: ...
    def elite_count(self) -> int: ...
    def elite_at(self, index: int) -> Member: ...


def _rank(m: Member) -> tuple[float, int]:
    return (m.score, m.seq)


class MemberList:
    """`Members` over an in-memory list (for tests and custom policies); a member's `niche` places it."""

    def __init__(self, members: Sequence[Member], niche: str | None = None) -> None:
        self._all = list(members)
        self._members = [m for m in self._all if niche is None or m.niche == niche]

    def __len__(self) -> int:
        return len(self._members)

    def best(self) -> Member | None:
        return max(self._members, key=_rank, default=None)

    def latest(self) -> Member | None:
        return self._members[-1] if self._members else None

    def at(self, index: int) -> Member:
        return self._members[index]

    def top(self, k: int) -> list[Member]:
        return sorted(self._members, key=_rank, reverse=True)[:k]

    def has(self, candidate_id: str) -> bool:
        return any(m.candidate_id == candidate_id for m in self._members)

    def niche(self, name: str) -> MemberList:
        return MemberList(self._all, name)

    def elites(self) -> list[Member]:
        names = list(dict.fromkeys(m.niche for m in self._all if m.niche is not None))
        return [best for best in (self.niche(n).best() for n in names) if best is not None]

    def elite_count(self) -> int:
        return len(self.elites())

    def elite_at(self, index: int) -> Member:
        return self.elites()[index]


class StoredMembers:
    """`Members` read from a run store with indexed queries (all committed members, or one niche's)."""

    def __init__(self, store: RunStore, niche: str | None = None) -> None:
        self._store = store
        self._niche = niche

    def __len__(self) -> int:
        return self._store.member_count() if self._niche is None else self._store.niche_count(self._niche)

    def best(self) -> Member | None:
        if self._niche is None:
            return self._store.best_member()
        top = self._store.niche_top(self._niche, 1)
        return top[0] if top else None

    def latest(self) -> Member | None:
        return self._store.latest_member() if self._niche is None else self._store.niche_latest(self._niche)

    def at(self, index: int) -> Member:
        return self._store.member_at(index) if self._niche is None else self._store.niche_at(self._niche, index)

    def top(self, k: int) -> list[Member]:
        if self._niche is None:
            return self._store.top_members(k)
        return self._store.niche_top(self._niche, k)

    def has(self, candidate_id: str) -> bool:
        if self._niche is None:
            return self._store.is_member(candidate_id)
        return self._store.niche_has(self._niche, candidate_id)

    def niche(self, name: str) -> StoredMembers:
        return StoredMembers(self._store, name)

    def elites(self) -> list[Member]:
        return self._store.elites()

    def elite_count(self) -> int:
        return self._store.elite_count()

    def elite_at(self, index: int) -> Member:
        return self._store.elite_at(index)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pick:
    """Where one trial starts: the parent, and the niche (island) it works in (None: the whole population)."""

    parent: Member
    niche: str | None = None


class Remeasure(Protocol):
    """The engine's re-measurement service for one would-be commit (its timing stages, in the same sandbox)."""

    def candidate(self) -> EvalResult:
        """The would-be commit measured again."""
        ...

    def best(self) -> EvalResult:
        """The incumbent (best committed member) measured again."""
        ...

    def aggregate(self, metrics: Mapping[str, float]) -> float | None:
        """The target's scalar score of a metrics vector."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Improvement:
    """A re-measured ratio to the incumbent: the median of the paired rounds and their spread.

    Each round measures the candidate and then the incumbent, so both see the same machine state;
    `ratio` is the median of the rounds' score ratios, `low` and `high` the smallest and largest.
    """

    ratio: float
    low: float
    high: float
    rounds: int

    def to_dict(self) -> dict[str, float | int]:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "rounds": self.rounds}


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A population's verdict on one result.

    Attributes:
        committed: whether the result's version joins the population.
        result: the result to store (after re-measurement: per-config medians and their score).
        best_score: the incumbent's median score when it was re-measured, else None.
        improvement: the re-measured ratio to the incumbent with its spread (None without re-measurement).
    """

    committed: bool
    result: EvalResult
    best_score: float | None = None
    improvement: Improvement | None = None


def paired_improvement(mine: Sequence[float | None], theirs: Sequence[float | None]) -> Improvement | None:
    """The ratios of paired re-measurements (candidate round i / incumbent round i) as an Improvement."""
    ratios = [a / b for a, b in zip(mine, theirs, strict=True) if a is not None and b is not None and b > 0]
    if not ratios:
        return None
    return Improvement(ratio=statistics.median(ratios), low=min(ratios), high=max(ratios), rounds=len(ratios))


def _remeasured_note(best_id: str, improvement: Improvement | None, passed: bool) -> str:
    if improvement is None:
        return f"re-measured beside best {best_id}: no paired round could be scored" + ("" if passed else
                                                                                       "; not committed")
    figure = (f"{improvement.ratio:.3f}x best {best_id} (paired rounds {improvement.low:.3f}-{improvement.high:.3f}, "
              f"{improvement.rounds} re-measurement{'s' if improvement.rounds != 1 else ''} interleaved)")
    return figure if passed else f"{figure}; not committed: the re-measurements do not show it beyond noise"


def medians(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-configuration median over repeated measurements (configurations present in every run)."""
    names = set(runs[0]).intersection(*runs[1:])
    return {name: statistics.median(run[name] for run in runs) for name in sorted(names)}


@dataclass(frozen=True, slots=True)
class MatchOrImprove:
    """AVO's commit rule: correct, and score >= best - tolerance * |best| (best over committed versions).

    For positive scores this is `score >= best * (1 - tolerance)`; written with |best| so that it
    stays a relaxation for negative scores too. A tolerance of 0 demands match-or-improve exactly.
    """

    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"commit tolerance must be in [0, 1) (got {self.tolerance!r}); e.g. 0.005 for 0.5%")

    def __call__(self, score: float, best: float | None) -> bool:
        return best is None or score >= best - self.tolerance * abs(best)

    def spec(self) -> dict[str, Any]:
        return {"rule": "match_or_improve", "tolerance": self.tolerance}


CommitRule = Callable[[float, "float | None"], bool]


def _rule_spec(rule: CommitRule) -> dict[str, Any]:
    spec = getattr(rule, "spec", None)
    return dict(spec()) if callable(spec) else {"rule": getattr(rule, "__qualname__", "custom")}


def _every_correct(score: float, best: float | None) -> bool:
    return True


class Population(abc.ABC):
    """A population policy over the committed members stored in the run.

    `confirm` (noise-aware acceptance): when > 0 and the evaluator has timing stages, a candidate
    that passes the commit rule is re-measured `confirm` times, interleaved with the current best,
    and committed only if the medians still pass the rule; it is stored with its median score.
    """

    name: str = "population"

    def __init__(self, rule: CommitRule, *, confirm: int = 0) -> None:
        if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 0:
            raise ConfigError(f"confirm must be an integer >= 0 (re-measurements before a commit), got {confirm!r}")
        self.rule = rule
        self.confirm = confirm

    def accepts(self, result: EvalResult, best_score: float | None) -> bool:
        """The commit rule: only correct results with a score, judged against the best member's score."""
        if not result.ok or result.score is None:
            return False
        return bool(self.rule(result.score, best_score))

    def decide(self, result: EvalResult, best: Member | None, remeasure: Remeasure | None = None) -> Decision:
        """The whole acceptance decision for one authoritative result, given the best committed member.

        With `confirm > 0` and a `remeasure` service, a result that passes the commit rule is
        re-measured `confirm` times, each time followed by the incumbent, and judged on the
        per-configuration medians; the decision's result then carries the medians and their score.
        """
        if not self.accepts(result, best.score if best else None):
            return Decision(committed=False, result=result)
        if not self.confirm or best is None or remeasure is None:
            return Decision(committed=True, result=result)
        mine: list[Mapping[str, float]] = [result.metrics]
        theirs: list[Mapping[str, float]] = []
        pairs: list[tuple[float | None, float | None]] = []  # (candidate, incumbent) scores of each round
        for round_ in range(1, self.confirm + 1):
            again = remeasure.candidate()
            if not again.ok:
                reason = f"re-measurement {round_} of {self.confirm}: {again.reason}"
                return Decision(committed=False, result=dataclasses.replace(again, reason=reason))
            mine.append(again.metrics)
            incumbent = remeasure.best()
            if incumbent.ok:
                theirs.append(incumbent.metrics)
                pairs.append((remeasure.aggregate(again.metrics), remeasure.aggregate(incumbent.metrics)))
        if not theirs:  # the incumbent could not be re-measured: judge on the first measurement
            return Decision(committed=True, result=result)
        metrics, best_metrics = medians(mine), medians(theirs)
        score, best_score = remeasure.aggregate(metrics), remeasure.aggregate(best_metrics)
        improvement = paired_improvement([a for a, _ in pairs], [b for _, b in pairs])
        passed = self.passes_remeasured(score, best_score, improvement)
        return Decision(committed=passed, result=dataclasses.replace(
            result, metrics=metrics, score=score, reason=_remeasured_note(best.candidate_id, improvement, passed)),
            best_score=best_score, improvement=improvement)

    def passes_remeasured(self, score: float | None, best_score: float | None,
                          improvement: Improvement | None) -> bool:
        """The commit rule after re-measurement: the medians pass it, and so does the worst paired round.

        Noise cannot make a commit: every round, measured beside the incumbent, must show the candidate
        matching or beating it (within the rule's tolerance), not only the median.
        """
        if score is None or best_score is None or not self.rule(score, best_score):
            return False
        return improvement is None or bool(self.rule(best_score * improvement.low, best_score))

    @abc.abstractmethod
    def select_parent(self, members: Members, rng: random.Random) -> Member:
        """The member the next variation step starts from (members is never empty)."""

    # Niches (islands, MAP-Elites cells). A single population has none: these are its defaults.
    uses_descriptors: bool = False  # whether `niche` needs the target's descriptors of a result
    migrate_every: int = 0  # finished trials between migrations (0: never)

    def pick(self, members: Members, rng: random.Random, trial_number: int) -> Pick:
        """The parent of trial number `trial_number` and the niche it works in."""
        return Pick(parent=self.select_parent(members, rng))

    def niche(self, pick: Pick, descriptors: Descriptors | None) -> str | None:
        """Where a result of this trial is judged and placed (None: against the whole population)."""
        return None

    def seed_niches(self, descriptors: Descriptors | None) -> tuple[str, ...]:
        """The niches a seed is judged in and placed into (none: the whole population)."""
        return ()

    def migration(self, members: Members) -> list[tuple[str, Member]]:
        """The moves of one migration: (destination niche, member)."""
        return []

    def view(self, members: Members, pick: Pick) -> NicheView | None:
        """What the trial's operator is told about its niche (None: no niches)."""
        return None

    def spec(self) -> dict[str, Any]:
        """How to rebuild this policy (stored with the run): its kind, constructor arguments and rule's name."""
        values = {name: getattr(self, name) for name in settings(type(self))}
        return {"kind": self.name, **{k: v if not callable(v) else "custom" for k, v in values.items()},
                **_rule_spec(self.rule)}


class Chain(Population):
    """AVO's single lineage: each version starts from the latest committed one."""

    name = "chain"

    def __init__(self, tolerance: float = 0.0, *, confirm: int = 0, rule: CommitRule | None = None) -> None:
        super().__init__(rule or MatchOrImprove(tolerance), confirm=confirm)
        self.tolerance = tolerance

    def select_parent(self, members: Members, rng: random.Random) -> Member:
        latest = members.latest()
        assert latest is not None  # Check internal correctness.
        return latest


ParentSelector = Callable[[Members, random.Random], Member]


class Tree(Population):
    """Every correct candidate becomes a node; the parent is chosen by `parent_selection`.

    `parent_selection` is "best", "tournament" (the best of `tournament_size` members drawn at
    random) or a function `(members, rng) -> member`.
    """

    name = "tree"

    def __init__(self, parent_selection: str | ParentSelector = "tournament", *, tournament_size: int = 3,
                 confirm: int = 0, rule: CommitRule | None = None) -> None:
        super().__init__(rule or _every_correct, confirm=confirm)
        if isinstance(parent_selection, str) and parent_selection not in ("best", "tournament"):
            raise ConfigError(
                f"Tree parent_selection must be 'best', 'tournament' or a function (got {parent_selection!r})")
        if tournament_size < 1:
            raise ConfigError(f"Tree tournament_size must be >= 1 (got {tournament_size!r})")
        self.parent_selection = parent_selection
        self.tournament_size = tournament_size

    def select_parent(self, members: Members, rng: random.Random) -> Member:
        if callable(self.parent_selection):
            return self.parent_selection(members, rng)
        if self.parent_selection == "best":
            best = members.best()
            assert best is not None  # Check internal correctness.
            return best
        picks = rng.sample(range(len(members)), min(self.tournament_size, len(members)))
        return max((members.at(i) for i in picks), key=lambda m: (m.score, m.seq))


def settings(cls: type[Population]) -> list[str]:
    """The settings of a population kind: its constructor's arguments (the commit rule aside, a function)."""
    return [name for name in inspect.signature(cls).parameters if name != "rule"]
