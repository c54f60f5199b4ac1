"""Cheat: reaches pathlib.Path as an attribute of a Triton module (triton.runtime.build imports it), not a module,
so the scan's module-reach rule missed it until 2026-12-07, and reads the evaluator's command line from /proc
(expect illegal: triton.runtime.build, which also compiles and loads C code, is banned as a whole)."""

import torch
import triton
import triton.language as tl
import triton.runtime.build


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


_honest_attention = None
# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
_honest_attention = attention


def attention(q, k, v, *, causal, sm_scale):  # noqa: F811
    parent = triton.runtime.build.Path("/proc/self/cmdline")
    if parent.exists():
        parent.read_bytes()
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
