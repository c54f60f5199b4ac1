"""A scripted 200-step run with realistic step sizes: compactions only at step boundaries, the prompt cache hit,
and every opening shows the notes block, the last submission's Δ and the budget (benchmarks/bench_context.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_context.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_context", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_context"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_a_200_step_run_compacts_only_between_steps_and_reads_the_cache(bench: ModuleType) -> None:
    report = bench.simulate(200)
    assert report.steps == 200
    assert 15_000 <= sorted(report.step_growth_tokens)[100] <= 30_000  # realistic steps
    assert report.compactions_inside_step == 0
    assert report.compactions_at_boundary >= 20  # the run is long enough to need them
    assert report.cache_hit_share >= 0.90
    openings = report.openings
    assert len(openings) == 200
    for number, opening in enumerate(openings, 1):
        notes = opening[opening.index("### Your notes"):].split("\n\n")[0]
        assert ("(empty)" in notes) if number == 1 else f"step {number - 1}: SPEED" in notes
        assert "### Budget" in opening and "Run budget left: " in opening and "trials" in opening
        if number > 1:
            assert re.search(r"Last submission: version \w+: ok, score [\d.]+, Δ \+\d+\.\d\d% vs its starting", opening)


def test_with_five_minute_breakpoints_a_step_boundary_loses_the_cache(bench: ModuleType) -> None:
    assert bench.simulate(12, rolling_ttl_s=300).cache_hit_share < bench.simulate(12).cache_hit_share
