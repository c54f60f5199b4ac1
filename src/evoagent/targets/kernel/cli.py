"""`evoagent check kernel PROBLEM.py CANDIDATE.py` (registered by evoagent.cli; imports no torch until it runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ...candidate import Candidate
from ...result import EvalResult
from ..attention.cli import check_json, format_check
from ..attention.static import SUPPORTED_ARCHS


def add_check_target(targets: Any) -> argparse.ArgumentParser:
    """Registers `kernel PROBLEM CANDIDATE [--shape N=V] [--arch A] [--no-compile] [--json]` under `check`."""
    p: argparse.ArgumentParser = targets.add_parser(
        "kernel", help="a ModelNew file against a KernelBench-format problem file")
    p.add_argument("problem", help="the problem file (class Model, get_inputs(), get_init_inputs())")
    p.add_argument("file", help="the candidate file (defines class ModelNew)")
    add_shape_arguments(p)
    p.add_argument("--arch", action="append", choices=SUPPORTED_ARCHS,
                   help="architecture to compile for without a GPU (repeatable; default sm_90a)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_check)
    return p


def add_shape_arguments(p: argparse.ArgumentParser) -> None:
    """--shape NAME=VALUE (repeatable) and --no-compile, shared by check, run and suite."""
    p.add_argument("--shape", action="append", metavar="NAME=VALUE",
                   help="set a size constant of the problem (repeatable); others follow the shape rule")
    p.add_argument("--no-compile", action="store_true",
                   help="do not time the reference under torch.compile (slow to compile without a GPU)")


def run_check(args: argparse.Namespace) -> int:
    from ...sandbox import Sandbox
    from .evaluator import KernelEvaluator
    from .problem import parse_shape_overrides

    evaluator = KernelEvaluator(args.problem, shape=parse_shape_overrides(args.shape),
                                archs=tuple(args.arch or ("sm_90a",)), baselines=not args.no_compile)
    file = Path(args.file)
    if not file.is_file():
        raise FileNotFoundError(f"candidate file {str(file)!r} does not exist")
    candidate = Candidate.from_source(file.read_text(), entry=evaluator.entry)
    with Sandbox(evaluator.sandbox_config(), gpus=(0,) if evaluator.on_gpu else ()) as sandbox:
        result = evaluator.evaluate(candidate, sandbox)
    print(json.dumps(check_json(result), indent=2, default=str) if args.json else format_result(result))
    return 0 if result.ok else 1


def format_result(result: EvalResult) -> str:
    """The attention check's text, with the speedups and the baselines' times."""
    from .evaluator import KernelEvaluator

    text = format_check(result, unit="x eager", caption=KernelEvaluator.score_caption(result.device))
    bench = result.stage("benchmark")
    if bench is not None and bench.details.get("eager_ms") is not None:
        d = bench.details
        compile_ms = d.get("compile_ms")
        text += (f"\n  reference: eager {d['eager_ms']:.4g} ms, torch.compile "
                 f"{'-' if compile_ms is None else format(compile_ms, '.4g') + ' ms'} at {d.get('shape')}")
        if d.get("candidate_ms") is not None:
            text += f"; candidate {d['candidate_ms']:.4g} ms"
    return text
