"""Trusted side of the attention target's test and timing without a GPU: it drives the replay child.

`drive_replays` runs in the trusted process while the replay child (`untrusted.replay.serve`) runs
the candidate's kernels alone in Triton's interpreter. For every call it makes fresh inputs here,
sends them, times the answer with its own clock and checks the whole output against the fp64
reference computed here. The child sees inputs and answers; it never sees the clock, the reference
or which call is which, and a wrong answer fails whatever it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...channel import ChannelClosed, Session
from ...result import Status
from ...trusted.plan import PlanRejected, check_plan, plan_difference
from .judge import (
    OK,
    Verdict,
    judge_case,
    judge_ops,
    judge_timers,
    malformed_report,
    missing_hardware,
    needs_device_reason,
)
from .reference import compare, make_inputs, reference_attention
from .suites import AttentionConfig

# Limit of one replayed call (the interpreter is slow; the sandbox call's own limit still applies).
CALL_TIMEOUT_S = 300.0


def wire(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values (exact in `dtype`) as the child receives them: float16/float32, or bfloat16's bits."""
    if dtype == "float16":
        return values.astype(np.float16)
    if dtype == "bfloat16":
        return (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return values.astype(np.float32)


def unwire(values: Any, dtype: str) -> np.ndarray:
    """The child's output as float32 (bfloat16 arrives as its 16-bit patterns)."""
    array = np.asarray(values)
    if dtype == "bfloat16" and array.dtype == np.uint16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def drive_replays(session: Session, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs each job's calls through the replay child; returns per job {"times_s", "failure"}.

    A job is {"plan": index, "config": dict, "sm_scale": float, "seeds": [int], "untimed": int}: one call
    per seed, the first `untimed` of them warm-ups (checked, not timed). `failure` is None or the first
    problem: an error in the child, a wrong or unwritten output, a changed input.
    """
    return [_drive_job(session, job) for job in jobs]


def _drive_job(session: Session, job: Mapping[str, Any]) -> dict[str, Any]:
    config = AttentionConfig.from_dict(job["config"])
    times: list[float] = []
    for index, seed in enumerate(job["seeds"]):
        q, k, v = make_inputs(config, int(seed))
        sent = {"q": wire(q, config.dtype), "k": wire(k, config.dtype), "v": wire(v, config.dtype)}
        started = time.perf_counter()
        try:
            reply = session.request({"plan": int(job["plan"]), "inputs": sent}, timeout_s=CALL_TIMEOUT_S)
        except ChannelClosed as exc:
            return {"times_s": times, "failure": {"kind": "crash", "reason": str(exc)}}
        elapsed = time.perf_counter() - started
        try:
            failure = _judge_reply(reply, config, sent, q, k, v, float(job["sm_scale"]), index, int(seed))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            failure = {"kind": "illegal", "reason": f"config {config.name}: the replay child's answer is malformed "
                                                    f"({type(exc).__name__}: {exc})"}
        if failure is not None:
            return {"times_s": times, "failure": failure}
        if index >= int(job.get("untimed", 0)):
            times.append(elapsed)
    return {"times_s": times, "failure": None}


def _judge_reply(reply: Any, config: AttentionConfig, sent: Mapping[str, np.ndarray], q: np.ndarray, k: np.ndarray,
                 v: np.ndarray, sm_scale: float, index: int, seed: int) -> dict[str, str] | None:
    where = f"config {config.name}, call {index + 1} (inputs seed {seed})"
    if not isinstance(reply, dict):
        return {"kind": "crash", "reason": f"{where}: the replay child answered {type(reply).__name__}"}
    if "error" in reply:
        return {"kind": "error", "reason": f"{where}: the kernel raised {reply['error']}"}
    out = reply.get("out")
    if not isinstance(out, np.ndarray) or tuple(out.shape) != config.q_shape:
        shape = getattr(out, "shape", None)
        return {"kind": "incorrect", "reason": f"{where}: the output has shape {shape}, expected {config.q_shape}"}
    for name, array in sent.items():
        after = np.asarray(reply.get("inputs", {}).get(name))
        if after.shape != (array.nbytes,) or not np.array_equal(after, array.view(np.uint8).reshape(-1)):
            return {"kind": "illegal", "reason": f"{where}: the kernels modified their input {name}; inputs must be "
                                                 "left unchanged"}
    outcome = compare(unwire(out, config.dtype), reference_attention(q, k, v, causal=config.causal,
                                                                      sm_scale=sm_scale), config.dtype)
    if outcome.ok:
        return None
    reason = f"{where}: {outcome.reason}"
    if outcome.worst_index:
        b, h, n, d = outcome.worst_index
        reason += f", at output element [batch {b}, head {h}, row {n}, col {d}]"
    return {"kind": "incorrect", "reason": reason}


# -- verdicts on a capture -------------------------------------------------------------------------


def input_sizes(config: AttentionConfig) -> dict[str, int]:
    """Bytes of q, k and v for a configuration (the inputs a plan may point into)."""
    item = 4 if config.dtype == "float32" else 2
    q = config.batch * config.heads_q * config.seqlen * config.head_dim * item
    kv = config.batch * config.heads_kv * config.seqlen * config.head_dim * item
    return {"q": q, "k": kv, "v": kv}


def max_scratch_bytes(config: AttentionConfig) -> int:
    """What a plan may allocate besides the inputs: the output, and scratch worth four times q plus 256 MiB."""
    return 5 * input_sizes(config)["q"] + (256 << 20)


def judge_capture(cases: Sequence[Mapping[str, Any]], report: Any) -> tuple[Verdict, list[dict[str, Any]]]:
    """The plans of a capture call (one per case), or the verdict that stops the stage.

    Each call's report is judged as a test case is (errors, output type, torch operations); its plan must
    be well formed, and calls of the same configuration must have made the same plan: a plan that changes
    with the input values or from one call to the next is not the kernels' work alone.
    """
    malformed = malformed_report(report, "cases", len(cases))
    if malformed:
        return Verdict(status=Status.ILLEGAL, reason=malformed), []
    timers = judge_timers(report["timers_changed"])  # the capture's own word: a patch there shows intent
    if not timers.ok:
        return timers, []
    plans: list[dict[str, Any]] = []
    first: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, (case, result) in enumerate(zip(cases, report["cases"])):
        config = AttentionConfig.from_dict(case["config"])
        where = f"config {config.name} (seed {case['seed']})"
        if "plan_error" in result:
            ops = judge_ops(where, result.get("ops", {}))  # torch operations are the clearer reason, when there are
            plan_error = Verdict(status=Status.ILLEGAL, reason=f"{where}: {result['plan_error']}")
            return (ops if not ops.ok else plan_error), []
        plan = result.get("plan")
        verdict = judge_case(case, {**result, "launches": len(plan["launches"]) if isinstance(plan, dict)
                                    and isinstance(plan.get("launches"), list) else 0}, numerics=False)
        if not verdict.ok:
            return verdict, []
        try:
            plans.append(check_plan(plan, input_sizes(config), max_scratch_bytes=max_scratch_bytes(config)))
        except PlanRejected as exc:
            return Verdict(status=Status.ILLEGAL, reason=f"{where}: the launch plan the capture reported is "
                                                         f"malformed ({exc}); was the report tampered with?"), []
        earlier = first.setdefault(f"{config.name} {case['sm_scale']!r}", (index, plan))
        difference = plan_difference(earlier[1], plan) if earlier[0] != index else None
        if difference:
            return Verdict(status=Status.ILLEGAL, reason=f"{where}: the kernels launched differ between two calls "
                                                         f"of the same shape with other input values ({difference}); "
                                                         "launches may depend on shapes, never on values or on "
                                                         "how often attention() was called"), []
    return OK, plans


def replay_verdict(results: Any, count: int) -> Verdict:
    """The first failure among the trusted driver's per-job results (OK when every call passed)."""
    if not isinstance(results, list) or len(results) != count:
        return Verdict(status=Status.HARNESS_ERROR, reason="the replay driver returned no result for every job")
    for result in results:
        failure = result["failure"]
        if failure is None:
            continue
        kind, reason = failure["kind"], failure["reason"]
        if kind == "error" and missing_hardware(reason):
            return Verdict(status=Status.NEEDS_DEVICE, reason=needs_device_reason("replay", reason))
        status = {"incorrect": Status.INCORRECT, "illegal": Status.ILLEGAL}.get(kind, Status.CRASH)
        return Verdict(status=status, reason=reason)
    return OK
