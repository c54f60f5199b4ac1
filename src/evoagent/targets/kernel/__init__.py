"""The kernel target: any PyTorch operator in the KernelBench problem format, evolved as a Triton or CUDA `ModelNew`.

The evaluator imports torch (seconds); it loads on first use (PEP 562 `__getattr__`), so building the
CLI parser never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .problem import Problem, parse_shape_overrides, reference_seed

if TYPE_CHECKING:
    from .evaluator import KernelEvaluator

_LAZY = {"KernelEvaluator": "evaluator"}

__all__ = ["KernelEvaluator", "Problem", "examples_dir", "knowledge_dir", "parse_shape_overrides", "reference_seed"]


def examples_dir() -> Path:
    """The example problems of the repository's `examples/kernels/` (present in a source checkout)."""
    return Path(__file__).resolve().parents[4] / "examples" / "kernels"


def knowledge_dir() -> Path:
    """The kernel target's knowledge documents (operator families; templates the offline policy applies)."""
    return Path(__file__).parent / "knowledge"


def __getattr__(name: str) -> Any:
    """Loads the torch-bound names (`_LAZY`) on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
