"""TrialServices for variation contexts built outside a run: evaluate through a function, record the rest."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evoagent import Candidate, EvalResult, Usage
from evoagent.services import NoServices


@dataclass
class RecordingServices(NoServices):
    run: Callable[[Candidate, Sequence[str] | None], EvalResult] | None = None
    versions: Mapping[str, tuple[Candidate, EvalResult | None]] = field(default_factory=dict)
    on_charge: Callable[[Usage], None] | None = None
    messages: list[tuple[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None) -> EvalResult:
        if self.run is None:
            return super().evaluate(candidate, stages)
        return self.run(candidate, stages)

    def record_message(self, role: str, content: Any) -> None:
        self.messages.append((role, json.loads(json.dumps(content))))

    def charge(self, usage: Usage) -> None:
        if self.on_charge is not None:
            self.on_charge(usage)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        return next((v for k, v in self.versions.items() if k.startswith(candidate_id)), None)
