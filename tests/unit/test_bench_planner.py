"""The device check's benchmark schedule on a fake clock: with the review's worst-case costs, the first
GPU call still writes all 10 h100-mha rows with seed, cuDNN and FLASH numbers inside its deadline."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evoagent.targets.attention import get_suite

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
planner_module = importlib.import_module("bench_planner")
device_report = importlib.import_module("device_report")
attention_bench = importlib.import_module("attention_bench")

SEEDS = ["cuda_fa2", "fa2", "hopper_tma"]
BASELINES = ["sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "flex", "flash-attn", "flash-attn-3"]
# The review's worst case (issue #25): the CUDA seed's build, a Hopper autotune compile, Flex per
# shape, and nvcc's static check of the CUDA seed.
CUDA_BUILD_S, HOPPER_COMPILE_S, FLEX_PER_SHAPE_S, NVCC_S = 40.0, 20.0, 40.0, 15.0
BENCHMARK_DEADLINE_S = 290.0  # the benchmark step's --budget-s in device_check.sh's first call


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class WorstCaseBackend:
    """Prepares and times nothing, advancing the clock by what each step would cost at worst."""

    def __init__(self, clock: FakeClock, flash_attn: bool = False) -> None:
        self.clock = clock
        self.compiled: set[tuple[Any, ...]] = set()
        self.flash_attn = flash_attn
        self.timed: list[tuple[str, tuple[str, ...]]] = []

    def _once(self, key: tuple[Any, ...], cost_s: float) -> float:
        if key in self.compiled:
            return 0.0
        self.compiled.add(key)
        return cost_s

    def prepare(self, config: Any, name: str) -> Any:
        kind = (config.dtype, config.head_dim, config.causal)
        cost = 1.0  # inputs, reference, the first call and its check
        if name == "cuda_fa2":
            cost += self._once(("cuda",), CUDA_BUILD_S)
        elif name == "hopper_tma":  # a compile per autotune config and kind, autotuning per shape
            cost += self._once(("hopper", *kind), HOPPER_COMPILE_S) + self._once(("hopper", config.name), 2.0)
        elif name == "fa2":
            cost += self._once(("fa2", *kind), 10.0)
        elif name == "flex":
            cost += FLEX_PER_SHAPE_S
        self.clock.now += cost
        if name.startswith("flash-attn") and not self.flash_attn:
            return planner_module.Prepared(ok=False, seconds=cost, reason="not importable: ModuleNotFoundError")
        return planner_module.Prepared(ok=True, seconds=cost, check={"ok": True, "rel_l2": 0.001})

    def row_estimate_s(self, implementations: int) -> float:
        return 1.0 + 1.5 * implementations * 0.5

    def time_row(self, config: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.clock.now += 1.0 + 0.5 * len(names)  # 200 ms warm-up and 300 ms of timed calls each
        self.timed.append((config.name, tuple(names)))
        return {n: {"tflops": 300.0 + i, "median_ms": 1.0, "iqr_ms": 0.01} for i, n in enumerate(names)}

    def clocks(self) -> dict[str, str] | None:
        return {"sm_mhz": "1980"}


def plan_of(*suites: str) -> list[tuple[str, Any]]:
    return [(s, c) for s in suites for c in attention_bench.suite_configs(s)]


def run_planner(tmp_path: Path, backend: WorstCaseBackend, clock: FakeClock, deadline_s: float,
                plan: list[tuple[str, Any]], missing: dict[str, str] | None = None) -> dict[str, Any]:
    report = device_report.load(tmp_path)
    report.update(device={"name": "NVIDIA H100 80GB HBM3"}, versions={"torch": "2.11.0"}, candidates=SEEDS,
                  baselines=BASELINES)
    clock.now += NVCC_S + 10.0  # the check stage before the planner: nvcc, the Triton seeds' static compile
    planner = planner_module.Planner(backend=backend, clock=clock, started=0.0, deadline_s=deadline_s,
                                     seeds=SEEDS, baselines=BASELINES, missing=missing or {}, report=report,
                                     save=lambda r: device_report.save(r, tmp_path), log=lambda line: None)
    planner.run(plan)
    return json.loads((tmp_path / "device_check.json").read_text())


def test_worst_case_costs_still_give_all_ten_h100_mha_rows_with_seed_cudnn_and_flash_numbers(tmp_path) -> None:
    clock = FakeClock()
    backend = WorstCaseBackend(clock)
    report = run_planner(tmp_path, backend, clock, BENCHMARK_DEADLINE_S, plan_of("h100-mha", "avo-gqa"))
    mha = [r for r in report["rows"] if r["suite"] == "h100-mha"]
    assert [r["config"] for r in mha] == [c.name for c in get_suite("h100-mha").configs]
    for row in mha:
        assert {*SEEDS, "sdpa-cudnn", "sdpa-flash"} <= set(row["numbers"]), row["config"]
        assert row["ratio_to_cudnn"]["fa2"] > 0
        assert set(row["numbers"]) | set(row["missing"]) == {*SEEDS, *BASELINES}
    assert clock.now <= BENCHMARK_DEADLINE_S
    assert device_report.validate(report) == []
    assert mha[0]["numbers"]["fa2"]["rel_l2"] == 0.001  # the check made while preparing
    gqa = [c.name for c in attention_bench.suite_configs("avo-gqa")]  # after h100-mha, while time allows
    assert {r["config"] for r in report["rows"][10:]} | {s["config"] for s in report["skipped"]} == set(gqa)
    # Flex (40 s a shape at worst) would not leave time for the rows: each row says so.
    assert all(r["missing"]["flex"].startswith("not prepared: it needs ~45 s") for r in mha)
    # Every preparation was written as it happened, each build paid before the first timed row.
    assert report["prepare"]["b16-h16-n1024-d128-full-bf16"]["cuda_fa2"]["seconds"] == CUDA_BUILD_S + 1
    first_timed = backend.timed[0][0]
    assert first_timed == mha[0]["config"] and len(report["prepare"]) >= 10


def test_with_time_to_spare_flex_is_prepared_for_the_rows_it_fits_before_the_deadline(tmp_path) -> None:
    clock = FakeClock()
    report = run_planner(tmp_path, WorstCaseBackend(clock), clock, 400.0, plan_of("h100-mha"))
    with_flex = [r for r in report["rows"] if "flex" in r["numbers"]]
    assert len(report["rows"]) == 10 and 0 < len(with_flex) < 10 and clock.now <= 400.0
    assert report["prepare"][with_flex[0]["config"]]["flex"]["seconds"] == FLEX_PER_SHAPE_S + 1
    later = [r for r in report["rows"] if "flex" not in r["numbers"]]
    assert all(r["missing"]["flex"].startswith("not prepared: it needs ~41 s") for r in later)


def test_a_preparation_slower_than_the_deadline_allows_still_times_the_rows_prepared(tmp_path) -> None:
    global CUDA_BUILD_S
    clock = FakeClock()
    backend = WorstCaseBackend(clock)
    original = CUDA_BUILD_S
    CUDA_BUILD_S = 200.0  # a build five times slower than the review's worst case
    try:
        report = run_planner(tmp_path, backend, clock, BENCHMARK_DEADLINE_S, plan_of("h100-mha"))
    finally:
        CUDA_BUILD_S = original
    assert len(report["rows"]) >= 1 and clock.now <= BENCHMARK_DEADLINE_S
    assert all("sdpa-cudnn" in r["numbers"] and "fa2" in r["numbers"] for r in report["rows"])
    skipped = {s["config"]: s["reason"] for s in report["skipped"]}
    assert len(report["rows"]) + len(skipped) == 10
    assert all(reason.startswith("not prepared: ") for reason in skipped.values())


def test_a_seed_that_failed_its_check_is_missing_with_its_reason_in_every_row(tmp_path) -> None:
    clock = FakeClock()
    report = run_planner(tmp_path, WorstCaseBackend(clock), clock, BENCHMARK_DEADLINE_S, plan_of("h100-mha"),
                         missing={"hopper_tma": "failed the check stage: compile error"})
    assert len(report["rows"]) == 10
    assert all(r["missing"]["hopper_tma"] == "failed the check stage: compile error" for r in report["rows"])
    assert "hopper_tma" not in report["prepare"]["b16-h16-n1024-d128-full-bf16"]


@pytest.mark.parametrize("deadline_s", [20.0, 40.0])
def test_no_time_for_even_one_row_leaves_reasons_not_an_empty_report(tmp_path, deadline_s: float) -> None:
    clock = FakeClock()
    report = run_planner(tmp_path, WorstCaseBackend(clock), clock, deadline_s, plan_of("h100-mha"))
    assert len(report["rows"]) + len(report["skipped"]) == 10
    assert all(s["reason"] for s in report["skipped"])


def test_the_next_suite_is_not_started_when_its_first_configuration_would_not_fit(tmp_path) -> None:
    clock = FakeClock()
    report = run_planner(tmp_path, WorstCaseBackend(clock), clock, 250.0, plan_of("h100-mha", "avo-gqa"))
    assert clock.now <= 250.0
    # The first pass left the last h100-mha rows out (the row estimate before any timing is cautious);
    # the time the timed rows left over prepared and timed them before the next suite.
    assert [r["config"] for r in report["rows"]] == [c.name for c in get_suite("h100-mha").configs]
    gqa = {c.name for c in attention_bench.suite_configs("avo-gqa")}
    skipped = {s["config"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) >= gqa and all(skipped[c].startswith("not prepared: ") for c in gqa)
