"""How busy one GPU stays as agents are added: busy fraction and trials per hour for 1, 2, 4, 8 agents.

    python benchmarks/bench_scale.py [--agents 1,2,4,8] [--gpu-s 0.2] [--cpu-s 0.2] [--think-s 0.4]
                                     [--trials-per-agent 12] [--cpu-workers 4] [--executor local|ray]

Each agent is an engine slot whose operator "thinks" for `--think-s` (a model's latency, slept; no
network) and proposes a new version. The evaluator has a CPU stage (`--cpu-s`, slept in a sandboxed
call on a CPU worker: the static compile) and a simulated GPU stage (`--gpu-s`, slept in a sandboxed
`gpu=True` call on the one GPU worker, device id "0": fixed latency, on the CPU). So a trial needs
think + cpu + gpu seconds and the GPU can serve at most 1 / gpu trials per second: with 8 agents
and the defaults the GPU is asked for twice what it can do, and any idle time is the pipeline's.

Reported per row: the session's wall time (from the moment the GPU worker was ready to the end of
the session, as stored with the run), trials per hour over it, and three shares of that wall time:
`busy`, what `evoagent status` reports (the GPU queue's accounting: from a call getting the device
to handing it back), `child` (the GPU calls' children, fork to exit, as the fork server measured
them) and `stage` (the fixed latency alone, calls x gpu), so busy >= child >= stage; and `demand`,
the GPU share the agents would ask for with no overhead at all, agents * gpu / (think + cpu + gpu).
Target (issue 15): >= 90% busy with 8 agents.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import evoagent as ea
from evoagent.operators.base import Proposal


def hold(seconds: float) -> float:
    """In the sandbox child: the stage's fixed latency."""
    time.sleep(seconds)
    return seconds


class SimulatedGpu(ea.Evaluator):
    """A CPU stage and a GPU stage of fixed latency; the score is the candidate's N (always a new best)."""

    name = "simulated-gpu"
    stages = ("compile", "time")
    timing_stages = ("time",)

    def __init__(self, cpu_s: float = 0.2, gpu_s: float = 0.2, cpu_workers: int = 4) -> None:
        self.cpu_s, self.gpu_s, self.cpu_workers = cpu_s, gpu_s, cpu_workers
        self.gpu_child_s = 0.0  # the GPU stage's child wall time, summed (a cross-check of the queue's)
        self._lock = threading.Lock()

    def sandbox_config(self) -> ea.SandboxConfig:
        return ea.SandboxConfig(workers=self.cpu_workers, preload=("evoagent",), memory_mb=512, gpus=("0",))

    def compile(self, candidate: ea.Candidate, sandbox: ea.Sandbox) -> ea.StageResult:
        out = sandbox.call(hold, self.cpu_s, files=dict(candidate.files))
        return ea.StageResult() if out.ok else ea.StageResult.fail(out.status, out.reason)

    def time(self, candidate: ea.Candidate, sandbox: ea.Sandbox) -> ea.StageResult:
        out = sandbox.call(hold, self.gpu_s, files=dict(candidate.files), gpu=True)
        if not out.ok:
            return ea.StageResult.fail(out.status, out.reason)
        with self._lock:
            self.gpu_child_s += out.wall_s
        return ea.StageResult(metrics={"n": 1.0 + float(candidate.source.split("=")[1])})


class Thinker(ea.VariationOperator):
    """Sleeps `think_s` (the model's latency), then proposes N = the next number (never a duplicate)."""

    name = "thinker"

    def __init__(self, think_s: float) -> None:
        self.think_s = think_s
        self._numbers = itertools.count(1)

    def vary(self, context: ea.VariationContext) -> Proposal:
        time.sleep(self.think_s)
        n = next(self._numbers)
        child = context.parent.with_files({context.parent.entry: f"N = {n}\n"}, hypothesis=f"n={n}")
        return Proposal(candidate=child, hypothesis=f"n={n}")


def measure(agents: int, trials: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = SimulatedGpu(args.cpu_s, args.gpu_s, args.cpu_workers)
        run = ea.Run.create(Path(tmp) / "run", evaluator=evaluator, seeds=[ea.Candidate.from_source("N = 0\n")])
        started = time.perf_counter()
        executor = ea.ExecutorConfig(kind=args.executor)  # ray: a local Ray with the sandbox's CPUs and GPU
        result = ea.evolve(run, Thinker(args.think_s), ea.Budget(trials=trials), slots=agents, executor=executor)
        elapsed_s = time.perf_counter() - started
        (usage,) = run.store.device_usage()
        assert len(result.trials) == trials and all(t.status is ea.Status.OK for t in result.trials)
        run.close()
    cycle_s = args.think_s + args.cpu_s + args.gpu_s
    return {"agents": agents, "trials": trials, "wall_s": usage.wall_s, "elapsed_s": elapsed_s,
            "trials_per_h": trials / usage.wall_s * 3600, "busy": usage.busy_s / usage.wall_s,
            "child": evaluator.gpu_child_s / usage.wall_s, "stage": usage.calls * args.gpu_s / usage.wall_s,
            "demand": agents * args.gpu_s / cycle_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1,2,4,8", help="comma-separated agent (slot) counts")
    parser.add_argument("--gpu-s", type=float, default=0.2, help="the simulated GPU stage's latency")
    parser.add_argument("--cpu-s", type=float, default=0.2, help="the CPU stage's latency (the static compile)")
    parser.add_argument("--think-s", type=float, default=0.4, help="each step's model latency")
    parser.add_argument("--trials-per-agent", type=int, default=12)
    parser.add_argument("--cpu-workers", type=int, default=4, help="CPU fork servers (SandboxConfig.workers)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    counts = [int(a) for a in args.agents.split(",")]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load {os.getloadavg()}")
    print(f"executor {args.executor}; stages: think {args.think_s} s, cpu {args.cpu_s} s ({args.cpu_workers} CPU "
          f"workers), gpu {args.gpu_s} s on one simulated GPU")
    print(f"{'agents':>6} {'trials':>6} {'wall s':>7} {'trials/h':>9} {'GPU busy':>9} {'child':>7} {'stage':>7} "
          f"{'demand':>7}")
    for agents in counts:
        row = measure(agents, max(10, args.trials_per_agent * agents), args)
        print(f"{agents:>6} {row['trials']:>6} {row['wall_s']:>7.1f} {row['trials_per_h']:>9,.0f} "
              f"{row['busy']:>9.1%} {row['child']:>7.1%} {row['stage']:>7.1%} {row['demand']:>7.0%}", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
