"""Cheat: computes attention with elementwise torch ops in the wrapper (no banned name;
the runtime op trace catches it: expect illegal)."""

import torch
import triton
import triton.language as tl


@triton.jit
def _touch(X):
    tl.store(X, tl.load(X))


def attention(q, k, v, *, causal, sm_scale):
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, 1)
    v = v.float().repeat_interleave(group, 1)
    scores = (q.float().unsqueeze(3) * k.unsqueeze(2)).sum(-1) * sm_scale
    if causal:
        n = q.shape[2]
        hide = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(hide, float("-inf"))
    weights = (scores - scores.amax(-1, keepdim=True)).exp()
    weights = weights / weights.sum(-1, keepdim=True)
    out = (weights.unsqueeze(-1) * v.unsqueeze(2)).sum(-2).to(q.dtype)
    _touch[(1,)](out)  # a token launch so that "a Triton kernel ran"
    return out
