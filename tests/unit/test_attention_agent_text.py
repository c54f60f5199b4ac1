"""What an agent reads of attention results: the benchmark table with baselines, the static report once."""

from __future__ import annotations

from evoagent.result import EvalResult, StageResult, Status
from evoagent.targets.attention import get_suite
from evoagent.targets.attention.agent_text import brief, sections

ROW = {"config": "b8-h16-n2048-d128-full-bf16", "tflops": {"candidate": 402.1, "sdpa-cudnn": 390.0, "sdpa-flash": 350.5},
       "median_ms": {"candidate": 0.684, "sdpa-cudnn": 0.705}, "iqr_ms": {}, "ratio_to_cudnn": 1.031,
       "baseline_errors": {"flash-attn": "not installed"}}
STATIC = {"ok": True, "registers": 168, "spill_bytes": 0, "spill_instructions": 0, "shared_bytes": 114688,
          "compile_seconds": 3.1, "cached": False, "errors": [], "skipped": [], "wrapper_errors": [],
          "kernels": [{"kernel": "_attn_fwd", "config": "b8-h16-n2048-d128-full-bf16", "num_warps": 8, "num_stages": 2,
                       "registers": 168, "shared_bytes": 114688, "stack_bytes": 0, "spill_instructions": 0,
                       "tensor_core": {"HGMMA": 64}, "tma": {"UTMALDG": 4}, "global_access_bits": {}}]}


def _result(compile_seconds: float) -> EvalResult:
    static = {"sm_90a": {**STATIC, "compile_seconds": compile_seconds}}
    return EvalResult(status=Status.OK, score=402.1, metrics={ROW["config"]: 402.1}, stages=(
        StageResult(name="check", details={"legality": [], "static": static}),
        StageResult(name="benchmark", metrics={ROW["config"]: 402.1},
                    details={"device": "NVIDIA H200", "peak_tflops": 989.0, "table": [ROW]}),
    ))


def test_the_benchmark_table_has_each_baseline_and_the_ratio_to_cudnn() -> None:
    text = dict(sections(_result(3.1)))["benchmark"]
    header, row = text.splitlines()[:2]
    assert header.split("  ")[0] == "configuration" and "sdpa-cudnn TFLOPS" in header and "x cuDNN" in header
    assert row.split() == ["b8-h16-n2048-d128-full-bf16", "402.1", "390", "350.5", "1.031", "0.684", "-"]
    assert "dense peak of NVIDIA H200: 989 TFLOPS" in text
    assert "baseline error, b8-h16-n2048-d128-full-bf16: flash-attn: not installed" in text


def test_the_static_report_reads_the_same_when_only_timings_differ() -> None:
    first, second = dict(sections(_result(3.1))), dict(sections(_result(0.02)))
    report = first["static report sm_90a"]
    assert report.startswith("registers 168, spills 0 bytes (0 spill instructions), shared memory 114688 bytes")
    assert "HGMMAx64" in report and "UTMALDGx4" in report
    assert report == second["static report sm_90a"]  # so the agent is not shown it twice


def test_the_brief_names_device_arch_shapes_and_tolerances() -> None:
    text = brief(get_suite("h100-mha"), device="NVIDIA H200", archs=("sm_90a",), on_gpu=True, extra_shapes=4,
                 max_test_seqlen=1100, test_dtypes=("bfloat16",))
    assert text.startswith("device: NVIDIA H200; timing: CUDA events")
    assert "sm_90a" in text and "b1-h16-n16384-d128-causal-bf16" in text
    assert "bf16 atol 0.06, rtol 0.05, rel_l2 0.01" in text and "fp16" not in text.split("tolerance")[1]


def test_the_agent_is_told_a_candidate_may_be_cuda_and_what_its_check_reports() -> None:
    suite = get_suite("smoke")
    text = brief(suite, device="cpu-interpreter", archs=("sm_90a",), on_gpu=False, extra_shapes=2,
                 max_test_seqlen=80, test_dtypes=("float16",))
    assert "CUDA C++" in text and "CUDA_SOURCE" in text and "`needs_device`, never `ok`" in text
    on_gpu = brief(suite, device="NVIDIA H200", archs=("sm_90a",), on_gpu=True, extra_shapes=2,
                   max_test_seqlen=80, test_dtypes=("float16",))
    assert "tested and timed like a Triton one" in on_gpu


def test_a_cuda_static_report_says_nvcc_compiled_it() -> None:
    result = EvalResult(status=Status.NEEDS_DEVICE, stages=(
        StageResult(name="check", details={"language": "cuda", "legality": [],
                                           "static": {"sm_90a": {**STATIC, "language": "cuda"}}}),))
    found = dict(sections(result))
    assert found["static report sm_90a"].startswith("CUDA_SOURCE compiled by nvcc; registers 168")
    assert "language: cuda" in found["check"]
