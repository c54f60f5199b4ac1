"""Cheat: searches the garbage collector for a reference output to copy (expect illegal)."""

import gc

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.shape == q.shape and obj is not q:
            return obj.clone()
    out = torch.empty_like(q)
    _attn[(1, 1)](q, k, v, out, sm_scale, q.shape[1], 1, q.shape[2],
                  HEAD_DIM=q.shape[3], BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
