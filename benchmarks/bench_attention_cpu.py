"""Wall time of each attention stage for the seed kernel on the CPU interpreter (suite 'smoke').

    python benchmarks/bench_attention_cpu.py [--repeats 3] [--json out.json]

Target: the smoke suite's test stage stays under 10 s. Timed with the sandbox's OS confinement on and
off (same evaluator, fresh sandbox each), after one untimed evaluation that warms the caches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time

from evoagent.candidate import Candidate
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator, default_seed

STAGES = ("check", "test", "benchmark")


def _measure(evaluator: AttentionEvaluator, seed: Candidate, confine: bool, repeats: int) -> dict[str, object]:
    config = dataclasses.replace(evaluator.sandbox_config(), confine=confine)
    with Sandbox(config) as sandbox:
        assert evaluator.evaluate(seed, sandbox, stages=STAGES).ok  # warm-up (static report cached after it)
        times: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for _ in range(repeats):
            for stage in STAGES:
                started = time.perf_counter()
                result = evaluator.evaluate(seed, sandbox, stages=(stage,))
                times[stage].append(time.perf_counter() - started)
                assert result.ok, result.reason
        level = sandbox.confinement.describe()
    return {"confinement": level, **{f"{stage}_median_s": statistics.median(t) for stage, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    options = parser.parse_args()
    seed = Candidate.from_path(default_seed(), entry="kernel.py")
    numbers = {}
    with tempfile.TemporaryDirectory() as cache:
        evaluator = AttentionEvaluator("smoke", cache_dir=f"{cache}/static", seed=0)
        for confine in (True, False):
            numbers["confined" if confine else "unconfined"] = measured = _measure(evaluator, seed, confine,
                                                                                   options.repeats)
            print(f"-- confinement {measured['confinement']}")
            for stage in STAGES:
                print(f"{stage:<10} median of {options.repeats}: {measured[f'{stage}_median_s']:6.2f} s")
    if options.json:
        with open(options.json, "w") as f:
            json.dump(numbers, f, indent=2)


if __name__ == "__main__":
    main()
