"""Verdicts, taken in the trusted process, on what the candidate's child process reported.

The child's report is data, not truth: inputs are rebuilt here from their seeds, the reference is
computed here, and reported times are checked against this side's clock and the device's peak.
A stage whose call failed, or whose source broke a legality rule, is labelled here too.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...result import StageResult, Status
from . import legality
from .legality import ALLOWED_OPS
from .reference import compare, input_slice, reference_rows
from .suites import AttentionConfig

if TYPE_CHECKING:
    from ...sandbox import SandboxResult

# Dense (no sparsity) bf16/fp16 tensor-core peaks in TFLOPS, from NVIDIA's data sheets.
DENSE_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4), ("H800", 989.4),
    ("GH200", 989.4), ("GB200", 2500.0), ("B200", 2250.0), ("B100", 1750.0), ("A100", 312.0),
    ("L40S", 362.0), ("L4", 121.0),
)


def dense_peak_tflops(device: str) -> float | None:
    """The device's dense 16-bit tensor-core peak, or None when the device is not in the table."""
    for marker, peak in DENSE_PEAK_TFLOPS:
        if marker in device:
            return peak
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """A failure label and its reason (status OK means the case passed)."""

    status: Status
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


OK = Verdict(status=Status.OK)


# Errors that say the machine lacks a GPU (or the interpreter a feature), not that the kernel is wrong.
_MISSING_HARDWARE = (
    "Torch not compiled with CUDA enabled", "No CUDA GPUs are available", "Found no NVIDIA driver",
    "active drivers", "CUDA driver initialization failed", "not supported in interpreter mode",
    "no GPU here",
)


def missing_hardware(error: str) -> bool:
    """Whether an error from the candidate's process is this machine's lack of a GPU (or of an
    interpreter feature). Such a stage ends `needs_device`: never a score, never the kernel's blame."""
    return any(marker in error for marker in _MISSING_HARDWARE)


def needs_device_reason(where: str, error: str) -> str:
    return (f"{where}: this machine cannot run this stage (no GPU, or a feature the Triton interpreter lacks): "
            f"{error.splitlines()[0][:300]}; the kernel is not at fault, run it on a GPU to test it")


def judge_case(case: Mapping[str, Any], result: Mapping[str, Any], *, numerics: bool = True) -> Verdict:
    """One test case: contract, legality of what ran, untouched inputs, then numerics (a capture's report has
    neither inputs nor outputs to check: `numerics=False`)."""
    config = AttentionConfig.from_dict(case["config"])
    where = f"config {config.name} (seed {case['seed']})"
    if "error" in result:
        if missing_hardware(str(result["error"])):
            return Verdict(status=Status.NEEDS_DEVICE, reason=needs_device_reason(where, str(result["error"])))
        status = Status.OOM if result.get("oom") else Status.CRASH
        return Verdict(status=status, reason=f"{where}: attention() raised {result['error']}")
    try:
        checks = (_check_output_type, _check_ops, _check_inputs, _check_numerics) if numerics else \
            (_check_output_type, _check_ops)
        for check in checks:
            verdict = check(config, case, result, where)
            if not verdict.ok:
                return verdict
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # only a tampered report lacks these fields
        return Verdict(status=Status.ILLEGAL, reason=f"{where}: the report from the candidate's process is "
                                                     f"malformed ({type(exc).__name__}: {exc})")
    return OK


def _check_output_type(config: AttentionConfig, case: Mapping[str, Any], result: Mapping[str, Any],
                       where: str) -> Verdict:
    if result.get("output_type") != "Tensor":
        return Verdict(status=Status.INCORRECT,
                       reason=f"{where}: returned {result.get('output_type')}, expected a torch.Tensor")
    if result["shape"] != list(config.q_shape):
        return Verdict(status=Status.INCORRECT,
                       reason=f"{where}: output shape {tuple(result['shape'])}, expected {config.q_shape}")
    if result["dtype"] != config.dtype:
        return Verdict(status=Status.INCORRECT,
                       reason=f"{where}: output dtype {result['dtype']}, expected {config.dtype}")
    if result.get("aliases_input"):
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: the output shares memory with an input; return a new tensor")
    return OK


