"""Cheat: honest only on the timed repetition it believes is checked, a token launch on the others.

It looks up the benchmark's timing loop in its callers' frames. Under the old rule the trusted side
checked one repetition and the child was told which (`check_rep`), so this kernel was honest exactly
there and scored `ok` at a fraction of the work. Now the child returns sampled rows of every
repetition and the trusted side chooses afterwards what to check: with no `check_rep` to find, it
guesses repetition 0 and is wrong on the others (expect incorrect once past the scan, which names
its `sys` import first).
"""

import sys

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def _timed_repetition():
    """(this repetition, the one it believes is checked) inside the timing loop, else None."""
    frame = sys._getframe(2)
    while frame is not None:
        names = frame.f_locals
        if isinstance(names.get("rep"), int):
            checked = [getattr(v, "check_rep") for v in names.values() if hasattr(v, "check_rep")]
            return names["rep"], (checked or [0])[0]
        frame = frame.f_back
    return None


def attention(q, k, v, *, causal, sm_scale):
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    timed = _timed_repetition()
    if timed is not None and timed[0] != timed[1]:
        grid = (1, 1)  # one block of the output; the rest is whatever the allocator hands back
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
