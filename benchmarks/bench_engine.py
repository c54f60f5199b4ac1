"""Per-trial cost: the engine alone, the agentic CLI path against an instant Messages server, sandbox start-up.

    python benchmarks/bench_engine.py [--trials 10000] [--window 1000] [--agentic-trials 10000]
                                      [--population tree|islands|map_elites]

Engine overhead = wall time of the loop minus the time spent inside the operator and the evaluator,
per trial, reported per window of trials so that growth over a long run is visible.
The agentic CLI path runs `evoagent run` as users do (the `anthropic` client over HTTP, the agentic
operator with its knowledge base, the store, a trivial evaluator whose score is a constant in the
candidate) against `instant_messages_server.py`: one edit and one submit a trial. Its ms per trial
come from the stored trials' finish times, per window; beside them, the CLI process's CPU ms per trial
(read from /proc as each step opens), which a busy machine does not inflate the way it does wall time.
Targets (DESIGN.md): <= 5 ms per trial, flat to 10,000 trials; sandbox start-up <= 150 ms; the
agentic path flat (last window within 25% of the first).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from instant_messages_server import InstantMessagesServer

import evoagent as ea
from evoagent.operators.base import Proposal

CONSTANT_TARGET = """\
import evoagent as ea


class Constant(ea.Evaluator):
    \"\"\"The score is the constant N in the candidate (no sandbox call).\"\"\"

    name = "constant"
    stages = ("score",)

    def score(self, candidate, sandbox):
        return ea.StageResult(metrics={"f": 1.0 + float(candidate.source.split("=")[1])})
