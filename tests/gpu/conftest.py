"""Fixtures of the GPU tests: the CUDA device is probed in a fixture, never at import."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cuda():
    """The torch module, once a CUDA device is known to be there."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch
