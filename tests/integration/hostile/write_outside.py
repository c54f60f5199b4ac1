"""Hostile: plants a file outside its working directory (next to the run) through a file-backed storage."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    planted = torch.UntypedStorage.from_file("__TARGET_DIR__/planted.bin", True, 16)
    planted.fill_(65)
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
