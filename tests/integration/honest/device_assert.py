"""Honest: asserts its inputs live on a CUDA device and allocates on q's device, as real wrappers do."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    assert q.is_cuda and k.is_cuda and v.is_cuda, "attention() runs on a CUDA device"
    assert q.device == k.device == v.device, "q, k and v must be on one device"
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty((batch, heads_q, n_ctx, head_dim), device=q.device, dtype=q.dtype)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    with torch.cuda.device(q.device):
        _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                    HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