def _check_ops(config: AttentionConfig, case: Mapping[str, Any], result: Mapping[str, Any], where: str) -> Verdict:
    if result.get("launches", 0) < 1:
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: attention() launched no Triton kernel and called no CUDA_SOURCE host "
                              "function; the work must be done by kernels defined in the file (@triton.jit "
                              "launched as kernel[grid](...), or CUDA built with load_extension)")
    ops = judge_ops(where, result.get("ops", {}))
    if not ops.ok:
        return ops
    if result.get("cross_device"):
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: the wrapper moved data between devices ({result['cross_device'][0]})")
    return OK


def judge_ops(where: str, ops: Any) -> Verdict:
    """`illegal` when the wrapper ran torch operations other than allocations, views and copies."""
    banned = sorted(str(op) for op in (ops if isinstance(ops, dict) else {}) if op not in ALLOWED_OPS)
    if banned:
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: the wrapper ran torch operation(s) {', '.join('aten.' + b for b in banned)} "
                              "outside a Triton kernel; only allocation, view and copy operations may run "
                              "around the launches")
    return OK


def _check_inputs(config: AttentionConfig, case: Mapping[str, Any], result: Mapping[str, Any],
                  where: str) -> Verdict:
    rows = np.asarray(case["rows"])
    group = config.heads_q // config.heads_kv
    for name, heads_div in (("q", 1), ("k", group), ("v", group)):
        got = np.asarray(result.get(f"{name}_rows"))
        want = _input_rows(config, case["seed"], name, rows, heads_div)
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = _first_difference(got, want, rows)
            return Verdict(status=Status.ILLEGAL, reason=f"{where}: attention() modified its input {name}{bad}; "
                                                         "inputs must be left unchanged")
    return OK


def _input_rows(config: AttentionConfig, seed: int, tensor: str, rows: np.ndarray, heads_div: int) -> np.ndarray:
    out = np.empty((rows.shape[0], config.head_dim), dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for i, (b, h, n) in enumerate(rows):
        key = (int(b), int(h) // heads_div)
        if key not in cache:
            cache[key] = input_slice(config, seed, tensor, *key)
        out[i] = cache[key][int(n)]
    return out


def _first_difference(got: np.ndarray, want: np.ndarray, rows: np.ndarray) -> str:
    if got.shape != want.shape:
        return ""
    diff = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))))
    if not diff.size:
        return ""
    b, h, n = (int(x) for x in rows[diff[0][0]])
    return f" (first change at batch {b}, head {h}, row {n})"


def _check_numerics(config: AttentionConfig, case: Mapping[str, Any], result: Mapping[str, Any],
                    where: str) -> Verdict:
    rows = np.asarray(case["rows"])
    got = result.get("out_rows")
    if got is None:
        return Verdict(status=Status.INCORRECT, reason=f"{where}: no output rows came back")
    expected = reference_rows(config, case["seed"], case["sm_scale"], rows)
    outcome = compare(np.asarray(got), expected, config.dtype)
    if outcome.ok:
        return OK
    reason = outcome.reason
    if outcome.worst_index:
        b, h, n = (int(x) for x in rows[outcome.worst_index[0]])
        reason += f", at output element [batch {b}, head {h}, row {n}, col {outcome.worst_index[-1]}]"
    return Verdict(status=Status.INCORRECT, reason=f"{where}: {reason}")


