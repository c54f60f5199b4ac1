"""The attention target: seed kernels, suites, the fp64 reference and `AttentionEvaluator`."""

from __future__ import annotations

from pathlib import Path

from .evaluator import AttentionEvaluator, default_suite
from .reference import TOLERANCES, reference_attention
from .suites import SUITES, AttentionConfig, Suite, get_suite

__all__ = [
    "SUITES",
    "TOLERANCES",
    "AttentionConfig",
    "AttentionEvaluator",
    "Suite",
    "default_seed",
    "default_suite",
    "get_suite",
    "kernels_dir",
    "reference_attention",
]


def kernels_dir() -> Path:
    """The directory of the shipped seed kernels (and their README)."""
    return Path(__file__).parent / "kernels"


def default_seed() -> Path:
    """The seed kernel `evoagent run attention` starts from: a plain FlashAttention-2-style Triton kernel."""
    return kernels_dir() / "fa2.py"
