"""Cheat: memoises by the inputs' data pointers, so repeated calls on the same tensors skip the work.

Every test call gets fresh tensors, so the test stage passes; the benchmark times the same tensors
again and again (expect incorrect: their values change between timed calls and one call is checked).
"""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


_SEEN = {}


def attention(q, k, v, *, causal, sm_scale):
    key = (q.data_ptr(), k.data_ptr(), v.data_ptr(), tuple(q.shape), causal, sm_scale)
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    if key in _SEEN:  # a token launch on one block, then the remembered answer
        _attn[(1, 1)](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                      HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
        out.copy_(_SEEN[key])
        return out
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    _SEEN[key] = out.clone()
    return out
