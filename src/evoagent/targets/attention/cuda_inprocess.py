"""CUDA C++ candidates on a GPU: tested and timed in the candidate's own process (NOT by construction).

Triton candidates are captured as launch plans and replayed trusted-side (`stages.py`). A CUDA candidate
launches from its own host functions (`CUDA_SOURCE`, built by `cuda_build.load_extension`), whose launches
the capture cannot record yet, so on a GPU it is still judged as before the trust split: its process runs
the wrapper under the op trace and times it with timers captured before its import, and the trusted side
checks sampled rows of every timed call. Its scores say so (`details["timing"]`); without a GPU a CUDA
candidate ends `needs_device` before reaching here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...result import StageResult, Status
from .judge import (
    bench_row,
    dense_peak_tflops,
    hardware_or,
    judge_benchmark,
    judge_case,
    judge_output,
    judge_timers,
    malformed_report,
    sandbox_failure,
)
from .suites import AttentionConfig

if TYPE_CHECKING:
    from ...candidate import Candidate
    from ...executors import Executor
    from ...sandbox import SandboxResult

# The AttentionEvaluator that calls these functions (typed loosely: it imports this module).
Evaluator = Any

# Output rows sampled from every timed repetition (in at most two (batch, head) slices).
TIMED_ROWS = 256
TIMING = "in the candidate's process (CUDA candidates are not replayed yet): not protected by construction"


def test(evaluator: Evaluator, candidate: Candidate, sandbox: Executor) -> StageResult:
    """Correctness on the suite's shapes and fresh random ones; judged here against the fp64 reference."""
    from .child import run_cases

    with evaluator._draws_lock:
        cases = evaluator.test_cases()
    out = evaluator._call(sandbox, run_cases, evaluator.entry, cases, False, evaluator._triton_cache(candidate),
                          candidate=candidate)
    if not out.ok:
        return StageResult.fail(hardware_or(out), sandbox_failure(out, evaluator.entry),
                                logs=out.logs + "\n" + out.reason)
    malformed = malformed_report(out.value, "cases", len(cases))
    if malformed:
        return StageResult.fail(Status.ILLEGAL, malformed, logs=out.logs)
    verdict = judge_timers(out.value["timers_changed"])
    for case, result in zip(cases, out.value["cases"]):
        if not verdict.ok:
            break
        verdict = judge_case(case, result)
    shapes = sorted({AttentionConfig.from_dict(c["config"]).name for c in cases})
    details = {"cases": len(cases), "shapes": shapes, "kernels_launched": out.value["kernels"],
               "device": evaluator.device_label(), "timing": TIMING}
    if not verdict.ok:
        return StageResult.fail(verdict.status, verdict.reason, details=details, logs=out.logs)
    return StageResult(details=details, logs=out.logs)


def benchmark(evaluator: Evaluator, candidate: Candidate, sandbox: Executor) -> StageResult:
    """TFLOPS per configuration with baselines, timed in the candidate's process (see the module's docstring)."""
    from .timing import benchmark as time_in_process

    reps = evaluator.reps or 30
    warmup = evaluator.warmup if evaluator.warmup is not None else 3
    with evaluator._draws_lock:
        cases = [evaluator._case(c, max_rows=TIMED_ROWS, max_heads=2) | _timed_inputs(evaluator, reps)
                 for c in evaluator.suite.configs]
    out = evaluator._call(sandbox, time_in_process, evaluator.entry, cases, warmup, False,
                          evaluator._triton_cache(candidate), evaluator.baselines, candidate=candidate)
    if not out.ok:
        return StageResult.fail(hardware_or(out), sandbox_failure(out, evaluator.entry),
                                logs=out.logs + "\n" + out.reason)
    return _judge(evaluator, cases, out)


def _timed_inputs(evaluator: Evaluator, reps: int) -> dict[str, Any]:
    draw = evaluator._timing_draws.integers
    return {"rep_seeds": [int(draw(2**31)) for _ in range(reps)], "refresh_seed": int(draw(2**31))}


def _judge(evaluator: Evaluator, cases: list[dict[str, Any]], out: SandboxResult) -> StageResult:
    value = out.value
    malformed = malformed_report(value, "results", len(cases))
    if malformed:
        return StageResult.fail(Status.ILLEGAL, malformed, logs=out.logs)
    device = evaluator.device_label()
    verdict = judge_timers(value["timers_changed"])
    secret = np.random.default_rng()  # which repetitions and rows are checked: OS entropy, drawn after the call
    metrics, rows = {}, []
    for case, result in zip(cases, value["results"]):
        config = AttentionConfig.from_dict(case["config"])
        if verdict.ok:
            verdict = judge_output(case, result.get("rep_rows"), secret)
        if verdict.ok:
            verdict, timings = judge_benchmark(config, result, out.wall_s, device)
        if not verdict.ok:
            break
        metrics[config.name] = timings["candidate"].tflops
        rows.append(bench_row(config, timings, result["errors"]))
    details = {"device": device, "peak_tflops": dense_peak_tflops(device), "table": rows, "timing": TIMING}
    if not verdict.ok:
        return StageResult.fail(verdict.status, verdict.reason, details=details, logs=out.logs)
    return StageResult(metrics=metrics, details=details, logs=out.logs)
