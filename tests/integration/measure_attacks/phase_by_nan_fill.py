"""Attack (past the scan, which would name the library call): the test stage fills tensors the wrapper allocates uninitialised with NaN; the timed calls do
not. An empty tensor that is not NaN means "being timed": then skip the kernel and use torch math."""

import numpy as np
import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    probe = torch.empty(64, dtype=torch.float32, device=q.device)
    if not np.isnan(probe.numpy()).all():  # numpy: no torch operation for an op trace to see
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=causal, scale=sm_scale, enable_gqa=q.shape[1] != k.shape[1])
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
