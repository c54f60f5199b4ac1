"""A toy target for operator and tool tests: solve(xs) must sort; the constant SPEED is the score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evoagent.candidate import Candidate
from evoagent.evaluator import Evaluator
from evoagent.result import StageResult, Status

SEED = "SPEED = 1\n\n\ndef solve(xs):\n    return sorted(xs)\n"


class ToyEvaluator(Evaluator):
    """check compiles, test runs solve, benchmark reports SPEED per configuration, profile reports static facts.

    `scales` names the benchmark configurations and what SPEED is multiplied by in each.
    """

    name = "toy"
    description = "Define solve(xs) that returns xs sorted; the module constant SPEED is the score."
    rules = "SPEED must be an integer literal."
    entry = "main.py"
    stages = ("check", "test", "benchmark", "profile")

    def __init__(self, scales: Mapping[str, float] | None = None) -> None:
        self.scales = dict(scales or {"n64": 1.0, "n128": 2.0})

    def check(self, candidate: Candidate, sandbox: Any) -> StageResult:
        try:
            compile(candidate.source, candidate.entry, "exec")
        except SyntaxError as err:
            return StageResult.fail(Status.COMPILE_ERROR, f"line {err.lineno}: {err.msg}")
        return StageResult(details={"lines": candidate.source.count("\n")})

    def _module(self, candidate: Candidate) -> dict[str, Any]:
        namespace: dict[str, Any] = {}
        exec(compile(candidate.source, candidate.entry, "exec"), namespace)  # noqa: S102 (test code, trusted)
        return namespace

    def test(self, candidate: Candidate, sandbox: Any) -> StageResult:
        got = self._module(candidate)["solve"]([3, 1, 2])
        if got != [1, 2, 3]:
            return StageResult.fail(Status.INCORRECT, f"solve([3, 1, 2]) returned {got!r}, expected [1, 2, 3]")
        return StageResult()

    def configurations(self) -> tuple[str, ...]:
        return tuple(self.scales)

    def restricted(self, configs: Sequence[str]) -> ToyEvaluator:
        return ToyEvaluator({name: self.scales[name] for name in configs})

    def benchmark(self, candidate: Candidate, sandbox: Any) -> StageResult:
        speed = float(self._module(candidate)["SPEED"])
        return StageResult(metrics={name: speed * scale for name, scale in self.scales.items()})

    def profile(self, candidate: Candidate, sandbox: Any) -> StageResult:
        return StageResult(details={"hot_loop": "sorted", "registers": 42})


@dataclass
class FakeLineage:
    text: str = "Best committed version: seed (score 1)."

    def summary(self) -> str:
        return self.text
