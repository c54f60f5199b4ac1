"""Cheat: returns torch's SDPA through an alias instead of computing (expect illegal)."""

import torch

F = torch.nn.functional
fast_path = F.scaled_dot_product_attention


def attention(q, k, v, *, causal, sm_scale):
    group = q.shape[1] // k.shape[1]
    return fast_path(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=causal, scale=sm_scale)