def judge_output(case: Mapping[str, Any], rep_rows: Any, secret: np.random.Generator) -> Verdict:
    """Numerics of the timed calls: sampled output rows of every repetition, whose inputs were refilled in
    place from that repetition's seed (a memoised, skipped or only-sometimes-honest call shows here).

    `secret` (drawn by the trusted side after the call, never seen by the child) picks one repetition
    whose returned rows are all checked, and for every other repetition a few rows of one (batch, head)
    slice; the child returned the same rows for every repetition, so it cannot tell which are checked.
    """
    config = AttentionConfig.from_dict(case["config"])
    seeds = [int(s) for s in case["rep_seeds"]]
    where = f"config {config.name}: the benchmark's output differed from the test"
    if not isinstance(rep_rows, list) or len(rep_rows) != len(seeds):
        return Verdict(status=Status.ILLEGAL, reason=f"{where}: the report lacks rows for each of the {len(seeds)} "
                                                     "timed calls (was the result channel tampered with?)")
    rows = np.asarray(case["rows"])
    fully = int(secret.integers(len(seeds)))
    order = [fully, *(r for r in range(len(seeds)) if r != fully)]
    picks = {r: np.arange(rows.shape[0]) if r == fully else spot_rows(rows, secret) for r in order}

    def check(rep: int) -> Verdict:
        at = f"{where}: timed call {rep + 1} of {len(seeds)} (inputs refilled in place, seed {seeds[rep]})"
        got = rep_rows[rep]
        if got is None:
            return Verdict(status=Status.INCORRECT,
                           reason=f"{at}: attention() did not return a tensor of shape {config.q_shape}")
        got = np.asarray(got)
        if got.shape != (rows.shape[0], config.head_dim):
            return Verdict(status=Status.ILLEGAL, reason=f"{at}: the report's rows have shape {got.shape}, "
                                                         f"expected {(rows.shape[0], config.head_dim)}")
        picked = picks[rep]
        return _check_numerics(config, {**case, "seed": seeds[rep], "rows": rows[picked]}, {"out_rows": got[picked]},
                               at)

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # numpy rebuilds inputs without the GIL
        return next((v for v in pool.map(check, order) if not v.ok), OK)


def spot_rows(rows: np.ndarray, secret: np.random.Generator, count: int = 16) -> np.ndarray:
    """Indices of up to `count` rows, drawn from one (batch, head) slice of `rows` (one slice keeps the
    reference cheap: its inputs are rebuilt once)."""
    pairs = np.unique(rows[:, :2], axis=0)
    b, h = pairs[int(secret.integers(len(pairs)))]
    inside = np.flatnonzero((rows[:, 0] == b) & (rows[:, 1] == h))
    return np.sort(secret.choice(inside, size=min(count, inside.size), replace=False))


def judge_timers(changed: Sequence[str]) -> Verdict:
    if changed:
        return Verdict(status=Status.ILLEGAL, reason=f"the candidate replaced timing function(s) {', '.join(changed)}")
    return OK


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Reduced times of one implementation on one configuration.

    Attributes:
        median_ms, min_ms, iqr_ms: over the repetitions.
        reps: how many repetitions were timed.
        score_ms: the time the score uses: the median on a GPU; the minimum in the CPU interpreter,
            whose noise (other processes on a shared core) only ever adds time.
        tflops: FLOPs / score_ms.
    """

    median_ms: float
    min_ms: float
    iqr_ms: float
    reps: int
    score_ms: float
    tflops: float


def reduce_times(times_ms: Sequence[float], flops: float, *, use_min: bool = False) -> Timing:
    ordered = sorted(times_ms)
    q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else (ordered[0],) * 3
    median = statistics.median(ordered)
    score = ordered[0] if use_min else median
    return Timing(median_ms=median, min_ms=ordered[0], iqr_ms=q3 - q1, reps=len(ordered), score_ms=score,
                  tflops=flops / (score * 1e-3) / 1e12 if score > 0 else float("inf"))


def judge_benchmark(config: AttentionConfig, result: Mapping[str, Any], wall_s: float, device: str,
                    *, use_min: bool = False) -> tuple[Verdict, dict[str, Timing]]:
    """Reduces one configuration's times and rejects impossible ones (faster than the peak, or than the clock)."""
    timings = {name: reduce_times(t, config.flops(), use_min=use_min) for name, t in result["times_ms"].items() if t}
    candidate = timings.get("candidate")
    if candidate is None:
        return Verdict(status=Status.CRASH, reason=f"config {config.name}: no candidate times came back"), timings
    total_s = sum(sum(t) for t in result["times_ms"].values()) / 1e3
    if result["region_s"] > wall_s * 1.05 + 0.05 or total_s > result["region_s"] * 1.05 + 0.05:
        reason = (f"config {config.name}: reported times ({total_s:.3f} s in a {result['region_s']:.3f} s region) "
                  f"do not fit the sandbox's own clock ({wall_s:.3f} s for the whole call)")
        return Verdict(status=Status.ILLEGAL, reason=reason), timings
    if candidate.min_ms <= 0:
        return Verdict(status=Status.ILLEGAL, reason=f"config {config.name}: a non-positive time was reported"), timings
    peak = dense_peak_tflops(device)
    if peak is not None and candidate.tflops > peak:
        return Verdict(status=Status.ILLEGAL,
                       reason=f"config {config.name}: {candidate.tflops:.0f} TFLOPS is above {device}'s dense peak "
                              f"of {peak:.0f} TFLOPS; the kernel cannot have done the work it was timed for"), timings
    return OK, timings


