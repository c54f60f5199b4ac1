"""TrialServices for variation contexts built outside a run: evaluate through a function, record the rest."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evoagent import Candidate, EvalResult, Evaluator, Sandbox, Usage
from evoagent.sandbox import SandboxResult
from evoagent.services import NoServices


@dataclass
class RecordingServices(NoServices):
    run: Callable[..., EvalResult] | None = None  # (candidate, stages) or (candidate, stages, configs)
    versions: Mapping[str, tuple[Candidate, EvalResult | None]] = field(default_factory=dict)
    on_charge: Callable[[Usage], None] | None = None
    messages: list[tuple[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    evaluator: Evaluator | None = None  # with `sandbox`: experiments run for real
    sandbox: Sandbox | None = None

    def evaluate(self, candidate: Candidate, stages: Sequence[str] | None,
                 configs: Sequence[str] | None = None) -> EvalResult:
        if self.run is None:
            return super().evaluate(candidate, stages, configs)
        return self.run(candidate, stages) if configs is None else self.run(candidate, stages, configs)

    def experiment(self, candidate: Candidate, script: str, timeout_s: float) -> SandboxResult:
        if self.evaluator is None or self.sandbox is None:
            return super().experiment(candidate, script, timeout_s)
        return self.evaluator.experiment(candidate, script, self.sandbox, timeout_s=timeout_s)

    def remeasure(self, candidates: Sequence[Candidate], configs: Sequence[str] | None,
                  rounds: int) -> list[list[EvalResult]]:
        if self.evaluator is None:
            return super().remeasure(candidates, configs, rounds)
        evaluator = self.evaluator if configs is None else self.evaluator.restricted(configs)
        runs: list[list[EvalResult]] = [[] for _ in candidates]
        for _ in range(rounds):
            for i, candidate in enumerate(candidates):
                runs[i].append(evaluator.evaluate(candidate, self.sandbox, stages=evaluator.timing_stages))
        return runs

    def inspect(self, candidate: Candidate, what: str, grep: str = "", kernel: str = "") -> str:
        if self.evaluator is None or self.sandbox is None:
            return super().inspect(candidate, what, grep, kernel)
        return self.evaluator.inspect(candidate, self.sandbox, what=what, grep=grep, kernel=kernel)

    def record_message(self, role: str, content: Any) -> None:
        self.messages.append((role, json.loads(json.dumps(content))))

    def charge(self, usage: Usage) -> None:
        if self.on_charge is not None:
            self.on_charge(usage)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def get(self, candidate_id: str) -> tuple[Candidate, EvalResult | None] | None:
        return next((v for k, v in self.versions.items() if k.startswith(candidate_id)), None)
