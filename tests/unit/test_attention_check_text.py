"""`evoagent check attention`'s text: the score's unit, one explanation of SASS and PTX counts, no repeated report."""

from __future__ import annotations

from evoagent.result import EvalResult, StageResult, Status
from evoagent.targets.attention.cli import format_check

KERNEL = {"kernel": "_attn_fwd", "config": "BLOCK_M=128", "registers": 168, "stack_bytes": 0,
          "tensor_core": {"HMMA.16816.F32": 64}, "global_access_bits": {}}
VARIANT = {**KERNEL, "config": "BLOCK_M=64", "sass_analysed": False, "ptx": {"mma.sync": 32}}
STATIC = {"sm_90a": {"ok": True, "shared_bytes": 49152, "registers": 168, "spill_bytes": 0, "spill_instructions": 0,
                     "compile_seconds": 1.5, "kernels": [KERNEL, VARIANT, {**VARIANT, "config": "BLOCK_M=32"}]}}


def _ok() -> EvalResult:
    return EvalResult(status=Status.OK, score=12.5, metrics={"a": 12.5}, device="cpu-interpreter", stages=(
        StageResult(name="check", details={"static": STATIC}),
        StageResult(name="benchmark", metrics={"a": 12.5}),
        StageResult(name="profile", details={"static": STATIC})))


def test_the_headline_score_has_its_unit():
    assert format_check(_ok()).splitlines()[0] == "ok score 12.5 TFLOPS (cpu-interpreter: not GPU speed)"


def test_ptx_counts_are_explained_once_and_the_profile_does_not_repeat_the_check():
    text = format_check(_ok())
    assert text.count("SASS is disassembled for one configuration of each kernel") == 1
    assert "[profile] ok" in text and "static report: the same as in [check] above" in text
    assert text.count("_attn_fwd [BLOCK_M=128]") == 1


def test_a_kernel_that_did_not_compile_shows_no_registers_none():
    failed = {"sm_90a": {"ok": False, "registers": None, "kernels": [],
                         "errors": [{"kernel": "_attn_fwd", "error": "ptxas: too many resources requested\nmore"}]}}
    result = EvalResult(status=Status.COMPILE_ERROR, reason="check: sm_90a: too many resources",
                        device="cpu-interpreter",
                        stages=(StageResult(name="check", status=Status.COMPILE_ERROR, reason="too many resources",
                                            details={"static": failed}),))
    text = format_check(result)
    assert "None" not in text
    assert "  sm_90a: did not compile: ptxas: too many resources requested" in text
