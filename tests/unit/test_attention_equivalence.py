"""The attention target's equivalence key: identical cubins and host code, conservative about the wrapper."""

from __future__ import annotations

from evoagent.targets.attention.equivalence import equivalence_key, host_fingerprint

SOURCE = '''"""A kernel."""
import triton
import triton.language as tl

BLOCK = 64
SCALE_HINT = 2


@triton.jit
def _kernel(x, BLOCK: tl.constexpr):
    tl.store(x, tl.load(x) * SCALE_HINT)


def attention(q, k, v, *, causal, sm_scale):
    _kernel[(1,)](q, BLOCK=BLOCK)
    return q
'''
STATIC = {"sm_90a": {"ok": True, "kernels": [{"kernel": "_kernel", "config": "c", "autotune": None,
                                              "code": "3f2a9c0011223344", "num_warps": 4}]}}


def test_an_unused_module_constant_or_a_comment_leaves_the_host_code_the_same() -> None:
    base = host_fingerprint(SOURCE)
    assert host_fingerprint(SOURCE.replace("BLOCK = 64\n", "BLOCK = 64\nUNUSED_TILE = 128  # new\n")) == base
    assert host_fingerprint(SOURCE.replace('"""A kernel."""', '"""Another docstring."""')) == base


def test_kernel_bodies_and_constants_only_kernels_read_are_left_to_the_cubins() -> None:
    base = host_fingerprint(SOURCE)
    assert host_fingerprint(SOURCE.replace("SCALE_HINT = 2", "SCALE_HINT = 3")) == base
    assert host_fingerprint(SOURCE.replace("tl.load(x) * SCALE_HINT", "tl.load(x) * 2")) == base


def test_what_the_wrapper_reads_or_does_changes_the_host_code() -> None:
    base = host_fingerprint(SOURCE)
    assert host_fingerprint(SOURCE.replace("BLOCK = 64", "BLOCK = 128")) != base
    assert host_fingerprint(SOURCE.replace("_kernel[(1,)]", "_kernel[(2,)]")) != base
    assert host_fingerprint(SOURCE.replace("@triton.jit", "@triton.jit(debug=True)")) != base


def test_the_key_needs_every_kernels_code_and_changes_with_any_kernel_or_launch() -> None:
    key = equivalence_key(SOURCE, STATIC)
    assert key is not None and key == equivalence_key(SOURCE + "\nUNUSED = 1\n", STATIC)
    other = {"sm_90a": {"ok": True, "kernels": [{**STATIC["sm_90a"]["kernels"][0], "code": "ffff"}]}}
    assert equivalence_key(SOURCE, other) != key
    warps = {"sm_90a": {"ok": True, "kernels": [{**STATIC["sm_90a"]["kernels"][0], "num_warps": 8}]}}
    assert equivalence_key(SOURCE, warps) != key
    no_sass = {"sm_90a": {"ok": True, "kernels": [{"kernel": "_kernel", "config": "c", "autotune": None}]}}
    assert equivalence_key(SOURCE, no_sass) is None and equivalence_key(SOURCE, {}) is None
