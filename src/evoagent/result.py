"""EvalResult and StageResult: what evaluating a candidate produced, with one status label."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """The outcome label of an evaluation (and of each stage)."""

    OK = "ok"
    COMPILE_ERROR = "compile_error"
    INCORRECT = "incorrect"
    ILLEGAL = "illegal"
    TIMEOUT = "timeout"
    CRASH = "crash"
    OOM = "oom"
    BUDGET_OVERRUN = "budget_overrun"  # a budget ran out during the step
    NO_PROPOSAL = "no_proposal"  # the operator gave up without a candidate (e.g. nothing left to try)
    DUPLICATE = "duplicate"
    HARNESS_ERROR = "harness_error"  # our fault, never the candidate's
    MODEL_ERROR = "model_error"  # the model API failed after its retries; not the candidate's fault
    NEEDS_DEVICE = "needs_device"  # this machine lacks the hardware the stage needs; not the candidate's fault
    INFRASTRUCTURE = "infrastructure"  # the worker, actor or node running the call was lost; retried once

    def __str__(self) -> str:
        return self.value


def geometric_mean(values: Sequence[float]) -> float | None:
    """Geometric mean of positive values; 0.0 if any is <= 0; None for no values."""
    if not values:
        return None
    if any(v <= 0 or math.isnan(v) for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def format_score(value: float | None, spec: str = ".6g") -> str:
    """A score or other measured number for people to read; "-" when it was not measured."""
    return "-" if value is None else format(value, spec)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageResult:
    """The outcome of one stage of an evaluation.

    Attributes:
        name: the stage name (filled in by the cascade).
        status: the label; anything but OK stops the cascade.
        reason: one line a person or an agent can act on (empty when OK).
        seconds: wall time of the stage (filled in by the cascade).
        metrics: configuration name -> value, higher is better (e.g. TFLOPS per shape).
        details: JSON-serializable facts for people and agents (static profile, errors, ...).
        logs: captured output, truncated.
    """

    name: str = ""
    status: Status = Status.OK
    reason: str = ""
    seconds: float = 0.0
    metrics: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    logs: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @classmethod
    def fail(cls, status: Status, reason: str, **kwargs: Any) -> StageResult:
        if status is Status.OK:
            raise ValueError("StageResult.fail needs a failure status, got 'ok'")
        return cls(status=Status(status), reason=reason, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["metrics"] = dict(self.metrics)
        data["details"] = dict(self.details)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageResult:
        return cls(**{**data, "status": Status(data["status"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """The outcome of evaluating one candidate: a label, per-configuration metrics and a score.

    Attributes:
        status: OK only if every stage passed.
        reason: why it failed, in one line (empty when OK).
        metrics: configuration name -> value (higher is better); kept per configuration.
        score: the aggregate of `metrics` (geometric mean by default); None if not measured.
            A candidate that is not OK has score None and never enters a population.
        stages: every stage that ran, in order.
        env: where it was measured (host, devices, library versions).
        device: a short label of what produced the numbers (e.g. 'NVIDIA H100', 'cpu-interpreter').
    """

    status: Status
    reason: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    score: float | None = None
    stages: tuple[StageResult, ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)
    device: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.status is not Status.OK and self.score is not None:
            raise ValueError(f"an EvalResult with status {self.status.value!r} cannot carry a score")

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def profile(self) -> dict[str, Any]:
        """Details of the profile stage, or of the static report when no profile stage ran."""
        for name in ("profile", "check"):
            found = self.stage(name)
            if found is not None and found.details:
                return dict(found.details)
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "metrics": dict(self.metrics),
            "score": self.score,
            "stages": [s.to_dict() for s in self.stages],
            "env": dict(self.env),
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        return cls(
            status=Status(data["status"]),
            reason=data.get("reason", ""),
            metrics=dict(data.get("metrics", {})),
            score=data.get("score"),
            stages=tuple(StageResult.from_dict(s) for s in data.get("stages", ())),
            env=dict(data.get("env", {})),
            device=data.get("device", ""),
        )

    def summary(self) -> str:
        """One line: label, score and reason."""
        score = format_score(self.score)
        tail = f": {self.reason}" if self.reason else ""
        return f"{self.status.value} score={score}{tail}"
