"""Trusted-side verdicts on what a candidate's process reports: contract, ops, inputs, numerics, timing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evoagent.result import Status
from evoagent.targets.attention.judge import (
    dense_peak_tflops,
    judge_benchmark,
    judge_case,
    judge_output,
    judge_timers,
    reduce_times,
    spot_rows,
)
from evoagent.targets.attention.reference import input_slice, reference_rows, round_to_dtype, sample_rows
from evoagent.targets.attention.suites import make_config

CONFIG = make_config(1, 4, 2, 21, 16, True, "float16")


def _case() -> dict:
    rows = sample_rows(CONFIG, np.random.default_rng(0))
    return {"config": CONFIG.to_dict(), "seed": 9, "sm_scale": 0.3, "rows": rows}


def _honest_result(case: dict) -> dict:
    rows = case["rows"]
    out = round_to_dtype(reference_rows(CONFIG, 9, 0.3, rows).astype(np.float32), "float16")
    inputs = {}
    for name, div in (("q", 1), ("k", 2), ("v", 2)):
        inputs[f"{name}_rows"] = np.stack([input_slice(CONFIG, 9, name, int(b), int(h) // div)[int(n)]
                                           for b, h, n in rows])
    return {"output_type": "Tensor", "shape": list(CONFIG.q_shape), "dtype": "float16", "device": "cpu",
            "aliases_input": False, "launches": 1, "ops": {"empty_like": 1}, "cross_device": [],
            "out_rows": out, **inputs}


def test_an_honest_report_passes() -> None:
    case = _case()
    assert judge_case(case, _honest_result(case)).ok


@pytest.mark.parametrize("change, status, words", [
    ({"error": "RuntimeError: boom"}, Status.CRASH, "raised RuntimeError"),
    ({"error": "OutOfMemoryError", "oom": True}, Status.OOM, "raised"),
    ({"output_type": "tuple"}, Status.INCORRECT, "expected a torch.Tensor"),
    ({"shape": [1, 4, 21, 15]}, Status.INCORRECT, "output shape"),
    ({"dtype": "float32"}, Status.INCORRECT, "output dtype"),
    ({"aliases_input": True}, Status.ILLEGAL, "shares memory"),
    ({"launches": 0}, Status.ILLEGAL, "launched no Triton kernel"),
    ({"ops": {"empty_like": 1, "mm": 2}}, Status.ILLEGAL, "aten.mm"),
    ({"cross_device": ["_to_copy between ['cpu', 'cuda:0']"]}, Status.ILLEGAL, "between devices"),
])
def test_each_failure_gets_its_label_and_reason(change: dict, status: Status, words: str) -> None:
    case = _case()
    verdict = judge_case(case, {**_honest_result(case), **change})
    assert verdict.status is status and words in verdict.reason


def test_a_modified_input_is_illegal_and_located() -> None:
    case = _case()
    result = _honest_result(case)
    result["k_rows"] = result["k_rows"].copy()
    result["k_rows"][5, 0] += 1.0
    verdict = judge_case(case, result)
    assert verdict.status is Status.ILLEGAL and "modified its input k" in verdict.reason


def test_a_wrong_row_in_the_ragged_tail_is_incorrect_and_says_so() -> None:
    case = _case()
    result = _honest_result(case)
    tail = int(np.flatnonzero(case["rows"][:, 2] == 20)[0])
    result["out_rows"] = result["out_rows"].copy()
    result["out_rows"][tail] = np.nan
    verdict = judge_case(case, result)
    assert verdict.status is Status.INCORRECT and "NaN" in verdict.reason


def test_a_report_missing_fields_is_illegal_not_a_harness_error() -> None:
    case = _case()
    verdict = judge_case(case, {"output_type": "Tensor"})
    assert verdict.status is Status.ILLEGAL and "malformed" in verdict.reason


def test_replaced_timers_are_illegal() -> None:
    assert judge_timers([]).ok
    assert judge_timers(["time.perf_counter"]).status is Status.ILLEGAL


def test_peak_table_knows_hopper_and_blackwell() -> None:
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert dense_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert dense_peak_tflops("NVIDIA B200") == 2250.0
    assert dense_peak_tflops("cpu-interpreter") is None


BIG = make_config(1, 16, 16, 16384, 128, False, "bfloat16")  # 2.2 TFLOP


def _bench(candidate_ms: float, region_s: float = 1.0) -> dict:
    return {"times_ms": {"candidate": [candidate_ms] * 10, "sdpa-cudnn": [4.0] * 10}, "region_s": region_s}


def test_a_plausible_time_passes_and_gives_tflops() -> None:
    verdict, timings = judge_benchmark(BIG, _bench(5.0), wall_s=10.0, device="NVIDIA H100 80GB HBM3")
    assert verdict.ok
    assert timings["candidate"].tflops == pytest.approx(BIG.flops() / 5e-3 / 1e12)


def test_faster_than_the_dense_peak_is_illegal() -> None:
    verdict, _ = judge_benchmark(BIG, _bench(1.0), wall_s=10.0, device="NVIDIA H100 80GB HBM3")
    assert verdict.status is Status.ILLEGAL and "dense peak" in verdict.reason


def test_times_that_do_not_fit_the_trusted_clock_are_illegal() -> None:
    too_long_region, _ = judge_benchmark(BIG, _bench(5.0, region_s=30.0), wall_s=10.0, device="NVIDIA H100")
    assert too_long_region.status is Status.ILLEGAL and "own clock" in too_long_region.reason
    more_than_region, _ = judge_benchmark(BIG, _bench(500.0, region_s=1.0), wall_s=10.0, device="NVIDIA H100")
    assert more_than_region.status is Status.ILLEGAL


def test_interpreter_times_use_the_fastest_repetition() -> None:
    timing = reduce_times([30.0, 10.0, 50.0], 1e9, use_min=True)
    assert timing.score_ms == 10.0 and timing.median_ms == 30.0
    assert reduce_times([30.0, 10.0, 50.0], 1e9).score_ms == 30.0


# -- the timed calls: every repetition's sampled rows, checked where the trusted side chooses afterwards --

REP_SEEDS = [101, 102, 103, 104, 105]


def _timed(wrong: set[int] = frozenset()) -> tuple[dict, list[np.ndarray]]:
    """A benchmark case and the rows every repetition returned: right ones, except repetitions `wrong`
    (there, the output of repetition 0's inputs: what a memoising or skipping kernel returns)."""
    rows = sample_rows(CONFIG, np.random.default_rng(1), max_rows=64, max_heads=2)
    case = {"config": CONFIG.to_dict(), "seed": 9, "sm_scale": 0.3, "rows": rows, "rep_seeds": REP_SEEDS,
            "refresh_seed": 7}
    right = [round_to_dtype(reference_rows(CONFIG, s, 0.3, rows).astype(np.float32), "float16") for s in REP_SEEDS]
    return case, [right[0] if r in wrong else right[r] for r in range(len(REP_SEEDS))]


def test_every_timed_repetition_of_an_honest_kernel_passes() -> None:
    case, rep_rows = _timed()
    for seed in range(5):
        assert judge_output(case, rep_rows, np.random.default_rng(seed)).ok


@settings(max_examples=25, deadline=None)
@given(st.integers(1, len(REP_SEEDS) - 1), st.integers(0, 2**32 - 1))
def test_a_single_wrong_repetition_is_caught_whichever_the_secret_draw(wrong: int, secret: int) -> None:
    case, rep_rows = _timed({wrong})
    verdict = judge_output(case, rep_rows, np.random.default_rng(secret))
    assert verdict.status is Status.INCORRECT
    assert f"timed call {wrong + 1} of 5" in verdict.reason and "differed from the test" in verdict.reason


def test_a_kernel_honest_only_on_the_repetition_the_old_rule_checked_is_now_incorrect() -> None:
    """The old rule checked one repetition the child was told about; a kernel honest only there passed it."""
    case, rep_rows = _timed(wrong={1, 2, 3, 4})  # honest only on repetition 0
    old_rule = judge_output({**case, "rep_seeds": REP_SEEDS[:1]}, rep_rows[:1], np.random.default_rng(0))
    assert old_rule.ok
    assert judge_output(case, rep_rows, np.random.default_rng(0)).status is Status.INCORRECT


@pytest.mark.parametrize("rep_rows, status, words", [
    (None, Status.ILLEGAL, "lacks rows for each of the 5 timed calls"),
    ("short", Status.ILLEGAL, "lacks rows"),
    ("no tensor", Status.INCORRECT, "did not return a tensor"),
    ("bad shape", Status.ILLEGAL, "rows have shape"),
])
def test_a_missing_or_malformed_repetition_is_named(rep_rows: object, status: Status, words: str) -> None:
    case, right = _timed()
    given_rows = {"short": right[:4], "no tensor": [*right[:2], None, *right[3:]],
                  "bad shape": [*right[:4], right[4][:3]]}.get(rep_rows, rep_rows) if rep_rows else None
    verdict = judge_output(case, given_rows, np.random.default_rng(0))
    assert verdict.status is status and words in verdict.reason, verdict.reason


def test_spot_rows_come_from_one_slice_and_stay_inside_the_sample() -> None:
    rows = sample_rows(make_config(2, 8, 8, 4000, 16, False, "float16"), np.random.default_rng(3), max_rows=256,
                       max_heads=2)
    for seed in range(20):
        picked = spot_rows(rows, np.random.default_rng(seed))
        assert 1 <= picked.size <= 16 and len({tuple(p) for p in rows[picked, :2]}) == 1
