"""What an agent reads of a kernel problem: the task and its rules, the brief (reference source, shapes), results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...result import EvalResult
from ..attention import agent_text as attention_text
from ..attention.reference import TOLERANCES
from .problem import CPU_INPUT_ELEMENTS, MIN_SCALED_SIZE, Problem

DESCRIPTION = """\
Make a PyTorch operator fast with your own kernels. The problem file defines `class Model(nn.Module)` (the
reference), `get_inputs()` and `get_init_inputs()`. Write one file `kernel.py` that defines

    class ModelNew(nn.Module):
        def __init__(self, *init_inputs): ...   # the same constructor arguments as Model
        def forward(self, *inputs): ...         # the same inputs and outputs as Model.forward

whose forward computes what Model.forward computes with Triton kernels (or CUDA, see the rules). ModelNew
keeps Model's parameters and buffers under the same state_dict names and shapes (the harness loads the
reference's values into it). The score is the speedup over the reference in eager PyTorch (torch.compile's
speedup is reported beside it); a version that fails any check scores nothing.
"""

RULES = """\
- The work is done by @triton.jit kernels defined in kernel.py and launched as kernel[grid](...); forward
  may only allocate, take views and launch. Calling the reference's torch operations (or any other torch
  compute: matmul, softmax, sum, relu, nn.functional...) in forward is illegal: the harness records every
  torch operation forward runs outside your kernels.
- Imports: torch, triton (and triton.language), math, typing, functools, itertools, dataclasses, enum,
  collections, numbers. No eval/exec/getattr/__import__, no os, sys, files, threads, timers or streams,
  and never patch torch, triton or any other module.
- Never modify an input, never return an input or a view of one, write every output element, and keep no
  state between calls that changes results (each call gets fresh inputs).
- Numerics: compared with the reference computed in float64 on fresh inputs (several seeds; the
  problem's own inputs, inputs centred on zero and scaled, and redrawn normal inputs; odd sizes where the
  problem allows them; parameters moved off their initial values):
  |out - ref| <= atol*rms(ref) + rtol*|ref| per element and a relative L2 bound per output dtype.
- CUDA instead of Triton follows the attention target's contract (docs/cuda.md): one CUDA_SOURCE literal
  built with `from evoagent.targets.attention.cuda_build import load_extension`.
"""


def brief(problem: Problem, plan: Mapping[str, Any], *, device: str, archs: Sequence[str], on_gpu: bool) -> str:
    """The reference's source, the shapes the versions are tested and timed at, and how they are judged."""
    shapes = ", ".join(f"{k}={v}" for k, v in plan["constants"].items()) or "as in the file"
    inputs = "; ".join(f"{s['dtype']} {tuple(s['shape'])}" if "shape" in s else f"{s['value']!r}"
                       for s in plan["inputs"])
    tolerances = "; ".join(f"{d}: atol {t.atol:g}, rtol {t.rtol:g}, rel L2 {t.rel_l2:g}" for d, t in TOLERANCES.items())
    scaled = "" if on_gpu else (
        f"Without a GPU the size constants above {MIN_SCALED_SIZE} are halved, largest first, until the inputs "
        f"hold at most {CPU_INPUT_ELEMENTS} elements (halved: {', '.join(plan.get('halved') or []) or 'none'}); "
        "Triton runs in its CPU interpreter and times say little about GPU speed.\n")
    return (f"problem: {problem.name} ({problem.path.name})\n"
            f"device: {device}; static compile for {', '.join(archs)}\n"
            f"shape constants: {shapes}\n"
            f"get_inputs(): {inputs}\n"
            f"get_init_inputs(): {plan['init_inputs']!r}\n"
            f"{scaled}"
            f"tolerances: {tolerances}\n"
            f"--- the reference ({problem.path.name}) ---\n{problem.source.rstrip()}\n")


def sections(result: EvalResult) -> list[tuple[str, str]]:
    """The result as titled sections (the attention target's layout: benchmark, static report, stages)."""
    return attention_text.sections(result)
