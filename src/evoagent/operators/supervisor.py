"""Supervisor: detects stalls and unproductive cycles in the recent trials and proposes new directions."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, LLMError
from ..records import TrialOutcome
from ..result import Status
from ..services import Knowledge
from .base import VariationContext
from .outcomes import improved

_SYSTEM = (
    "You supervise an autonomous coding agent that evolves a program through many variation steps. "
    "Each step it edits the best version and submits it; a version is kept only if it is correct and at "
    "least as good as the best. Your job: when progress stops, review what was tried and steer the agent "
    "towards directions it has not explored. Be concrete and technical."
)
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+(.+?)\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Advice:
    """What the supervisor tells the agent.

    Attributes:
        trigger: 'stall' (no commit in a while) or 'cycle' (submissions keep failing).
        reason: one line saying what was detected.
        directions: distinct directions to try next.
        sources: where each direction came from ('model' or 'knowledge:<recipe id>').
    """

    trigger: str
    reason: str
    directions: tuple[str, ...]
    sources: tuple[str, ...] = ()

    def text(self) -> str:
        """The advice as prompt text."""
        head = (f"Supervisor: {self.reason}. Change course: pick one of these directions (or a better one "
                "you can justify) rather than another variant of what just failed.")
        lines = [head]
        lines += [f"  {i}. {d}" for i, d in enumerate(self.directions, 1)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "reason": self.reason, "directions": list(self.directions),
                "sources": list(self.sources)}


class Supervisor:
    """Watches `context.recent` and, when the search stalls or cycles, proposes new directions.

    A stall is `stall_steps` finished trials in a row without an improvement: a commit that scores
    above the version it started from (a commit within the tolerance, or of a change that does not
    move the score, is not progress). An unproductive cycle is
    `failure_streak` submissions in a row whose authoritative status is not `ok` (compile errors,
    wrong results, illegal code, duplicates, steps without a submission). Only trials after the
    last advice count, so advice is not repeated every step. The engine must keep at least
    max(stall_steps, failure_streak) outcomes in `context.recent`.

    Args:
        llm: the model asked for directions (None: knowledge-base directions only).
        knowledge: a KnowledgeBase whose recipes not yet named in any hypothesis become directions
            (None: the context's knowledge base, if any).
        stall_steps: trials without a commit that make a stall.
        failure_streak: failed submissions in a row that make a cycle.
        directions: how many directions to propose.
        max_tokens: the longest reply asked for (room for adaptive thinking: >= 8k).
    """

    def __init__(self, llm: Any = None, knowledge: Knowledge | None = None, *, stall_steps: int = 8,
                 failure_streak: int = 4,
                 directions: int = 3, max_tokens: int = 8192) -> None:
        for name, value in (("stall_steps", stall_steps), ("failure_streak", failure_streak),
                            ("directions", directions), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Supervisor {name} must be a positive integer, got {value!r}")
        self.llm = llm
        self.knowledge = knowledge
        self.stall_steps = stall_steps
        self.failure_streak = failure_streak
        self.directions = directions
        self.max_tokens = max_tokens
        self._last_seen = 0  # trial id of the newest outcome at the last advice

    def __repr__(self) -> str:
        return (f"Supervisor(stall_steps={self.stall_steps}, failure_streak={self.failure_streak}, "
                f"directions={self.directions})")

    def detect(self, recent: Sequence[TrialOutcome],
               start_scores: Mapping[str, float | None] | None = None) -> tuple[str, str] | None:
        """('stall' | 'cycle', reason) when the trials since the last advice show one, else None.

        `start_scores` maps a starting version's id to its score (unknown ones: any commit improves).
        """
        fresh = [o for o in recent if o.trial_id > self._last_seen]
        scores = start_scores or {}
        failed = _streak(fresh, lambda o: o.status is not Status.OK)
        if failed >= self.failure_streak:
            labels = ", ".join(o.status.value for o in fresh[-failed:])
            return "cycle", f"the last {failed} submissions failed ({labels})"
        flat = _streak(fresh, lambda o: not improved(o, scores.get(o.parent_id or "")))
        if flat >= self.stall_steps:
            return "stall", f"no trial improved the score in the last {flat} trials"
        return None

    def review(self, context: VariationContext, *, memory: str = "") -> Advice | None:
        """Advice for the coming step, or None; emits a 'supervisor' event when it advises."""
        found = self.detect(context.recent, _start_scores(context))
        if found is None:
            return None
        trigger, reason = found
        self._last_seen = max(o.trial_id for o in context.recent)
        picked: list[tuple[str, str]] = []
        model_error = ""
        if self.llm is not None:
            try:
                picked += [(d, "model") for d in self._ask_model(context, reason, memory)]
            except LLMError as err:
                model_error = str(err)
        picked += self._knowledge_directions(context, limit=self.directions)
        if not picked:  # the target's own vocabulary: GPU advice for kernels, generic advice elsewhere
            picked = [(d, "default") for d in context.evaluator.supervisor_directions()[: self.directions]]
        if context.niche is not None and context.niche.suggestion:  # the population knows where nobody has been
            picked.insert(0, (f"Aim for the empty MAP-Elites {context.niche.suggestion}: a correct version there is "
                              "kept even if it is slower than the best", "population"))
        advice = Advice(trigger=trigger, reason=reason, directions=tuple(d for d, _ in picked),
                        sources=tuple(s for _, s in picked))
        payload = advice.to_dict()
        if model_error:
            payload["model_error"] = model_error
        context.emit("supervisor", payload)
        return advice

    def _ask_model(self, context: VariationContext, reason: str, memory: str) -> list[str]:
        trajectory = "\n".join(
            f"  trial {o.trial_id}: {o.status.value}{' committed' if o.committed else ''}"
            f" score={'-' if o.score is None else f'{o.score:.6g}'} | {o.hypothesis[:200]}"
            + (f" | {o.reason[:200]}" if o.reason and o.status is not Status.OK else "")
            for o in context.recent
        )
        prompt = (
            f"Target: {context.evaluator.name}\n{context.evaluator.description[:3000]}\n\n"
            f"Detected: {reason}.\n\nLineage:\n{context.lineage.summary()}\n\n"
            f"Recent trials (oldest first):\n{trajectory}\n\n"
            + (f"The agent's notes on its earlier work:\n{memory[:4000]}\n\n" if memory else "")
            + f"Propose {self.directions} distinct directions the agent has not tried, each a concrete change "
            "with the reason it could pay off. Answer with a numbered list, one direction per line, nothing else."
        )
        message = {"role": "user", "content": [{"type": "text", "text": prompt}]}
        context.record_message("supervisor", [message])
        response = self.llm.complete(system=_SYSTEM, messages=[message], tools=(), max_tokens=self.max_tokens)
        context.record_message("supervisor", response.content)
        context.charge(response.usage)
        return _parse_directions(response.text)[: self.directions]

    def _knowledge_directions(self, context: VariationContext, *, limit: int) -> list[tuple[str, str]]:
        kb = self.knowledge if self.knowledge is not None else context.knowledge
        if kb is None:
            return []
        tried = " ".join(o.hypothesis.lower() for o in context.recent) + context.lineage.summary().lower()
        known = getattr(context.evaluator, "traits", None)  # duck-typed evaluators in tests may lack it
        traits = known() if callable(known) else None
        found = []
        for recipe in kb.recipes():
            if recipe.id.lower() in tried or recipe.title.lower() in tried:
                continue
            if not recipe.applies(context.parent.source):
                continue
            if recipe.needs and traits is not None and not set(recipe.needs) <= traits:
                continue  # e.g. a GQA recipe on a suite that times only MHA
            note = f" ({recipe.notes.strip().splitlines()[0]})" if recipe.notes.strip() else ""
            found.append((f"{recipe.title}{note} [knowledge: recipe {recipe.id}]", f"knowledge:{recipe.id}"))
            if len(found) >= limit:
                break
        return found


def _start_scores(context: VariationContext) -> dict[str, float | None]:
    """The scores of the versions that recent commits started from (the only ones an improvement needs)."""
    scores: dict[str, float | None] = {}
    for outcome in context.recent:
        if outcome.committed and outcome.parent_id and outcome.parent_id not in scores:
            found = context.get(outcome.parent_id)
            scores[outcome.parent_id] = found[1].score if found is not None and found[1] is not None else None
    return scores


def _streak(outcomes: Sequence[TrialOutcome], failing: Any) -> int:
    """How many outcomes at the end of the sequence satisfy `failing`."""
    count = 0
    for outcome in reversed(outcomes):
        if not failing(outcome):
            break
        count += 1
    return count


def _parse_directions(text: str) -> list[str]:
    listed = [m.group(1) for m in map(_NUMBERED.match, text.splitlines()) if m]
    return listed or [line.strip() for line in text.splitlines() if line.strip()]
