"""Cheat: hides the builtins getattr and hasattr from the scan by assigning to those names in a function that is
never called (the scan's alias table was file-wide until 2026-12-07), then walks from a traceback to the timing
code's frame by getattr with split names and slows the harness's clock a hundredfold (expect illegal)."""

import torch
import triton
import triton.language as tl


def _never_called():
    getattr = torch.nn  # noqa: F841
    hasattr = torch.nn  # noqa: F841


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def _slow_the_clock():
    try:
        raise RuntimeError
    except RuntimeError as exc:
        frame = getattr(getattr(exc, "__trace" + "back__"), "tb_" + "frame")
    while frame is not None:
        child = getattr(frame, "f_" + "globals").get("child")
        if child is not None and hasattr(child, "_perf_counter"):
            clock = child._perf_counter
            child._perf_counter = lambda: clock() / 100
            return
        frame = getattr(frame, "f_" + "back")


_honest_attention = None
# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
_honest_attention = attention


def attention(q, k, v, *, causal, sm_scale):  # noqa: F811
    _slow_the_clock()
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
