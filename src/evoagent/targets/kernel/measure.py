"""Trusted side of the kernel target's driven timing: fresh inputs per request, this process's clock, every output kept.

`drive_candidate` runs in the trusted process while the candidate's child (`child.serve_candidate`)
answers. The time of a call is the round trip of its request (inputs in, outputs out) measured here,
so nothing the candidate does to its own process changes it; every call's outputs are returned for
the evaluator to check against the reference. Used when the sandbox has driven calls (#23's
`evoagent.channel`); `child.time_candidate` is the fallback until then.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

CALL_TIMEOUT_S = 300.0  # one call in the interpreter; the sandbox call's own limit still applies


def driver_class() -> Any:
    """`evoagent.channel.Driver` when this sandbox has driven calls, else None."""
    try:
        return importlib.import_module("evoagent.channel").Driver
    except ImportError:
        return None


def drive_candidate(session: Any, input_sets: Sequence[Sequence[Any]], warmup: int) -> dict[str, Any]:
    """Warm-up requests with the first set, then one timed request per set: {"times_ms", "outputs"} or an error."""
    times: list[float] = []
    outputs: list[Any] = []
    try:
        for _ in range(warmup):
            session.request({"inputs": list(input_sets[0])}, timeout_s=CALL_TIMEOUT_S)
        for values in input_sets:
            started = time.perf_counter()
            reply = session.request({"inputs": list(values)}, timeout_s=CALL_TIMEOUT_S)
            times.append((time.perf_counter() - started) * 1e3)
            outputs.append(reply.get("outputs") if isinstance(reply, dict) else None)
    except Exception as exc:  # the child died or answered garbage: data for the evaluator
        return {"error": f"{type(exc).__name__}: {str(exc)[:500]}", "times_ms": times, "outputs": outputs}
    finally:
        session.stop()
    return {"times_ms": times, "outputs": outputs, "driven": True}
