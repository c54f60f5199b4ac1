"""A folder of kernel problems as a suite: which files are problems, and the table of one search per problem."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...store import RunStore
from .problem import Problem

FAST_P = (1.0, 1.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteRow:
    """One problem's outcome: whether a kernel passed, and its speedups over eager and torch.compile."""

    problem: str
    trials: int
    correct: bool
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    best: str | None = None
    device: str = ""


def problems(folder: str | os.PathLike[str]) -> list[Problem]:
    """The problem files directly in `folder` (files that are not problems, and subfolders, are skipped)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"suite folder {str(folder)!r} does not exist or is not a folder")
    found = []
    for path in sorted(root.glob("*.py")):
        try:
            found.append(Problem.load(path))
        except ConfigError:
            continue
    if not found:
        raise ConfigError(f"no problem files in {str(folder)!r}: a problem defines class Model, get_inputs() and "
                          "get_init_inputs() (the KernelBench format)")
    return found


def row(problem: Problem, run_dir: Path) -> SuiteRow:
    """The row of one problem's run: its best committed version other than the reference seed."""
    if not (run_dir / "run.db").exists():
        return SuiteRow(problem=problem.name, trials=0, correct=False)
    store = RunStore(run_dir / "run.db", readonly=True)
    try:
        done = store.trials(state="done", include_seeds=False)
        best = store.best_member()
        result = store.result(best.candidate_id) if best is not None else None
    finally:
        store.close()
    bench = result.stage("benchmark") if result is not None else None
    if result is None or bench is None or bench.details.get("reference") or not result.ok:
        return SuiteRow(problem=problem.name, trials=len(done), correct=False)
    return SuiteRow(problem=problem.name, trials=len(done), correct=True, speedup_vs_eager=result.score,
                    speedup_vs_compile=bench.details.get("speedup_vs_compile"),
                    best=best.candidate_id if best is not None else None, device=result.device)


def fast_p(rows: Sequence[SuiteRow], p: float) -> float:
    """KernelBench's fast_p: the fraction of problems whose kernel is correct and more than p times as fast as eager."""
    if not rows:
        return 0.0
    return sum(1 for r in rows if r.correct and (r.speedup_vs_eager or 0.0) > p) / len(rows)


def table(rows: Sequence[SuiteRow]) -> str:
    """A markdown table: problem, correct, speedups vs eager and vs compile; then fast_p at p = 1.0 and 1.5."""
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    device = next((r.device for r in rows if r.device), "")
    out = ["| problem | trials | correct | speedup vs eager | speedup vs torch.compile |", "|---|---|---|---|---|"]
    out += [f"| {r.problem} | {r.trials} | {'yes' if r.correct else 'no'} | {num(r.speedup_vs_eager)} | "
            f"{num(r.speedup_vs_compile)} |" for r in rows]
    out.append("")
    out.append(", ".join(f"fast_{p:g} = {fast_p(rows, p):.2f}" for p in FAST_P)
               + f" over {len(rows)} problems" + (f" ({device}" + (": interpreter times, not GPU speed)"
                                                                    if device == "cpu-interpreter" else ")")
                                                 if device else ""))
    return "\n".join(out)


def write_report(suite_dir: Path, rows: Sequence[SuiteRow]) -> tuple[Path, Path]:
    """suite.md (the table) and suite.json (the rows and fast_p) in the suite's folder."""
    suite_dir.mkdir(parents=True, exist_ok=True)
    md, js = suite_dir / "suite.md", suite_dir / "suite.json"
    md.write_text(f"# Kernel suite: {suite_dir.name}\n\n{table(rows)}\n")
    data: dict[str, Any] = {"rows": [asdict(r) for r in rows],
                            "fast_p": {f"{p:g}": fast_p(rows, p) for p in FAST_P}}
    js.write_text(json.dumps(data, indent=2) + "\n")
    return md, js
