"""The attention target: seed kernels, suites, the fp64 reference and `AttentionEvaluator`.

The evaluator and the reference import torch (seconds); they load on first use (PEP 562 `__getattr__`), so
`evoagent status` / `--help`, which build the whole CLI parser, never import torch.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from .cuda_source import Language, detect_language
from .suites import SUITES, AttentionConfig, Suite, get_suite

if TYPE_CHECKING:
    from .evaluator import AttentionEvaluator, default_suite
    from .reference import TOLERANCES, reference_attention

# The names that import torch, by the submodule that defines them.
_LAZY = {"AttentionEvaluator": "evaluator", "default_suite": "evaluator",
         "TOLERANCES": "reference", "reference_attention": "reference"}

__all__ = [
    "LANGUAGE_SEEDS",
    "SEEDS",
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
    "seed_language",
    "seed_names",
    "seed_path",
]

# The shipped seed kernels by name (files in kernels_dir()); `evoagent run attention --seed NAME`,
# `seeds = ["attention:NAME"]` in a run config, or seed_path(NAME) in Python.
SEEDS = {
    "fa2": "fa2.py",  # plain FlashAttention-2-style Triton (pointer loads); the default
    "hopper-tma": "hopper_tma.py",  # TMA descriptors shaped in autotune pre_hooks, warp-specialized loop
    "cuda-fa2": "cuda_fa2.py",  # CUDA C++ with inline PTX: mma.sync m16n8k16, ldmatrix, cp.async stages
}
DEFAULT_SEED = "fa2"
# The seed `evoagent run attention --lang L` starts from.
LANGUAGE_SEEDS = {Language.TRITON.value: DEFAULT_SEED, Language.CUDA.value: "cuda-fa2"}


def kernels_dir() -> Path:
    """The directory of the shipped seed kernels (and their README)."""
    return Path(__file__).parent / "kernels"


def seed_names() -> list[str]:
    """The names of the shipped seed kernels, default first."""
    return [DEFAULT_SEED, *sorted(n for n in SEEDS if n != DEFAULT_SEED)]


def seed_path(name: str) -> Path:
    """The file of the shipped seed kernel `name` (see SEEDS); a ConfigError names the known ones."""
    if name not in SEEDS:
        close = difflib.get_close_matches(name, SEEDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown attention seed {name!r}; the shipped seeds are {seed_names()}{hint}")
    return kernels_dir() / SEEDS[name]


def default_seed() -> Path:
    """The seed kernel `evoagent run attention` starts from: a plain FlashAttention-2-style Triton kernel."""
    return seed_path(DEFAULT_SEED)


def seed_language(name: str) -> str:
    """'triton' or 'cuda': the kernel language of the shipped seed `name` (read from its source, not run)."""
    return detect_language(seed_path(name).read_text()).value


def __getattr__(name: str) -> Any:
    """Loads the torch-bound names (`_LAZY`) on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
