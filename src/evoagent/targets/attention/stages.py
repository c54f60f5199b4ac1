"""The attention target's test and benchmark pipeline: capture launch plans, then replay them trusted-side.

1. Capture (untrusted, `child.capture_plans`): the wrapper runs once per case with Triton's launches
   recorded instead of run; each call's launch plan comes back as data, and a second call per shape with
   other input values shows a plan that depends on values or on the call count.
2. Judge the capture (trusted, `measure.judge_capture`): the plans' shape, the wrapper's torch operations.
3. Replay (trusted numbers): without a GPU the trusted process drives an interpreter child that defines
   the kernels alone (`untrusted.replay`) and times and checks every call (`measure.drive_replays`); on a
   GPU a sandboxed process given no candidate file replays the compiled kernels, times them with its own
   events and checks every repetition (`gpu_measure.replay_on_gpu`).
Every job's result has the same shape: {"times_ms": {implementation: [...]}, "errors": {...}, "region_s"}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...result import StageResult, Status
from .judge import hardware_or, malformed_report, sandbox_failure
from .measure import drive_replays, judge_capture, replay_verdict

if TYPE_CHECKING:
    from ...candidate import Candidate
    from ...executors import Executor

# The AttentionEvaluator that calls these functions (typed loosely: it imports this module).
Evaluator = Any

# Limit of the trusted GPU replay of one stage (its own sandboxed call).
GPU_REPLAY_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class Captured:
    """What a capture call proved: one checked plan per case, the kernels' module values, GPU binaries, logs."""

    plans: list[dict[str, Any]]
    values: dict[str, Any]
    binaries: dict[str, Any]
    logs: str


def twins(evaluator: Evaluator, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One more capture per shape: its first case with other input values (same shape and scale)."""
    first = {case["config"]["name"]: case for case in reversed(cases)}
    return [{**case, "seed": int(evaluator._draws.integers(2**31))} for case in first.values()]


def capture(evaluator: Evaluator, candidate: Candidate, sandbox: Executor,
            cases: list[dict[str, Any]]) -> StageResult | Captured:
    """Runs the wrapper on each case with launches recorded; the checked plans, or the stage's failure."""
    from .child import capture_plans

    out = evaluator._call(sandbox, capture_plans, evaluator.entry, cases, not evaluator.on_gpu,
                          evaluator._triton_cache(candidate), candidate=candidate)
    if not out.ok:
        return StageResult.fail(hardware_or(out), sandbox_failure(out, evaluator.entry),
                                logs=out.logs + "\n" + out.reason)
    verdict, plans = judge_capture(cases, out.value)
    if not verdict.ok:
        return StageResult.fail(verdict.status, verdict.reason, logs=out.logs)
    values, binaries = out.value.get("globals"), out.value.get("binaries", {})
    if not isinstance(values, dict) or not isinstance(binaries, dict):
        return StageResult.fail(Status.ILLEGAL, "the capture's report lacks the kernels' module values or binaries; "
                                                "was the result channel tampered with?", logs=out.logs)
    if evaluator.on_gpu and any(launch.get("binary") not in binaries for plan in plans for launch in plan["launches"]):
        return StageResult.fail(Status.ILLEGAL, "a launch of the plan names no compiled binary; was the result "
                                                "channel tampered with?", logs=out.logs)
    return Captured(plans=plans, values=values, binaries=binaries, logs=out.logs)


def replay(evaluator: Evaluator, candidate: Candidate, sandbox: Executor, captured: Captured,
           jobs: list[dict[str, Any]], *, baselines: bool = False) -> StageResult | list[dict[str, Any]]:
    """Replays `jobs` ({"plan": index, "config", "sm_scale", "seeds" (CPU) / "warmup", "reps" (GPU)}) trusted-side;
    every call is checked. The per-job results, or the stage's failure."""
    from ...trusted.kernel_source import body_problems

    problems = body_problems(candidate.files.get(evaluator.entry, ""), evaluator.entry)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return StageResult.fail(Status.ILLEGAL, f"{problems[0]}{more}")
    if evaluator.on_gpu:
        return _replay_on_gpu(evaluator, sandbox, captured, jobs, baselines)
    return _replay_in_interpreter(evaluator, candidate, sandbox, captured, jobs)


def _replay_in_interpreter(evaluator: Evaluator, candidate: Candidate, sandbox: Executor,
                           captured: Captured, jobs: list[dict[str, Any]]) -> StageResult | list[dict[str, Any]]:
    from ...channel import Driver
    from ...untrusted.replay import serve

    out = evaluator._call(sandbox, serve, evaluator.entry, captured.plans, captured.values, candidate=candidate,
                          driver=Driver(drive_replays, (jobs,)))
    if not out.ok:
        return StageResult.fail(hardware_or(out), sandbox_failure(out, evaluator.entry),
                                logs=out.logs + "\n" + out.reason)
    verdict = replay_verdict(out.value, len(jobs))
    if not verdict.ok:
        return StageResult.fail(verdict.status, verdict.reason, logs=out.logs)
    return [{"times_ms": {"candidate": [t * 1e3 for t in result["times_s"]]}, "errors": {},
             "region_s": sum(result["times_s"])} for result in out.value]


def _replay_on_gpu(evaluator: Evaluator, sandbox: Executor, captured: Captured, jobs: list[dict[str, Any]],
                   baselines: bool) -> StageResult | list[dict[str, Any]]:
    """The trusted GPU replay: a sandboxed call given no candidate file, with a launcher cache of its own."""
    from .gpu_measure import replay_on_gpu

    gpu_jobs = [{**job, "plan": captured.plans[job["plan"]]} for job in jobs]
    launchers = evaluator.static.cache_dir.parent / "trusted-replay"
    out = sandbox.call(replay_on_gpu, captured.binaries, gpu_jobs, baselines, timeout_s=GPU_REPLAY_TIMEOUT_S,
                       env={"TRITON_CACHE_DIR": str(launchers / "triton"), "TRITON_INTERPRET": "0"},
                       gpu=bool(getattr(sandbox, "gpus", ())), write_paths=(launchers,))
    if not out.ok:  # our own code ran there, with the candidate's device code: a crash is the kernels' doing
        return StageResult.fail(hardware_or(out), f"replay: {out.reason.splitlines()[0] if out.reason else out.status}",
                                logs=out.logs + "\n" + out.reason)
    malformed = malformed_report({**out.value, "timers_changed": []}, "results", len(jobs))
    if malformed:
        return StageResult.fail(Status.HARNESS_ERROR, malformed, logs=out.logs)
    results: list[dict[str, Any]] = out.value["results"]
    verdict = replay_verdict(results, len(jobs))
    if not verdict.ok:
        return StageResult.fail(verdict.status, verdict.reason, logs=out.logs)
    return results
