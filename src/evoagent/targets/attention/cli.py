"""The `evoagent check attention FILE` and `evoagent bench attention FILE` commands (registered by evoagent.cli).

Registering them imports no torch (the evaluator loads when a command runs), so other commands start fast.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...candidate import Candidate
from ...result import EvalResult, format_score
from .static import SUPPORTED_ARCHS
from .suites import SUITES

if TYPE_CHECKING:
    from .evaluator import AttentionEvaluator

_BASELINE_ORDER = ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient", "flash-attn", "flash-attn-3")


def add_check_parser(subparsers: Any, *, more_targets: Sequence[Callable[[Any], Any]] = ()) -> argparse.ArgumentParser:
    """Registers `check TARGET ...` on an argparse subparsers object: `check attention FILE [--suite S] [--arch A]
    [--json]`, and each of `more_targets` (a function registering its target on the targets' subparsers)."""
    check: argparse.ArgumentParser = subparsers.add_parser(
        "check", help="evaluate one kernel file: legality, static compile, correctness, speed")
    targets = check.add_subparsers(dest="target", metavar="TARGET", required=True)
    p = targets.add_parser("attention", help="an attention kernel file")
    p.add_argument("file", help="the kernel file (defines attention(q, k, v, *, causal, sm_scale))")
    p.add_argument("--suite", choices=sorted(SUITES),
                   help="configuration suite (default: h100-mha with a GPU, else smoke)")
    p.add_argument("--arch", action="append", choices=SUPPORTED_ARCHS,
                   help="architecture to compile for without a GPU (repeatable; default sm_90a)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_check)
    for add in more_targets:
        add(targets)
    return check


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers `bench attention FILE [--suite S]`: the candidate against the baselines, as a table."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="time one kernel file against cuDNN / FlashAttention per configuration")
    _common(p)
    p.add_argument("--reps", type=int, help="timed repetitions per configuration")
    p.set_defaults(func=run_bench)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", choices=["attention"], help="the built-in target")
    p.add_argument("file", help="the kernel file (defines attention(q, k, v, *, causal, sm_scale))")
    p.add_argument("--suite", choices=sorted(SUITES),
                   help="configuration suite (default: h100-mha with a GPU, else smoke)")


def _evaluate(path: str, evaluator: AttentionEvaluator, stages: Sequence[str] | None = None) -> EvalResult:
    from ...sandbox import Sandbox
    from .evaluator import cuda_available

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"kernel file {str(file)!r} does not exist")
    candidate = Candidate.from_source(file.read_text(), entry=evaluator.entry)
    with Sandbox(evaluator.sandbox_config(), gpus=(0,) if cuda_available() else ()) as sandbox:
        return evaluator.evaluate(candidate, sandbox, stages=stages)


def run_check(args: argparse.Namespace) -> int:
    from .evaluator import AttentionEvaluator

    evaluator = AttentionEvaluator(args.suite, archs=tuple(args.arch or ("sm_90a",)))
    result = _evaluate(args.file, evaluator)
    print(json.dumps(check_json(result), indent=2, default=str) if args.json else format_check(result))
    return 0 if result.ok else 1


def run_bench(args: argparse.Namespace) -> int:
    from .evaluator import AttentionEvaluator

    evaluator = AttentionEvaluator(args.suite, reps=args.reps)
    result = _evaluate(args.file, evaluator, stages=("check", "test", "benchmark"))
    print(format_check(result, details=False))
    stage = result.stage("benchmark")
    if stage is not None and stage.details.get("table"):
        print()
        print(format_bench_table(stage.details["table"], stage.details.get("device", "")))
        if stage.details.get("timing"):
            print(f"timed: {stage.details['timing']}")
    elif stage is not None and stage.details.get("note"):
        print(stage.details["note"])
    return 0 if result.ok else 1


def check_json(result: EvalResult) -> dict[str, Any]:
    """status, reason, score, language, metrics, device, stages [{name, status, seconds, reason, details}], static
    {arch: totals and tensor-core instruction counts}."""
    check = result.stage("check")
    static = {}
    for arch, report in ((check.details.get("static") or {}) if check else {}).items():
        static[arch] = {k: report.get(k) for k in ("ok", "describes", "shared_bytes", "registers", "spill_bytes",
                                                    "spill_instructions", "compile_seconds", "cached")}
        static[arch]["tensor_core"] = dict(sum((Counter(k.get("tensor_core") or {}) for k in report.get("kernels", [])),
                                               Counter()))
    return {
        "status": result.status.value, "reason": result.reason, "score": result.score,
        "language": check.details.get("language") if check else None,
        "metrics": dict(result.metrics), "device": result.device,
        "stages": [{"name": s.name, "status": s.status.value, "seconds": s.seconds, "reason": s.reason,
                    "details": dict(s.details)} for s in result.stages],
        "static": static,
    }


def format_check(result: EvalResult, *, details: bool = True, unit: str = "TFLOPS",
                 caption: str | None = None) -> str:
    """The label, the score with its caption, the reason, and one block per stage (metrics in `unit`; a static
    report shown once). `caption` names the score's unit and meaning (default: the attention target's)."""
    if caption is None:
        from .evaluator import AttentionEvaluator

        caption = AttentionEvaluator.score_caption(result.device)
    check = result.stage("check")
    language = check.details.get("language") if check else None
    score = "" if result.score is None else f" score {format_score(result.score, '.4g')} {caption}"
    lines = [f"{result.status.value}{score}" + (f": {result.reason}" if result.reason else ""),
             f"device: {result.device}" + (f"; language: {language}" if language else "")]
    shown: dict[str, str] = {}  # static report (as JSON) -> the stage that showed it
    for stage in result.stages:
        lines.append(f"[{stage.name}] {stage.status.value} ({stage.seconds:.2f} s)"
                     + (f": {stage.reason}" if stage.reason else ""))
        lines += [f"  {name}: {value:.4g} {unit}" for name, value in stage.metrics.items()]
        if details:
            stage_details = dict(stage.details)
            static = json.dumps(stage_details.get("static"), sort_keys=True, default=str)
            if stage_details.get("static") and static in shown:  # the profile re-reads the check's report
                lines.append(f"  static report: the same as in [{shown[static]}] above")
                stage_details.pop("static")
            elif stage_details.get("static"):
                shown[static] = stage.name
            lines += _stage_lines(stage.name, stage_details)
    return "\n".join(lines)


def _stage_lines(name: str, details: dict[str, Any]) -> list[str]:
    lines = [f"  legality: {finding}" for finding in details.get("legality", [])]
    for arch, report in (details.get("static") or {}).items():
        if report.get("registers") is None:  # nothing compiled: there are no resources to show
            errors = [e.get("error") for e in [*report.get("errors", []), *report.get("wrapper_errors", [])]]
            lines.append(f"  {arch}: did not compile" + (f": {str(errors[0]).splitlines()[0]}" if errors and errors[0]
                                                         else " (the reason is above)"))
            continue
        lines.append(f"  {arch}: shared {report.get('shared_bytes')} B, registers {report.get('registers')}, "
                     f"spills {report.get('spill_bytes')} B / {report.get('spill_instructions')} instr, "
                     f"compiled in {report.get('compile_seconds')} s{' (cached)' if report.get('cached') else ''}")
        lines += _kernel_lines(report)
        for skip in report.get("skipped") or []:
            lines.append(f"    skipped {skip['kernel']} [{skip['config']}] autotune config ({skip['autotune']}), "
                         f"as autotuning would skip it: {skip['error']}")
        if report.get("describes"):
            lines.append(f"    describes {report['describes']}")
    if name == "test" and "cases" in details:
        lines.append(f"  {details['cases']} cases on {len(details.get('shapes', []))} shapes ({details.get('device')})")
    if details.get("note"):
        lines.append(f"  note: {details['note']}")
    return lines


def _kernel_lines(report: dict[str, Any]) -> list[str]:
    """One line per compiled kernel configuration: launch, registers, spills and its instruction mix."""
    lines, explained = [], False
    for kern in report.get("kernels", []):
        if kern.get("sass_analysed", True):
            mix = ", ".join(f"{k} {v}" for k, v in {**kern.get("tensor_core", {}),
                                                     **kern.get("global_access_bits", {})}.items())
            mix = f"SASS {mix or 'has no tensor-core instructions'}"
        else:  # SASS is dumped once per kernel; its other variants show their PTX counts
            mix = "PTX " + ", ".join(f"{k} {v}" for k, v in kern.get("ptx", {}).items())
            if not explained:
                mix += (" (SASS is disassembled for one configuration of each kernel; the others are counted in "
                        "their PTX)")
                explained = True
        tma = ", ".join(f"{k} {v}" for k, v in (kern.get("tma") or {}).items())
        tune = f" autotune {kern['autotune_rank']} ({kern['autotune']})" if kern.get("autotune") else ""
        launch = f" warps {kern['num_warps']} stages {kern['num_stages']}," if kern.get("num_warps") else ","
        lines.append(f"    {kern['kernel']} [{kern['config']}]{tune}{launch} {kern['registers']} registers, "
                     f"{kern.get('stack_bytes')} B spilled: "
                     f"{mix}{'; TMA ' + tma if tma else ''}")
    return lines


def format_bench_table(rows: Sequence[dict[str, Any]], device: str) -> str:
    """A markdown table: TFLOPS of the candidate and each baseline per configuration, and the ratio to cuDNN."""
    present = [b for b in _BASELINE_ORDER if any(b in r["tflops"] for r in rows)]
    header = ["config", "candidate", *present, "vs cuDNN"]
    out = [f"TFLOPS on {device}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["config"], format_score(r["tflops"].get("candidate"), ".4g")]
        cells += [format_score(r["tflops"].get(b), ".4g") if b in r["tflops"]
                  else ("error" if b in r["baseline_errors"] else "-") for b in present]
        cells.append("-" if r.get("ratio_to_cudnn") is None else f"{r['ratio_to_cudnn']:.3f}x")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)

