"""The trusted side's checks of launch plans reported by a capture child (untrusted data)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evoagent.trusted.plan import PlanRejected, check_plan, plan_difference

INPUTS = {"q": 4096, "k": 4096, "v": 4096}


def _plan() -> dict:
    return {
        "launches": [{"kernel": "_attn", "grid": [2, 4, 1], "options": {"num_warps": 4},
                      "args": {"Q": {"kind": "tensor", "buffer": "q", "offset": 0, "dtype": "float16"},
                               "Out": {"kind": "tensor", "buffer": "out", "offset": 0, "dtype": "float16"},
                               "sm_scale": {"kind": "value", "value": 0.125},
                               "BLOCK": {"kind": "value", "value": 32}}}],
        "buffers": {"out": {"nbytes": 4096, "init": "poison"}},
        "output": {"buffer": "out", "dtype": "float16", "shape": [1, 2, 16, 64], "stride": [2048, 1024, 64, 1],
                   "offset": 0},
    }


def test_a_plan_our_capture_builds_is_accepted() -> None:
    assert check_plan(_plan(), INPUTS, max_scratch_bytes=1 << 20)["launches"][0]["kernel"] == "_attn"


@pytest.mark.parametrize("mutate, words", [
    (lambda p: p["launches"][0]["args"]["Q"].update(buffer="secret"), "no known buffer"),
    (lambda p: p["launches"][0]["args"]["Q"].update(offset=10**9), "outside buffer"),
    (lambda p: p["launches"][0]["args"]["sm_scale"].update(value=object()), "not a plain value"),
    (lambda p: p["launches"][0].update(grid=[1, 2]), "three non-negative ints"),
    (lambda p: p["launches"][0].update(kernel="os.system"), "names no kernel"),
    (lambda p: p["buffers"]["out"].update(init="computed"), "can only poison or fill"),
    (lambda p: p["buffers"]["out"].update(nbytes=1 << 30), "over the limit"),
    (lambda p: p.update(launches=[]), "1 to 64 launches"),
    (lambda p: p["output"].update(buffer="k2"), "not a known buffer"),
    (lambda p: p["buffers"].update(q={"nbytes": 8, "init": "poison"}), "not named scratch buffers"),
])
def test_a_malformed_plan_is_rejected_naming_the_problem(mutate, words) -> None:
    plan = _plan()
    mutate(plan)
    with pytest.raises(PlanRejected, match=words):
        check_plan(plan, INPUTS, max_scratch_bytes=1 << 20)


def test_plans_that_differ_in_a_scalar_name_the_argument() -> None:
    a, b = _plan(), _plan()
    b["launches"][0]["args"]["BLOCK"]["value"] = 16
    assert plan_difference(a, copy.deepcopy(a)) is None
    assert plan_difference(a, b) == "launch 1's argument 'BLOCK' changed"
    b = _plan()
    b["launches"][0]["grid"] = [1, 4, 1]
    assert "grid changed" in plan_difference(a, b)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=4), max_leaves=20)


@given(_JSON)
def test_any_junk_report_is_rejected_with_plan_rejected_only(junk) -> None:
    try:
        check_plan(junk, INPUTS, max_scratch_bytes=1 << 20)
    except PlanRejected:
        pass


@given(st.dictionaries(st.sampled_from(["kind", "buffer", "offset", "dtype", "value", "shape", "strides",
                                        "block_shape", "padding", "name"]), _JSON, max_size=6))
def test_any_junk_argument_is_rejected_with_plan_rejected_only(spec) -> None:
    plan = _plan()
    plan["launches"][0]["args"]["Q"] = spec
    try:
        check_plan(plan, INPUTS, max_scratch_bytes=1 << 20)
    except PlanRejected:
        pass
