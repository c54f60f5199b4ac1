"""Cheat: finds torch.matmul by a string built at run time (expect illegal)."""

import torch


def attention(q, k, v, *, causal, sm_scale):
    mm = getattr(torch, "mat" + "mul")
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, 1)
    v = v.repeat_interleave(group, 1)
    scores = mm(q.float(), k.float().transpose(-1, -2)) * sm_scale
    return mm(torch.exp(scores - scores.amax(-1, keepdim=True)), v.float()).to(q.dtype)
