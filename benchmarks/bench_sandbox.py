"""Sandbox start-up latency: fork-server start, then per-call latency of trivial calls (numpy + torch pre-imported).

    python benchmarks/bench_sandbox.py [--calls 30] [--preload numpy,torch] [--json out.json]

Target (DESIGN.md): a sandboxed evaluation of a trivial candidate starts in <= 150 ms. Calls are timed
with the OS confinement on (the default: Landlock + namespaces) and off, to show its cost. For scale
it also times what the fork server avoids: a cold interpreter importing the same modules.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from evoagent.sandbox import Sandbox, SandboxConfig, run_module_function

CANDIDATE = {"main.py": "def answer():\n    return 42\n"}


def _time_calls(sandbox: Sandbox, calls: int, fn, *args, **kwargs) -> list[float]:
    for _ in range(3):  # warm-up
        assert sandbox.call(fn, *args, **kwargs).ok
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        out = sandbox.call(fn, *args, **kwargs)
        times.append(time.perf_counter() - started)
        assert out.ok, out.reason
    return times


def _cold_import_s(modules: tuple[str, ...], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {', '.join(modules) or 'sys'}"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _measure(preload: tuple[str, ...], calls: int, confine: bool) -> dict[str, object]:
    started = time.perf_counter()
    sandbox = Sandbox(SandboxConfig(workers=1, preload=preload, confine=confine))
    start_s = time.perf_counter() - started
    with sandbox:
        trivial = _time_calls(sandbox, calls, os.getpid)
        # a one-file candidate written to the call's directory and imported there (dir: a plain list back)
        candidate = _time_calls(sandbox, calls, run_module_function, "main.py", dir, files=CANDIDATE)
    return {
        "confinement": sandbox.confinement.describe(), "server_start_s": start_s,
        "trivial_call_median_ms": 1000 * statistics.median(trivial),
        "trivial_call_p90_ms": 1000 * statistics.quantiles(trivial, n=10)[-1],
        "candidate_call_median_ms": 1000 * statistics.median(candidate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--preload", default="numpy,torch")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    options = parser.parse_args()
    preload = tuple(m for m in options.preload.split(",") if m)

    numbers: dict[str, object] = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}",
        "preload": list(preload), "calls": options.calls,
    }
    print(f"machine: {numbers['machine']}; preload: {', '.join(preload) or '(none)'}")
    for confine in (True, False):
        numbers["confined" if confine else "unconfined"] = measured = _measure(preload, options.calls, confine)
        print(f"-- confinement {measured['confinement']}")
        print(f"fork server start (incl. pre-imports):       {measured['server_start_s'] * 1000:8.1f} ms")
        print(f"trivial call, median of {options.calls} (p90):           "
              f"{measured['trivial_call_median_ms']:8.1f} ms ({measured['trivial_call_p90_ms']:.1f} ms)")
        candidate_ms = measured["candidate_call_median_ms"]
        print(f"one-file candidate call, median of {options.calls}:      {candidate_ms:8.1f} ms")
    numbers["cold_interpreter_import_s"] = cold = _cold_import_s(preload)
    print(f"for scale: cold interpreter importing them:  {cold * 1000:8.1f} ms")
    if options.json:
        with open(options.json, "w") as f:
            json.dump(numbers, f, indent=2)


if __name__ == "__main__":
    main()
