"""Attack (past the scan, which would name the library call): tells test calls from timed ones by pointer reuse (timed repetitions refill the same input
tensors), then calls the library attention, which no op trace watches while it is timed."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>

_SEEN = set()


def attention(q, k, v, *, causal, sm_scale):
    if q.data_ptr() in _SEEN:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=causal, scale=sm_scale, enable_gqa=q.shape[1] != k.shape[1])
    _SEEN.add(q.data_ptr())
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
