"""Shared records: model usage, stored trials, members, trial outcomes and engine events (a leaf module).

Every part reads these (the store writes them, populations and operators read them), so they sit
below all of them and import nothing of evoagent but `result`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .result import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Model usage of one call, trial or run. Token counts are integers; cost is in US dollars.

    `unpriced_calls` counts the calls to models whose price is unknown: their tokens are counted,
    their cost is not, so `cost_usd` is then a lower bound.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0

    @property
    def tokens(self) -> int:
        """Every token, cache reads included."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def new_tokens(self) -> int:
        """Tokens the model processed anew: input, cache writes and output (what the `tokens` budget counts)."""
        return self.input_tokens + self.output_tokens + self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced_calls=self.unpriced_calls + other.unpriced_calls,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStats:
    """What one model did in a run: finished trials it was asked in, commits, tokens and USD.

    `unpriced_calls` counts its calls whose cost is unknown (the model has no known price).
    """

    model: str
    trials: int = 0
    commits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """One variation step as stored: what was proposed, how it was judged, what it cost."""

    id: int
    state: str  # running | done | interrupted
    operator: str
    parent_id: str | None
    candidate_id: str | None
    model: str | None = None  # the model the operator asked in this trial (None: no model)
    hypothesis: str = ""
    diff: str = ""
    status: Status | None = None
    reason: str = ""
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    committed: bool = False
    usage: Usage = field(default_factory=Usage)
    started_at: float = 0.0
    finished_at: float | None = None
    wall_s: float | None = None
    eval_s: float | None = None
    niche: str | None = None  # the island it worked in, or the MAP-Elites cell its result fell in
    descriptors: Mapping[str, float | None] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        from .formatting import format_duration, format_tokens, table_html
        from .result import format_score

        label = "committed" if self.committed else str(self.status) if self.status is not None else self.state
        return table_html([
            ("trial", f"{self.id} ({self.operator})"), ("label", label), ("score", format_score(self.score)),
            ("parent", self.parent_id or "-"), ("version", self.candidate_id or "-"),
            ("hypothesis", self.hypothesis or "-"), ("reason", self.reason or "-"),
            ("usage", f"{format_tokens(self.usage.tokens)} tokens, ${self.usage.cost_usd:.2f}, "
                      f"wall {format_duration(self.wall_s)}")], title=f"trial {self.id}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A committed version of the population (or of one niche: an island or a MAP-Elites cell)."""

    seq: int
    candidate_id: str
    trial_id: int
    score: float
    niche: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptors:
    """Behaviour descriptors of one evaluated version (MAP-Elites places versions by them).

    Attributes:
        values: descriptor name -> value (None: the target could not measure it for this version).
        bins: suggested bin edges per descriptor (a descriptor without edges gets one bin per value).
    """

    values: Mapping[str, float | None]
    bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class NicheView:
    """What a variation step is told about the niche (island or MAP-Elites cell) it works in.

    Attributes:
        name: the niche, e.g. "island 2" or "cell BLOCK_M=128 num_warps=8".
        text: prompt text: the niche's best, its neighbours' elites, how versions are kept.
        suggestion: an empty cell worth aiming for ("" if none); the supervisor passes it on.
    """

    name: str
    text: str
    suggestion: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialOutcome:
    """A finished trial as operators and prompts see it."""

    trial_id: int
    candidate_id: str | None
    parent_id: str | None
    hypothesis: str
    status: Status
    reason: str
    score: float | None
    committed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something the engine reports while it runs (for progress bars and reports)."""

    kind: str  # seed | trial | commit | stop | supervisor | confirm | start | backoff | compaction
    payload: dict[str, Any] = field(default_factory=dict)
    trial: Trial | None = None


EventHandler = Callable[[Event], None]
