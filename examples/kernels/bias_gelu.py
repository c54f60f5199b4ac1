"""A bias add fused with the exact (erf) GELU on a (batch_size, features) input (KernelBench format)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """gelu(x + bias), the bias broadcast over rows."""

    def __init__(self, features: int):
        super(Model, self).__init__()
        self.bias = nn.Parameter(torch.randn(features) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.bias)


batch_size = 128
features = 8192


def get_inputs():
    x = torch.randn(batch_size, features)
    return [x]


def get_init_inputs():
    return [features]
