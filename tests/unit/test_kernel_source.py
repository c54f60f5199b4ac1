"""What a @triton.jit body may contain before an interpreter replay defines it (trusted/kernel_source.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoagent.trusted.kernel_source import body_problems

SEEDS = Path(__file__).resolve().parents[2] / "kernels" / "attention"

KERNEL = '''
import triton
import triton.language as tl

@triton.jit
def _k(X, N, MODE: tl.constexpr):
    if MODE:
        {line}
    tl.store(X + tl.arange(0, 16), tl.zeros([16], dtype=tl.float32))

def wrapper(x):
    import os  # host code may do what it likes here; only kernel bodies are read
    _k[(1,)](x, 16, MODE=0)
'''


@pytest.mark.parametrize("line, words", [
    ("import os", "Import"),
    ("__import__('os')", "'__import__'"),
    ("x = getattr(tl, 'load')", "'getattr'"),
    ("f = tl.load.__globals__", "'__globals__'"),
    ("g = (i for i in range(2)).gi_frame.f_back", "'f_back'"),  # the outer attribute is met first
    ("e = eval('1')", "'eval'"),
    ("x = tl.load.__class__", "'__class__'"),
    ("y = (lambda: 0)()", "Lambda"),
])
def test_python_outside_triton_language_in_a_kernel_body_is_named(line, words) -> None:
    problems = body_problems(KERNEL.replace("{line}", line))
    assert problems, line
    assert words in str(problems[0]) and problems[0].kernel == "_k" and problems[0].line == 8


def test_a_plain_kernel_and_host_code_outside_kernels_pass() -> None:
    assert body_problems(KERNEL.replace("{line}", "pass")) == []


@pytest.mark.parametrize("seed", ["fa2.py", "hopper_tma.py"])
def test_the_seed_kernels_are_triton_language(seed) -> None:
    assert body_problems((SEEDS / seed).read_text()) == []
