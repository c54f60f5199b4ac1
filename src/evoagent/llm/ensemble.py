"""Ensemble: several models behind the LLM protocol, and a UCB bandit that picks one per variation step.

The bandit follows ShinkaEvolve's UCB model selection, with commits per US dollar as the reward
(commits per trial when some model's cost is unknown). Its state is the run's per-model counts
(`ModelStats`, kept by the run store and handed to each step in the context), so it survives
`evoagent resume` and is shared by parallel slots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..records import ModelStats
from .base import LLM, Block, LLMResponse, Message

__all__ = ["Ensemble", "Member", "model_name"]


def model_name(llm: Any) -> str:
    """The name a backend's trials are recorded under: its model, or its name for offline policies."""
    model = getattr(llm, "model", None)
    return model if isinstance(model, str) and model else str(llm.name)


@dataclass(frozen=True, slots=True)
class Member:
    """One model of an ensemble and its prior weight (a larger weight explores it more)."""

    llm: LLM
    weight: float = 1.0


class Ensemble:
    """Models behind one LLM: `choose` picks the model for the next step, `complete` asks it.

    Args:
        members: the models (an `LLM`, or a `Member` with a weight); their model names must differ.
        exploration: the UCB exploration constant c in value + c * weight * sqrt(ln N / n).
    """

    name = "ensemble"

    def __init__(self, members: Sequence[LLM | Member], *, exploration: float = 0.5) -> None:
        self.members = [m if isinstance(m, Member) else Member(m) for m in members]
        if len(self.members) < 2:
            raise ConfigError("an ensemble needs at least two models ([[operator.models]] entries)")
        names = [model_name(m.llm) for m in self.members]
        if len(set(names)) != len(names):
            raise ConfigError(f"the models of an ensemble must differ, got {names}")
        for m in self.members:
            if isinstance(m.weight, bool) or not isinstance(m.weight, (int, float)) or m.weight <= 0:
                raise ConfigError(f"an ensemble weight must be a positive number, got {m.weight!r}")
        if isinstance(exploration, bool) or not isinstance(exploration, (int, float)) or exploration < 0:
            raise ConfigError(f"Ensemble exploration must be a number >= 0, got {exploration!r}")
        self.names = names
        self.exploration = exploration
        mean = sum(m.weight for m in self.members) / len(self.members)
        self._weights = {n: m.weight / mean for n, m in zip(names, self.members)}
        self._current = names[0]

    @property
    def model(self) -> str:
        """The model that answers now (the last one chosen)."""
        return self._current

    def __repr__(self) -> str:
        return f"Ensemble({self.names}, exploration={self.exploration})"

    def describe(self) -> str:
        """One line for the start of a run."""
        parts = []
        for name, member in zip(self.names, self.members):
            describe = getattr(member.llm, "describe", None)
            parts.append(f"{describe() if callable(describe) else name} x{member.weight:g}")
        return "ensemble of " + "; ".join(parts) + " (UCB on commits per USD)"

    def spec(self) -> dict[str, Any]:
        specs = []
        for member in self.members:
            spec = getattr(member.llm, "spec", None)
            specs.append({"llm": spec() if callable(spec) else {"name": member.llm.name}, "weight": member.weight})
        return {"class": "evoagent.llm.ensemble:Ensemble", "params": {"members": specs,
                                                                        "exploration": self.exploration}}

    def choose(self, stats: Mapping[str, ModelStats]) -> str:
        """Picks the model for the next step by UCB over the run's per-model counts; returns its name."""
        scores = self.scores(stats)
        self._current = max(self.names, key=lambda n: (scores[n], self._weights[n]))
        return self._current

    def scores(self, stats: Mapping[str, ModelStats]) -> dict[str, float]:
        """Each model's UCB score (infinite for a model not tried yet in this run)."""
        pulls = {n: stats[n].trials if n in stats else 0 for n in self.names}
        priced = all(n in stats and stats[n].unpriced_calls == 0 and stats[n].cost_usd > 0 for n in self.names)
        value = {n: _reward(stats.get(n), priced) for n in self.names}
        best = max(value.values()) or 1.0
        total = sum(pulls.values())
        return {n: math.inf if pulls[n] == 0 else
                value[n] / best + self.exploration * self._weights[n] * math.sqrt(math.log(total) / pulls[n])
                for n in self.names}

    def complete(self, *, system: str | Sequence[Block], messages: Sequence[Message],
                 tools: Sequence[Mapping[str, Any]] = (), max_tokens: int | None = None) -> LLMResponse:
        """Asks the chosen model (earlier turns' thinking blocks left out: they belong to the model that wrote them)."""
        llm = self.members[self.names.index(self._current)].llm
        return llm.complete(system=system, messages=_without_old_thinking(messages), tools=tools,
                            max_tokens=max_tokens)


def _without_old_thinking(messages: Sequence[Message]) -> list[Message]:
    """The messages with thinking blocks kept only in the last assistant message (the API needs those)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    out: list[Message] = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if i != last and message.get("role") == "assistant" and isinstance(content, list):
            message = {**message, "content": [b for b in content if b.get("type") not in
                                              ("thinking", "redacted_thinking")] or [{"type": "text", "text": "-"}]}
        out.append(message)
    return out


def _reward(stats: ModelStats | None, priced: bool) -> float:
    """Commits per US dollar (per trial when some model's cost is unknown)."""
    if stats is None or stats.trials == 0:
        return 0.0
    return float(stats.commits / stats.cost_usd if priced else stats.commits / stats.trials)
