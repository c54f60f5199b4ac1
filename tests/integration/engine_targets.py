"""Small targets for engine tests: a one-parameter quadratic, judged in the trusted process."""

from __future__ import annotations

import importlib
import os
import time

from evoagent import Candidate, Evaluator, SandboxConfig, StageResult, Status, Usage, VariationOperator
from evoagent.operators.base import Proposal
from evoagent.scheduling import current_priority

SEED = "X = 0.0  # evo: range -10 10 step 0.5\nDELAY = 0.0\n"


def read_x(delay_s: float, hold_file: str = "") -> object:
    """Runs in the sandbox child: import the candidate, return its raw X (judged by the parent).

    While `hold_file` exists the call does not return (a test holds the run still with it).
    """
    module = importlib.import_module("main")
    time.sleep(delay_s + float(getattr(module, "DELAY", 0.0)))
    while hold_file and os.path.exists(hold_file):
        time.sleep(0.01)
    return module.X


class Quadratic(Evaluator):
    """score = 100 - (X - 3)^2, so the optimum is X = 3."""

    name = "quadratic"
    description = "main.py sets X; closer to 3 is better."
    entry = "main.py"
    stages = ("check", "measure")

    def __init__(self, delay_s: float = 0.0, hold_file: str = "", timeout_s: float = 10.0) -> None:
        self.delay_s = delay_s
        self.hold_file = hold_file
        self.timeout_s = timeout_s

    def check(self, candidate: Candidate, sandbox) -> StageResult:
        try:
            compile(candidate.source, "main.py", "exec")
        except SyntaxError as exc:
            return StageResult.fail(Status.COMPILE_ERROR, f"line {exc.lineno}: {exc.msg}")
        return StageResult()

    def measure(self, candidate: Candidate, sandbox) -> StageResult:
        out = sandbox.call(read_x, self.delay_s, self.hold_file, files=candidate.files, timeout_s=self.timeout_s)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        if isinstance(out.value, bool) or not isinstance(out.value, (int, float)):
            return StageResult.fail(Status.INCORRECT, f"X must be a number, got {out.value!r}")
        return StageResult(metrics={"f": 100.0 - (out.value - 3.0) ** 2})


class Scripted(VariationOperator):
    """Proposes the given sources in order (then repeats the last one), charging `usage` per step."""

    name = "scripted"

    def __init__(self, sources: list[str], usage: Usage | None = None) -> None:
        self.sources = list(sources)
        self.usage = usage
        self.seen: list[int] = []

    def vary(self, context) -> Proposal:
        if self.usage is not None:
            context.charge(self.usage)
        source = self.sources.pop(0) if len(self.sources) > 1 else self.sources[0]
        context.record_message("assistant", f"proposing {source!r}")
        child = context.parent.with_files({context.parent.entry: source}, hypothesis=f"try {source.strip()}")
        return Proposal(candidate=child, hypothesis=f"try {source.strip()}")

    def observe(self, outcome) -> None:
        self.seen.append(outcome.trial_id)


def score_x(module) -> dict:
    """A FunctionEvaluator score function: runs in the sandbox child with the candidate imported."""
    if not isinstance(module.X, (int, float)):
        raise ValueError(f"X must be a number, got {module.X!r}")
    return {"f": 100.0 - (module.X - 3.0) ** 2}


class Noisy(Evaluator):
    """score = 100 - (X - 3)^2 plus scripted 'luck' on a source's first measurements (no sandbox needed)."""

    name = "noisy"
    entry = "main.py"
    stages = ("check", "time")
    timing_stages = ("time",)

    def __init__(self, luck: dict[str, list[float]] | None = None) -> None:
        self.luck = {k: list(v) for k, v in (luck or {}).items()}
        self.measured: list[str] = []

    def check(self, candidate: Candidate, sandbox) -> StageResult:
        return StageResult()

    def time(self, candidate: Candidate, sandbox) -> StageResult:
        namespace: dict = {}
        exec(candidate.source, namespace)  # trusted test code
        self.measured.append(candidate.source)
        bonus = self.luck.get(candidate.source, [])
        extra = bonus.pop(0) if bonus else 0.0
        return StageResult(metrics={"f": 100.0 - (namespace["X"] - 3.0) ** 2 + extra})


class GpuQuadratic(Quadratic):
    """Quadratic timed on a (fake) GPU worker "0"; notes the queue priority of every GPU call it makes."""

    name = "gpu-quadratic"
    stages = ("check", "time")
    timing_stages = ("time",)

    def __init__(self, hold_file: str = "") -> None:
        super().__init__(hold_file=hold_file)
        self.priorities: list[str] = []
        self.overlapped: list[bool] = []  # per HOLD/RELEASE pair: a CPU call ended while the GPU was held

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(workers=1, preload=(), memory_mb=512, gpus=("0",))

    def check(self, candidate: Candidate, sandbox) -> StageResult:
        """A draft marked RELEASE waits until the GPU is busy, runs a CPU call, then lets the GPU go."""
        if "RELEASE" in candidate.source:
            gpu_queue = sandbox._state.gpu
            assert gpu_queue.wait_until(lambda s: s.busy == ("0",), timeout_s=60)  # the HOLD draft is timed
            out = sandbox.call(read_x, 0.0, files=candidate.files)
            self.overlapped.append(out.ok and gpu_queue.state().busy == ("0",))
            os.unlink(self.hold_file)
        return super().check(candidate, sandbox)

    def time(self, candidate: Candidate, sandbox) -> StageResult:
        self.priorities.append(str(current_priority()))
        hold = self.hold_file if "HOLD" in candidate.source else ""  # timed until RELEASE's CPU stage is done
        out = sandbox.call(read_x, 0.0, hold, files=candidate.files, gpu=True)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        return StageResult(metrics={"f": 100.0 - (out.value - 3.0) ** 2})


class Exploring(Scripted):
    """Scripted, but evaluates each draft once (an agent's exploratory tool call) before proposing it."""

    def vary(self, context) -> Proposal:
        proposal = super().vary(context)
        assert proposal.candidate is not None
        context.evaluate(proposal.candidate, ("time",))
        return proposal
