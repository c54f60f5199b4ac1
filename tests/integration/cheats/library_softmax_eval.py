"""Cheat: reaches torch.softmax through eval (expect illegal)."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    softmax = eval("torch." + "softmax")
    out = torch.empty_like(q)
    _attn[(1, 1)](q, k, v, out, sm_scale, q.shape[1], 1, q.shape[2],
                  HEAD_DIM=q.shape[3], BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    scores = softmax(q.float().sum(-1, keepdim=True), dim=-1)
    return out * 0 + scores.to(q.dtype)
