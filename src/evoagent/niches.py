"""Populations of several niches (Islands, MAP-Elites over target descriptors) and the table of population kinds.

A niche is a named part of the population: an island ("island 2") or a MAP-Elites cell
("cell BLOCK_M=128 num_warps=8 registers=128-192"). The store keeps each niche's placements
(commits and migrants), so every choice here is a query on what the run has stored: a resumed run
picks, judges and migrates exactly as the killed one would have.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from typing import Any

from .config import check_keys, construct
from .errors import ConfigError
from .population import (
    Chain,
    CommitRule,
    Decision,
    MatchOrImprove,
    Members,
    Pick,
    Population,
    Remeasure,
    Tree,
    settings,
)
from .records import Descriptors, Member, NicheView
from .result import EvalResult, format_score

CELL_PREFIX = "cell "
ISLAND_PREFIX = "island "
_NEIGHBOURS_SHOWN = 6


class Islands(Population):
    """`n` populations that evolve apart under one policy (Chain or Tree), with ring migration.

    Trial t works on island t mod n: its parent comes from that island and its result is judged
    against that island's best. Every `migrate_every` finished trials, the best `migrants` members
    of each island are placed in the next island (island n-1 feeds island 0); a migrant already
    there is not placed twice. Seeds start on every island.
    """

    name = "islands"

    def __init__(self, n: int = 4, *, migrate_every: int = 10, migrants: int = 1,
                 policy: str | Mapping[str, Any] | Population = "chain") -> None:
        for label, value, low in (("n", n, 1), ("migrate_every", migrate_every, 0), ("migrants", migrants, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"Islands {label} must be an integer >= {low} (got {value!r})")
        inner = policy if isinstance(policy, Population) else population_from_spec(
            {"kind": policy} if isinstance(policy, str) else policy, "population.policy")
        if not isinstance(inner, (Chain, Tree)):
            raise ConfigError(f"Islands policy must be 'chain' or 'tree' (got {policy!r})")
        super().__init__(inner.rule, confirm=inner.confirm)
        self.n, self.migrate_every, self.migrants, self.policy = n, migrate_every, migrants, inner

    @staticmethod
    def island(index: int) -> str:
        return f"{ISLAND_PREFIX}{index}"

    def decide(self, result: EvalResult, best: Member | None, remeasure: Remeasure | None = None) -> Decision:
        return self.policy.decide(result, best, remeasure)

    def select_parent(self, members: Members, rng: random.Random) -> Member:
        return self.policy.select_parent(members, rng)

    def pick(self, members: Members, rng: random.Random, trial_number: int) -> Pick:
        island = self.island(trial_number % self.n)
        local = members.niche(island)
        return Pick(parent=self.policy.select_parent(local if len(local) else members, rng), niche=island)

    def niche(self, pick: Pick, descriptors: Descriptors | None) -> str | None:
        return pick.niche

    def seed_niches(self, descriptors: Descriptors | None) -> tuple[str, ...]:
        return tuple(self.island(i) for i in range(self.n))

    def migration(self, members: Members) -> list[tuple[str, Member]]:
        moves = []
        for i in range(self.n):
            destination = self.island((i + 1) % self.n)
            if destination == self.island(i):
                continue
            there = members.niche(destination)
            moves += [(destination, m) for m in members.niche(self.island(i)).top(self.migrants)
                      if not there.has(m.candidate_id)]
        return moves

    def view(self, members: Members, pick: Pick) -> NicheView | None:
        assert pick.niche is not None  # Check internal correctness.
        lines = [f"You work on {pick.niche} of {self.n} (islands evolve apart; a version is judged against its "
                 f"island's best). Every {self.migrate_every} trials the best {self.migrants} of each island "
                 "move to the next island."]
        for i in range(self.n):
            best = members.niche(self.island(i)).best()
            mark = "  <- yours" if self.island(i) == pick.niche else ""
            lines.append(f"  {self.island(i)}: best {best.candidate_id if best else '-'} score "
                         f"{format_score(best.score if best else None)}{mark}")
        return NicheView(name=pick.niche, text="\n".join(lines))

    def spec(self) -> dict[str, Any]:
        return {"kind": self.name, "n": self.n, "migrate_every": self.migrate_every, "migrants": self.migrants,
                "policy": self.policy.spec()}


class MapElites(Population):
    """A MAP-Elites archive: one elite per cell of a grid over the target's behaviour descriptors.

    A result's cell comes from its descriptors (`Evaluator.descriptors`): each named descriptor is
    binned by `bins` (edges; otherwise the target's suggested edges; otherwise one bin per value).
    A correct result is kept when its cell is empty or it matches or improves that cell's elite
    (`tolerance` as in Chain), so the archive keeps different versions, not only the fastest.
    The parent of each trial is the elite of a cell drawn uniformly at random.

    Args:
        descriptors: the descriptor names spanning the grid (empty: every descriptor the target reports).
        bins: descriptor name -> increasing bin edges.
    """

    name = "map_elites"
    uses_descriptors = True

    def __init__(self, descriptors: Sequence[str] = (), *, bins: Mapping[str, Sequence[float]] | None = None,
                 tolerance: float = 0.0, confirm: int = 0, rule: CommitRule | None = None) -> None:
        super().__init__(rule or MatchOrImprove(tolerance), confirm=confirm)
        if isinstance(descriptors, str) or not all(isinstance(d, str) and d for d in descriptors):
            raise ConfigError(f"MapElites descriptors must be a list of descriptor names (got {descriptors!r})")
        self.descriptors = tuple(descriptors)
        self.bins = {name: _edges(name, edges) for name, edges in (bins or {}).items()}
        self.tolerance = tolerance

    def select_parent(self, members: Members, rng: random.Random) -> Member:
        count = members.elite_count()
        if not count:
            latest = members.latest()
            assert latest is not None  # Check internal correctness.
            return latest
        return members.elite_at(rng.randrange(count))

    def pick(self, members: Members, rng: random.Random, trial_number: int) -> Pick:
        parent = self.select_parent(members, rng)
        return Pick(parent=parent, niche=parent.niche)

    def niche(self, pick: Pick, descriptors: Descriptors | None) -> str | None:
        return self.cell(descriptors) if descriptors is not None else None

    def seed_niches(self, descriptors: Descriptors | None) -> tuple[str, ...]:
        return (self.cell(descriptors),) if descriptors is not None else ()

    def cell(self, descriptors: Descriptors) -> str:
        """The cell a version with these descriptors falls in, e.g. 'cell BLOCK_M=128 registers=128-192'."""
        names = self.descriptors or tuple(descriptors.values)
        parts = []
        for name in names:
            if name not in descriptors.values:
                raise ConfigError(f"MAP-Elites descriptor {name!r} is not one the target reports "
                                  f"({', '.join(descriptors.values) or 'none'}); fix [population] descriptors")
            edges = self.bins.get(name) or tuple(descriptors.bins.get(name, ()))
            parts.append(f"{name}={_label(descriptors.values[name], edges)}")
        return CELL_PREFIX + " ".join(parts)

    def view(self, members: Members, pick: Pick) -> NicheView | None:
        elites = [(e, parse_cell(e.niche or "")) for e in members.elites()]  # one scan: linear in filled cells
        here = parse_cell(pick.niche or "")
        neighbours = [e for e, cell in elites if _distance(cell, here) == 1]
        lines = [f"MAP-Elites: {len(elites)} cells filled. A correct version is kept when its cell is empty or it "
                 "matches or beats that cell's elite, so reaching an empty cell counts even when it is slower "
                 "than the best.",
                 f"Your starting version {pick.parent.candidate_id} is the elite of {pick.niche} "
                 f"(score {format_score(pick.parent.score)})."]
        if neighbours:
            lines.append("Neighbouring elites (one descriptor different):")
            lines += [f"  {e.niche}: {e.candidate_id} score {format_score(e.score)}"
                      for e in sorted(neighbours, key=lambda e: -e.score)[:_NEIGHBOURS_SHOWN]]
        suggestion = _empty_neighbour(here, [cell for _, cell in elites], {e.niche for e, _ in elites})
        if suggestion:
            lines.append(f"Empty cell next to yours: {suggestion}")
        return NicheView(name=pick.niche or "", text="\n".join(lines), suggestion=suggestion)


def _empty_neighbour(here: Mapping[str, str], cells: Sequence[Mapping[str, str]], filled: set[str | None]) -> str:
    """An empty cell one descriptor away from `here`, using the values the filled cells show."""
    seen: dict[str, dict[str, None]] = {}
    for cell in cells:
        for name, label in cell.items():
            seen.setdefault(name, {})[label] = None
    for name, label in here.items():
        for other in seen.get(name, {}):
            key = CELL_PREFIX + " ".join(f"{n}={other if n == name else v}" for n, v in here.items())
            if other != label and key not in filled:
                return key
    return ""


def _edges(name: str, edges: Sequence[float]) -> tuple[float, ...]:
    values = tuple(edges)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or \
            list(values) != sorted(set(values)):
        raise ConfigError(f"MapElites bins for {name!r} must be increasing numbers (got {list(values)!r})")
    return tuple(float(v) for v in values)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _label(value: float | None, edges: Sequence[float]) -> str:
    """The bin of a descriptor value: '<e0', 'e0-e1', '>=eN', the value itself without edges, 'n/a' if unmeasured."""
    if value is None:
        return "n/a"
    if not edges:
        return _number(value)
    i = bisect.bisect_right(edges, value)
    if i == 0:
        return f"<{_number(edges[0])}"
    if i == len(edges):
        return f">={_number(edges[-1])}"
    return f"{_number(edges[i - 1])}-{_number(edges[i])}"


def parse_cell(niche: str) -> dict[str, str]:
    """'cell a=1 b=2-4' -> {'a': '1', 'b': '2-4'} ({} for anything that is not a cell)."""
    if not niche.startswith(CELL_PREFIX):
        return {}
    return dict(part.split("=", 1) for part in niche[len(CELL_PREFIX):].split() if "=" in part)


def _distance(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b)) if a and b else -1


POPULATIONS: dict[str, type[Population]] = {"chain": Chain, "tree": Tree, "islands": Islands,
                                            "map_elites": MapElites}


def population_kind(kind: Any) -> type[Population]:
    if kind not in POPULATIONS:
        raise ConfigError(f"unknown population kind {kind!r}; expected one of {', '.join(map(repr, POPULATIONS))}")
    return POPULATIONS[kind]


def population_from_spec(spec: Mapping[str, Any], where: str = "population") -> Population:
    """Builds a built-in population policy from a `[population]` table or a stored spec.

    `kind` names the policy; the other keys are its constructor's arguments. A stored spec's
    `rule` (the commit rule's name) and `tolerance` (a rule setting) are informational where the
    kind does not take them: built-in kinds bring their own rule.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table with a 'kind' (got {spec!r})")
    cls = population_kind(spec.get("kind", "chain"))
    check_keys({k: v for k, v in spec.items() if k != "rule"}, ["kind", *settings(cls)], where)
    return construct(cls, {k: v for k, v in spec.items() if k not in ("kind", "rule")}, where)  # type: ignore[no-any-return]
