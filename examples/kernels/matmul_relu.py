"""A matrix multiplication with a ReLU epilogue, relu(A @ B) (KernelBench format)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    """torch.relu(torch.matmul(A, B)) for A (M, K) and B (K, N)."""

    def __init__(self):
        super(Model, self).__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.matmul(A, B))


M = 1024
K = 1024
N = 1024


def get_inputs():
    A = torch.randn(M, K)
    B = torch.randn(K, N)
    return [A, B]


def get_init_inputs():
    return []
