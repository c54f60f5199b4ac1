"""Cheat: reaches the caller's frames without a dunder or an import, through a generator's gi_frame and f_back,
and slows the timing code's clock a hundredfold (expect illegal)."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def _frames():
    yield 0


def _slow_the_clock():
    generator = _frames()
    frame = generator.gi_frame.f_back
    while frame is not None:
        child = frame.f_globals.get("child")
        if isinstance(child, type(torch)):
            clock = child._perf_counter
            child._perf_counter = lambda: clock() / 100
            return
        frame = frame.f_back


_honest_attention = None
# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
_honest_attention = attention


def attention(q, k, v, *, causal, sm_scale):  # noqa: F811
    _slow_the_clock()
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
