"""Dishonest: launches a do-nothing Triton kernel, then computes with the reference's own torch op (illegal)."""

import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _touch(x_ptr):
    tl.load(x_ptr)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        _touch[(1,)](x)
        e = x.exp()  # evades the static scan's softmax names; the op trace records aten.exp, sum, div
        return e / e.sum(dim=1, keepdim=True)
