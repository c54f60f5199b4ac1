"""The trusted GPU replay's checks of compiled kernels a capture reports (no GPU needed: AOT compile)."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from evoagent.trusted.gpu_launch import check_binary  # noqa: E402
from evoagent.trusted.plan import PlanRejected  # noqa: E402
from evoagent.untrusted.plans import binary_record  # noqa: E402


@triton.jit
def _scale(X, Out, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.load(X + offs, mask=offs < n) * factor, mask=offs < n)


@pytest.fixture(scope="module")
def binary() -> dict:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(_scale, {"X": "*fp16", "Out": "*fp16", "n": "i32", "factor": "fp32", "BLOCK": "constexpr"},
                       constexprs={(4,): 128})
    return binary_record(triton.compile(source, target=GPUTarget("cuda", 90, 32)))


def test_a_real_compiled_kernel_passes_the_check(binary: dict) -> None:
    checked = check_binary("k", binary)
    assert checked["signature"] == {"X": "*fp16", "Out": "*fp16", "n": "i32", "factor": "fp32", "BLOCK": "constexpr"}
    assert checked["metadata"]["name"].startswith("_scale") and checked["cubin"][:4] == b"\x7fELF"


@pytest.mark.parametrize("field, value, words", [
    ("signature", {"X": '*fp16", 0); system("id"); ("'}, "outside Triton's grammar"),
    ("signature", {"X": "struct evil"}, "outside Triton's grammar"),
    ("metadata", {"name": "bad name; rm", "target": {"backend": "cuda"}}, "names no kernel"),
    ("metadata", {"name": "k", "target": {"backend": "hip"}}, "not for a CUDA target"),
    ("cubin", b"", "carries no cubin"),
])
def test_a_tampered_binary_is_rejected(binary: dict, field, value, words) -> None:
    with pytest.raises(PlanRejected, match=words):
        check_binary("k", {**binary, field: value})


def test_the_launcher_source_is_generated_from_the_checked_signature(binary: dict) -> None:
    driver = pytest.importorskip("triton.backends.nvidia.driver")
    if not hasattr(driver, "make_launcher"):
        pytest.skip("this Triton builds its launcher another way (the GPU machine's 3.6 has make_launcher)")
    signature = check_binary("k", binary)["signature"]
    source = driver.make_launcher({}, signature, None)
    assert "cuLaunchKernelEx" in source
