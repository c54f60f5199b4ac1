"""Benchmarks attention kernels against cuDNN / FlashAttention on a GPU; writes a JSON file and a markdown table.

    python benchmarks/attention_bench.py --suite h100-mha --suite h100-d64 [--kernel PATH ...] [--reps N]
    python benchmarks/attention_bench.py --dry-run      # what would run (works without a GPU)

Each kernel goes through AttentionEvaluator's check, test and benchmark stages (the same honest path
as an evolutionary run), so a number lands in the table only for a kernel that passed the checks.
Results go to benchmarks/results/<date>-<gpu>.json and .md (and to --copy-to, e.g. the device tool's $OUT).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import math
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from evoagent.targets.attention import AttentionEvaluator, default_seed, get_suite  # noqa: E402
from evoagent.targets.attention.cli import format_bench_table  # noqa: E402

OPTIONAL_BASELINES = {"flash-attn": "flash_attn", "flash-attn-3": "flash_attn_interface"}


def versions() -> dict[str, Any]:
    """Python, platform and library versions, and the GPU with its driver when there is one."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "triton", "numpy", "flash_attn", "flash_attn_interface"):
        try:
            info[name] = getattr(importlib.import_module(name), "__version__", "present")
        except Exception as exc:  # an optional baseline that is missing or broken
            info[name] = f"not importable ({type(exc).__name__})"
    import torch

    info["cuda_runtime"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["sm_count"] = props.multi_processor_count
        info["capability"] = f"{props.major}.{props.minor}"
    info["driver"] = _driver_version()
    return info


def _driver_version() -> str | None:
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None


def plan(suites: list[str], kernels: list[Path]) -> list[str]:
    """The lines --dry-run prints: every suite, configuration, kernel and optional baseline."""
    lines = []
    for name in suites:
        suite = get_suite(name)
        lines.append(f"suite {name}: {suite.description}")
        lines += [f"  {c.name}: {c.flops() / 1e9:.1f} GFLOP" for c in suite.configs]
    lines += [f"kernel {k}" for k in kernels]
    lines.append("baselines: sdpa-cudnn, sdpa-flash, sdpa-efficient (PyTorch SDPA, each backend forced)")
    for label, module in OPTIONAL_BASELINES.items():
        found = importlib.util.find_spec(module) is not None
        lines.append(f"  {label}: {'importable' if found else 'not installed (skipped)'}")
    return lines


def run_one(suite: str, kernel: Path, reps: int | None) -> dict[str, Any]:
    from evoagent.candidate import Candidate
    from evoagent.sandbox import Sandbox

    evaluator = AttentionEvaluator(suite, reps=reps)
    candidate = Candidate.from_source(kernel.read_text(), entry=evaluator.entry)
    started = time.perf_counter()
    with Sandbox(evaluator.sandbox_config(), gpus=(0,)) as sandbox:
        result = evaluator.evaluate(candidate, sandbox, stages=("check", "test", "benchmark"))
    bench = result.stage("benchmark")
    table = list(bench.details.get("table", [])) if bench is not None else []
    ratios = [r["ratio_to_cudnn"] for r in table if r.get("ratio_to_cudnn")]
    check = result.stage("check")
    return {
        "suite": suite, "kernel": str(kernel), "status": result.status.value, "reason": result.reason,
        "score_tflops": result.score, "device": result.device, "seconds": round(time.perf_counter() - started, 1),
        "stages": {s.name: {"status": s.status.value, "seconds": s.seconds} for s in result.stages},
        "geomean_ratio_to_cudnn": math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None,
        "static": (check.details.get("static") if check is not None else None),
        "table": table,
    }


def markdown(report: dict[str, Any]) -> str:
    env = report["env"]
    lines = [f"# Attention benchmarks, {report['date']}", "",
             f"GPU {env.get('gpu')} (driver {env.get('driver')}), torch {env.get('torch')} "
             f"(CUDA {env.get('cuda_runtime')}, "
             f"cuDNN {env.get('cudnn')}), Triton {env.get('triton')}, flash-attn {env.get('flash_attn')}.", ""]
    for run in report["runs"]:
        lines.append(f"## {Path(run['kernel']).name} on {run['suite']}: {run['status']}"
                     + (f" ({run['reason']})" if run["reason"] else ""))
        ratio = run.get("geomean_ratio_to_cudnn")
        if ratio is not None:
            lines.append(f"geometric mean vs cuDNN: {ratio:.3f}x; score {run['score_tflops']:.1f} TFLOPS")
        if run["table"]:
            lines += ["", format_bench_table(run["table"], run["device"])]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", help="suite(s) to run (default h100-mha and h100-d64)")
    parser.add_argument("--kernel", action="append", type=Path, help="kernel file(s) (default: the shipped seed)")
    parser.add_argument("--reps", type=int, help="timed repetitions per configuration (default 30)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="skip what would start after this many seconds")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--copy-to", type=Path, help="also copy the JSON and markdown files here")
    parser.add_argument("--dry-run", action="store_true", help="print what would run and exit (no GPU needed)")
    args = parser.parse_args(argv)
    suites = args.suite or ["h100-mha", "h100-d64"]
    kernels = args.kernel or [default_seed()]
    for kernel in kernels:
        if not kernel.is_file():
            parser.error(f"kernel file {str(kernel)!r} does not exist")
    if args.dry_run:
        print("\n".join(plan(suites, kernels)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("attention_bench: no CUDA device; use --dry-run to see the plan", file=sys.stderr)
        return 2
    env = versions()
    print(json.dumps(env, indent=1))
    report: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "env": env,
                              "runs": []}
    started = time.perf_counter()
    for suite in suites:
        for kernel in kernels:
            if time.perf_counter() - started > args.budget_s:
                report["runs"].append({"suite": suite, "kernel": str(kernel), "status": "skipped",
                                       "reason": f"time budget of {args.budget_s:.0f} s spent", "table": []})
                continue
            run = run_one(suite, kernel, args.reps)
            report["runs"].append(run)
            print(f"{suite} {kernel.name}: {run['status']} {run['reason']} ({run['seconds']} s)", flush=True)
    paths = write(report, args.out_dir, args.copy_to)
    print(markdown(report))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if all(r["status"] == "ok" for r in report["runs"]) else 1


def write(report: dict[str, Any], out_dir: Path, copy_to: Path | None) -> list[Path]:
    gpu = re.sub(r"[^a-z0-9]+", "-", str(report["env"].get("gpu", "gpu")).lower()).strip("-")
    stem = f"{report['date'][:10]}-{gpu}"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    paths[0].write_text(json.dumps(report, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(report) + "\n")
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, copy_to / path.name)
    return paths


if __name__ == "__main__":
    sys.exit(main())