"""
CONFIG = """\
seeds = ["main.py"]
[evaluator]
target = "constant.py:Constant"
[operator]
kind = "agentic"
[operator.params]
critique = false
[budget]
trials = {trials}
"""


class Instant(ea.Evaluator):
    """Scores a candidate from its text without running it (zero evaluation cost)."""

    name = "instant"
    stages = ("score",)

    def score(self, candidate, sandbox):
        return ea.StageResult(metrics={"f": 1.0 + (hash(candidate.id) % 1000) / 1000})

    def descriptors(self, candidate, result):
        """Two descriptors of 32 values each from the id: up to 1024 MAP-Elites cells."""
        h = int(candidate.id, 16)
        return ea.Descriptors(values={"a": float(h % 32), "b": float(h // 32 % 32)})


POPULATIONS = {"tree": lambda: ea.Tree("best"), "islands": lambda: ea.Islands(8, migrate_every=50, migrants=2),
               "map_elites": lambda: ea.MapElites()}


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


def engine_overhead(trials: int, window: int, population: str = "tree") -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        evaluator, operator = Instant(), Counter()
        evaluate, vary = Timed(evaluator.evaluate), Timed(operator.vary)
        evaluator.evaluate, operator.vary = evaluate, vary
        run = ea.Run.create(Path(tmp) / "run", evaluator=evaluator, seeds=[ea.Candidate.from_source("N = 0\n")],
                            population=POPULATIONS[population]())
        per_window, last, inside = [], time.perf_counter(), 0.0
        for i, _ in enumerate(ea.iterate(run, operator, ea.Budget(trials=trials)), start=1):
            if i % window == 0:
                now = time.perf_counter()
                spent = evaluate.total + vary.total
                per_window.append((now - last - (spent - inside)) / window * 1000)
                last, inside = now, spent
        run.close()
        return per_window


@dataclass(frozen=True)
class AgenticWindows:
    """The agentic CLI path per window of trials: wall ms per trial, the CLI process's CPU ms per trial."""

    wall_ms: list[float]
    cpu_ms: list[float]
    load: list[float]  # the machine's 1-minute load average at each window's end
    command_s: float


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads, those that ended included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agentic_cli(trials: int, window: int) -> AgenticWindows:
    """ms per trial of `evoagent run` per window of trials (wall and CPU), and the whole command's wall time.

    CPU time does not count the time the process waits for the cores, so on a shared machine it shows a
    trend that wall time hides: it is read from /proc when each step's first request reaches the server.
    """
    cpu_at: dict[int, float] = {}  # step number -> the CLI's CPU seconds when that step opened
    load_at: dict[int, float] = {}  # step number -> the load average then (every `window` steps)
    pid = 0

    def on_step(step: int) -> None:
        cpu_at[step] = process_cpu_s(pid)
        if step % window == 0:
            load_at[step] = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp, InstantMessagesServer(on_step=on_step) as server:
        root = Path(tmp)
        (root / "constant.py").write_text(CONSTANT_TARGET)
        (root / "main.py").write_text("N = 0\n")
        (root / "run.toml").write_text(CONFIG.format(trials=trials))
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key", "ANTHROPIC_BASE_URL": server.url}
        started = time.perf_counter()
        with subprocess.Popen([sys.executable, "-m", "evoagent.cli", "run", "run.toml", "--run-dir", "run", "--quiet"],
                              cwd=root, env=env, stdout=subprocess.DEVNULL) as cli:
            pid = cli.pid
            if cli.wait() != 0:
                raise SystemExit(f"evoagent run exited with {cli.returncode}")
        command_s = time.perf_counter() - started
        end_load = os.getloadavg()[0]
        with ea.Run.open(root / "run", readonly=True) as run:
            finished = [t.finished_at for t in run.trials() if t.finished_at is not None]
    assert len(finished) == trials, f"{len(finished)} of {trials} trials finished"
    assert sorted(cpu_at) == list(range(1, trials + 1)), "a step opened without the server seeing it"
    # The first trial's window starts when the first trial did (the sandbox and seed come before).
    marks = [finished[0] - (finished[1] - finished[0]), *finished]
    starts = range(0, trials - window + 1, window)
    wall = [(marks[i + window] - marks[i]) / window * 1000 for i in starts]
    # CPU from the opening of a window's first step to the opening of the next window's first step (the
    # last window: to its last step's opening, so it spans one step fewer).
    cpu = []
    for i in starts:
        first, last = i + 1, min(i + window + 1, trials)
        cpu.append((cpu_at[last] - cpu_at[first]) / (last - first) * 1000)
    load = [load_at.get(i + window, end_load) for i in starts]
    return AgenticWindows(wall_ms=wall, cpu_ms=cpu, load=load, command_s=command_s)


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
    parser.add_argument("--trials", type=int, default=10_000, help="engine-only trials; 0 skips that path")
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--sandbox-calls", type=int, default=30, help="0 skips the sandbox latency")
    parser.add_argument("--agentic-trials", type=int, default=10_000, help="0 skips the agentic CLI path")
    parser.add_argument("--agentic-window", type=int, default=1_000)
    parser.add_argument("--population", choices=sorted(POPULATIONS), default="tree")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} {cpu}, Python {platform.python_version()}, load {os.getloadavg()}")
    if args.agentic_trials:
        size = min(args.agentic_window, args.agentic_trials)
        agentic = agentic_cli(args.agentic_trials, size)
        for i, (wall_ms, cpu_ms, load) in enumerate(zip(agentic.wall_ms, agentic.cpu_ms, agentic.load)):
            print(f"agentic CLI, trials {i * size + 1:>6}-{(i + 1) * size:<6}: {wall_ms:7.2f} ms/trial wall, "
                  f"{cpu_ms:6.2f} ms/trial CPU (load {load:.1f})")
        wall, cpu = agentic.wall_ms, agentic.cpu_ms
        print(f"agentic CLI, {args.agentic_trials} trials: first window {wall[0]:.2f} ms/trial wall, last "
              f"{wall[-1]:.2f} ({wall[-1] / wall[0] - 1:+.0%}); CPU {cpu[0]:.2f} -> {cpu[-1]:.2f} ms/trial "
              f"({cpu[-1] / cpu[0] - 1:+.0%}); command wall {agentic.command_s:.1f} s, load {os.getloadavg()}")
    if not args.trials:
        return
    print(f"population: {args.population}")
    windows = engine_overhead(args.trials, args.window, args.population)
    for i, ms in enumerate(windows):
        print(f"engine overhead, trials {i * args.window + 1:>6}-{(i + 1) * args.window:<6}: {ms:6.2f} ms/trial")
    print(f"engine overhead, mean over {args.trials} trials: {statistics.mean(windows):.2f} ms/trial "
          f"(first window {windows[0]:.2f}, last {windows[-1]:.2f})")
    if not args.sandbox_calls:
        return
    server_s, median_ms = sandbox_latency(args.sandbox_calls)
    print(f"sandbox: server start (numpy+torch pre-imported) {server_s:.2f} s; "
          f"trivial call median {median_ms:.1f} ms over {args.sandbox_calls} calls")


if __name__ == "__main__":
    main()
