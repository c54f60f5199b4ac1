"""Engine overhead per trial (store + scheduling, no evaluation, no model) and sandbox start-up latency.

    python benchmarks/bench_engine.py [--trials 10000] [--window 1000]

Overhead = wall time of the loop minus the time spent inside the operator and the evaluator,
per trial, reported per window of trials so that growth over a long run is visible.
Targets (DESIGN.md): <= 5 ms per trial, flat to 10,000 trials; sandbox start-up <= 150 ms.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import evoagent as ea
from evoagent.operators.base import Proposal


class Instant(ea.Evaluator):
    """Scores a candidate from its text without running it (zero evaluation cost)."""

    name = "instant"
    stages = ("score",)

    def score(self, candidate, sandbox):
        return ea.StageResult(metrics={"f": 1.0 + (hash(candidate.id) % 1000) / 1000})


class Counter(ea.VariationOperator):
    """Proposes a new version each step by bumping a counter (an instant mock of a model)."""

    name = "counter"

    def __init__(self) -> None:
        self.n = 0

    def vary(self, context):
        self.n += 1
        child = context.parent.with_files({context.parent.entry: f"N = {self.n}\n"}, hypothesis=f"n={self.n}")
        return Proposal(candidate=child, hypothesis=f"n={self.n}")


class Timed:
    """Wraps a callable and adds its wall time to `total`."""

    def __init__(self, fn):
        self.fn, self.total = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - start


def engine_overhead(trials: int, window: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        evaluator, operator = Instant(), Counter()
        evaluate, vary = Timed(evaluator.evaluate), Timed(operator.vary)
        evaluator.evaluate, operator.vary = evaluate, vary
        run = ea.Run.create(Path(tmp) / "run", evaluator=evaluator, seeds=[ea.Candidate.from_source("N = 0\n")],
                            population=ea.Tree("best"))
        per_window, last, inside = [], time.perf_counter(), 0.0
        for i, _ in enumerate(ea.iterate(run, operator, ea.Budget(trials=trials)), start=1):
            if i % window == 0:
                now = time.perf_counter()
                spent = evaluate.total + vary.total
                per_window.append((now - last - (spent - inside)) / window * 1000)
                last, inside = now, spent
        run.close()
        return per_window


def sandbox_latency(calls: int) -> tuple[float, float]:
    started = time.perf_counter()
    with ea.Sandbox(ea.SandboxConfig(preload=("numpy", "torch"), workers=1)) as sandbox:
        sandbox.call(platform.python_version)  # the first call waits for the server to start
        server_s = time.perf_counter() - started
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            out = sandbox.call(platform.python_version, files={"main.py": "x = 1\n"})
            assert out.ok, out.reason
            times.append(time.perf_counter() - t)
    return server_s, statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--sandbox-calls", type=int, default=30)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} {cpu}, Python {platform.python_version()}")
    windows = engine_overhead(args.trials, args.window)
    for i, ms in enumerate(windows):
        print(f"engine overhead, trials {i * args.window + 1:>6}-{(i + 1) * args.window:<6}: {ms:6.2f} ms/trial")
    print(f"engine overhead, mean over {args.trials} trials: {statistics.mean(windows):.2f} ms/trial "
          f"(first window {windows[0]:.2f}, last {windows[-1]:.2f})")
    server_s, median_ms = sandbox_latency(args.sandbox_calls)
    print(f"sandbox: server start (numpy+torch pre-imported) {server_s:.2f} s; "
          f"trivial call median {median_ms:.1f} ms over {args.sandbox_calls} calls")


if __name__ == "__main__":
    main()