def malformed_report(value: Any, key: str, count: int) -> str | None:
    """Why the child's report is not the shape our child function returns (a tampered channel), or None."""
    problem = None
    if not isinstance(value, dict) or not isinstance(value.get(key), list) or "timers_changed" not in value:
        problem = f"it lacks {key!r} or 'timers_changed'"
    elif len(value[key]) != count:
        problem = f"it holds {len(value[key])} results for {count} cases"
    elif not all(isinstance(r, dict) for r in value[key]):
        problem = "a result is not a mapping"
    if problem is None:
        return None
    return f"the report from the candidate's process is malformed ({problem}); was the result channel tampered with?"


def bench_row(config: AttentionConfig, timings: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """One table row: candidate and baseline TFLOPS, the ratio to cuDNN, baseline errors."""
    cudnn = timings.get("sdpa-cudnn")
    candidate = timings["candidate"]
    return {
        "config": config.name,
        "tflops": {name: float(f"{t.tflops:.4g}") for name, t in timings.items()},
        "median_ms": {name: round(t.median_ms, 4) for name, t in timings.items()},
        "iqr_ms": {name: round(t.iqr_ms, 4) for name, t in timings.items()},
        "ratio_to_cudnn": round(candidate.tflops / cudnn.tflops, 4) if cudnn else None,
        "baseline_errors": errors,
    }


def illegal(findings: Sequence[legality.Finding]) -> StageResult:
    """The `illegal` stage result naming the first legality finding (all of them in its details)."""
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    return StageResult.fail(Status.ILLEGAL, f"{findings[0]}{more}", details={"legality": [str(f) for f in findings]})


def hardware_or(out: SandboxResult) -> Status:
    """`needs_device` when a crashed call failed for want of a GPU (`missing_hardware`), else its label."""
    if out.status is Status.CRASH and missing_hardware(f"{out.reason}\n{out.error}"):
        return Status.NEEDS_DEVICE
    return out.status


def sandbox_failure(out: SandboxResult, entry: str) -> str:
    """The sandbox's one-line reason plus the last frame in the candidate's file, if the traceback has one."""
    first = out.reason.splitlines()[0] if out.reason else out.status.value
    frames = re.findall(rf'File "[^"]*/{re.escape(entry)}", line (\d+), in (\S+)', out.error or out.reason)
    return f"{first} (at {entry} line {frames[-1][0]}, in {frames[-1][1]})" if frames else first


def static_check(reports: dict[str, Any], subject: str) -> StageResult:
    """The check stage's verdict on the static reports of a Triton candidate (`subject`: what the capture
    called, e.g. "attention()"): the first compile problem, a missing GPU feature, out of memory, or no kernel
    launched at all; otherwise ok, with the compact reports as details."""
    from .cuda_source import Language
    from .static import compact_report, first_error

    details = {"language": Language.TRITON.value, "legality": [],
               "static": {arch: compact_report(r) for arch, r in reports.items()}}
    error = first_error(reports, subject)
    if error:
        out_of_memory = any(r.get("oom") for r in reports.values())
        status = Status.OOM if out_of_memory else Status.NEEDS_DEVICE if missing_hardware(error) \
            else Status.COMPILE_ERROR
        return StageResult.fail(status, error, details=details)
    if not any(r["kernels"] for r in reports.values()):
        return StageResult.fail(Status.ILLEGAL, f"{subject} launched no Triton kernel; the work must be done by "
                                                "@triton.jit kernels defined in the file", details=details)
    return StageResult(details=details)
