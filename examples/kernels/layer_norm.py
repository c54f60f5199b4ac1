"""Layer normalisation over the last dimension of a (batch_size, seq_len, features) input (KernelBench format)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """F.layer_norm with a learned weight and bias of `features` elements."""

    def __init__(self, features: int, eps: float = 1e-5):
        super(Model, self).__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


batch_size = 16
seq_len = 64
features = 4096


def get_inputs():
    x = torch.randn(batch_size, seq_len, features)
    return [x]


def get_init_inputs():
    return [features]
