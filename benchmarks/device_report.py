"""The device check's result file: one JSON object that every step adds to, and the Markdown made from it.

    python benchmarks/device_report.py validate OUT/device_check.json     # exit 1 naming what is missing; the verdict
    python benchmarks/device_report.py render OUT/device_check.json       # rewrite the .md beside it
    python benchmarks/device_report.py save OUT/device_check.json         # -> benchmarks/results/<gpu>-<date>.json/.md

Each step (versions, benchmark, evolution, profile, GPU tests) loads the file, sets its own keys and
writes both files again at once (JSON through a temporary file and a rename), so a step that is
killed part-way leaves everything measured before it. The Markdown never assumes a number is there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NAME = "device_check"
SCHEMA = 1
CUDNN = "sdpa-cudnn"


def json_path(out_dir: Path) -> Path:
    return out_dir / f"{NAME}.json"


def load(out_dir: Path) -> dict[str, Any]:
    """The report so far, or a new one."""
    path = json_path(out_dir)
    if path.is_file():
        return dict(json.loads(path.read_text()))
    return {"schema": SCHEMA, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": {}, "versions": {}, "candidates": [], "baselines": [], "rows": [], "steps": {}}


def save(report: dict[str, Any], out_dir: Path) -> None:
    """Writes device_check.json (atomically) and device_check.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report["summary"] = summary(report.get("rows", []))
    tmp = out_dir / f".{NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(tmp, json_path(out_dir))
    (out_dir / f"{NAME}.md").write_text(markdown(report))


def update(out_dir: Path, **keys: Any) -> dict[str, Any]:
    """Loads the report, sets `keys` (a `steps` entry is merged), saves it and returns it."""
    report = load(out_dir)
    steps = keys.pop("steps", None)
    report.update(keys)
    if steps:
        report.setdefault("steps", {}).update(steps)
    save(report, out_dir)
    return report


# -- numbers --------------------------------------------------------------------------------------


def geomean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per implementation: geometric-mean TFLOPS and ratio to cuDNN over the rows that have both."""
    names = list(dict.fromkeys(n for row in rows for n in row.get("numbers", {})))
    out: dict[str, Any] = {"geomean_tflops": {}, "geomean_ratio_to_cudnn": {}}
    for name in names:
        tflops = [row["numbers"][name].get("tflops") for row in rows if name in row.get("numbers", {})]
        ratios = [row.get("ratio_to_cudnn", {}).get(name) for row in rows]
        out["geomean_tflops"][name] = _round(geomean(t for t in tflops if t is not None))
        out["geomean_ratio_to_cudnn"][name] = _round(geomean(r for r in ratios if r is not None))
    return out


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


# -- validation -----------------------------------------------------------------------------------


def validate(report: Any) -> list[str]:
    """What the report lacks: device, versions, and in every row each implementation's number or reason."""
    if not isinstance(report, dict):
        return ["the report is not a JSON object"]
    problems = [f"no {key!r}" for key in ("device", "versions") if not report.get(key)]
    rows = report.get("rows")
    if not isinstance(rows, list) or not rows:
        return problems + ["no 'rows' (one per configuration)"]
    expected = list(report.get("candidates", [])) + list(report.get("baselines", []))
    if not report.get("candidates"):
        problems.append("no 'candidates' (the seeds measured)")
    for row in rows:
        numbers, missing = row.get("numbers", {}), row.get("missing", {})
        absent = [n for n in expected if n not in numbers and not missing.get(n)]
        if absent:
            problems.append(f"row {row.get('config')!r} has neither a number nor a reason for {absent}")
        for name, number in numbers.items():
            if not isinstance(number.get("tflops"), (int, float)) or not number["tflops"] > 0:
                problems.append(f"row {row.get('config')!r}: {name} has no positive 'tflops'")
    return problems + usefulness(report)[0]


def on_gpu(report: dict[str, Any]) -> bool:
    return str(report.get("device", {}).get("name") or "cpu-interpreter") != "cpu-interpreter"


def usefulness(report: dict[str, Any]) -> tuple[list[str], str]:
    """What makes the numbers useless, and the one-line verdict ("useful: N rows, M implementations").

    On a GPU a useful row has a seed's number and cuDNN's (the ratio the project is about); at least
    one is needed. Without a GPU (the interpreter) every row must have a seed's number: a flow that
    measures nothing fails.
    """
    rows = [r for r in report.get("rows", []) if isinstance(r, dict)]
    seeds = set(report.get("candidates", []))
    with_seed = [r for r in rows if seeds & set(r.get("numbers", {}))]
    problems = []
    if on_gpu(report):
        useful = [r for r in with_seed if CUDNN in r.get("numbers", {})]
        if not useful:
            problems.append("no row has both a seed's number and cuDNN's: nothing to compare")
    else:
        useful = with_seed
        problems += [f"row {r.get('config')!r} has no seed's number" for r in rows if r not in with_seed]
        if not rows:
            problems.append("no seed was measured")
    implementations = {n for r in useful for n in r.get("numbers", {})}
    return problems, f"useful: {len(useful)} rows, {len(implementations)} implementations"


# -- markdown -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    device, versions = report.get("device", {}), report.get("versions", {})
    lines = [f"# Attention device check: {device.get('name', 'unknown device')}, {report.get('date', '')[:10]}", ""]
    lines += [_versions_line(device, versions), ""]
    for seed in report.get("seeds", []):
        lines += [f"- seed `{seed.get('name')}` ({seed.get('path')}): check {seed.get('check', {}).get('status')}"
                  + (f" ({seed['check']['reason']})" if seed.get("check", {}).get("reason") else "")]
        if seed.get("check", {}).get("text"):
            lines += ["", "```", seed["check"]["text"].rstrip(), "```"]
    lines += [""] + _tables(report) + _evolution(report.get("evolution")) + _profile(report.get("profile"))
    lines += _steps(report.get("steps", {}))
    return "\n".join(lines).rstrip() + "\n"


def _versions_line(device: dict[str, Any], versions: dict[str, Any]) -> str:
    keys = ("python", "torch", "triton", "numpy", "cuda_runtime", "cudnn", "flash_attn", "flash_attn_interface")
    parts = [f"{k} {versions[k]}" for k in keys if versions.get(k) is not None]
    facts = [f"{k.replace('_', ' ')} {device[k]}" for k in ("driver", "capability", "sm_count") if device.get(k)]
    clocks = device.get("clocks_before")
    if clocks:
        facts.append("clocks before: " + ", ".join(f"{k} {v}" for k, v in clocks.items()))
    return "; ".join(facts + parts) + "."


def _cell(number: dict[str, Any] | None) -> str:
    if not number or number.get("tflops") is None:
        return "-"
    spread = number.get("iqr_ms")
    median = number.get("median_ms")
    tail = f" ±{100 * spread / 2 / median:.0f}%" if spread is not None and median else ""
    return f"{_tflops(number['tflops'])}{tail}"


def _tables(report: dict[str, Any]) -> list[str]:
    rows = report.get("rows", [])
    candidates, baselines = list(report.get("candidates", [])), list(report.get("baselines", []))
    names = candidates + baselines
    lines: list[str] = []
    unit = "TFLOPS (median; ± half the interquartile range)"
    for suite in dict.fromkeys(r.get("suite") for r in rows):
        suite_rows = [r for r in rows if r.get("suite") == suite]
        lines += [f"## {suite}: {unit}", "",
                  "| config | " + " | ".join(names) + " | " + " | ".join(f"{c} / cuDNN" for c in candidates) + " |",
                  "|---" * (1 + len(names) + len(candidates)) + "|"]
        for row in suite_rows:
            numbers, ratios = row.get("numbers", {}), row.get("ratio_to_cudnn", {})
            cells = [_cell(numbers.get(n)) for n in names]
            cells += [f"{ratios[c]:.3f}x" if ratios.get(c) is not None else "-" for c in candidates]
            lines.append(f"| {row.get('config')} | " + " | ".join(cells) + " |")
        gm = summary(suite_rows)
        cells = [_tflops(gm["geomean_tflops"][n]) if gm["geomean_tflops"].get(n) else "-" for n in names]
        cells += [f"{gm['geomean_ratio_to_cudnn'][c]:.3f}x" if gm["geomean_ratio_to_cudnn"].get(c) else "-"
                  for c in candidates]
        lines += ["| geometric mean | " + " | ".join(cells) + " |", ""]
        reasons = {(n, why) for r in suite_rows for n, why in r.get("missing", {}).items()}
        lines += [f"- {n}: {why}" for n, why in sorted(reasons)]
        lines += [""] if reasons else []
    skipped = report.get("skipped", [])
    if skipped:
        lines += [f"Not measured ({len(skipped)}): " + ", ".join(f"{s['config']} ({s['reason']})" for s in skipped), ""]
    return lines


def _evolution(evolution: dict[str, Any] | None) -> list[str]:
    if not evolution:
        return []
    lines = [f"## Short evolution: {evolution.get('status', '?')}", "", str(evolution.get("summary", "")), ""]
    table = evolution.get("before_after", [])
    if table:
        lines += ["| config | seed TFLOPS | best TFLOPS | best / seed | cuDNN TFLOPS | best / cuDNN |",
                  "|---|---|---|---|---|---|"]
        for row in table:
            ratio, vs_cudnn = row.get("ratio"), row.get("best_vs_cudnn")
            lines.append(f"| {row['config']} | {_num(row.get('seed'))} | {_num(row.get('best'))} | "
                         f"{f'{ratio:.3f}x' if ratio else '-'} | {_num(row.get('cudnn'))} | "
                         f"{f'{vs_cudnn:.3f}x' if vs_cudnn else '-'} |")
        lines.append("")
    trials = evolution.get("trials", [])
    if trials:
        lines += ["| trial | operator | status | score | committed | hypothesis |", "|---|---|---|---|---|---|"]
        for t in trials:
            hypothesis = str(t.get("hypothesis") or "").replace("|", "/").replace("\n", " ")[:100]
            lines.append(f"| {t.get('id')} | {t.get('operator')} | {t.get('status')} | {_num(t.get('score'))} | "
                         f"{'yes' if t.get('committed') else 'no'} | {hypothesis} |")
        lines.append("")
    return lines


def _profile(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    lines = [f"## Profile stage ({profile.get('config', '')}): {profile.get('status', '?')}", ""]
    for kernel in profile.get("kernels", [])[:5]:
        lines.append(f"- {kernel.get('name')}: {kernel.get('calls')} calls, {_num(kernel.get('device_ms_total'))} ms")
    ncu = profile.get("ncu") or {}
    if ncu.get("csv"):
        lines += ["", "Nsight Compute (SpeedOfLight):", "", "```", *ncu["csv"][:20], "```"]
    elif ncu:
        lines.append(f"- ncu: {json.dumps(ncu)[:300]}")
    if profile.get("text"):
        lines += ["", "```", profile["text"].rstrip(), "```"]
    return lines + [""]


def _steps(steps: dict[str, Any]) -> list[str]:
    if not steps:
        return []
    lines = ["## Steps", "", "| step | status | seconds | note |", "|---|---|---|---|"]
    for name, step in steps.items():
        note = str(step.get("note", "")).replace("|", "/").replace("\n", " ")[:160]
        lines.append(f"| {name} | {step.get('status')} | {_num(step.get('seconds'))} | {note} |")
    return lines + [""]


def _tflops(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"  # interpreter numbers are tiny


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


# -- committing results ---------------------------------------------------------------------------


def results_stem(report: dict[str, Any]) -> str:
    """'<gpu>-<date>', e.g. 'nvidia-h200-2026-12-01' (benchmarks/results/README.md)."""
    gpu = re.sub(r"[^a-z0-9]+", "-", str(report.get("device", {}).get("name") or "unknown-gpu").lower()).strip("-")
    return f"{gpu}-{str(report.get('date', ''))[:10] or 'undated'}"


def save_results(path: Path, results_dir: Path) -> list[Path]:
    report = json.loads(path.read_text())
    problems = validate(report)
    if problems:
        raise SystemExit(f"{path} is incomplete: " + "; ".join(problems))
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_stem(report)
    targets = [results_dir / f"{stem}.json", results_dir / f"{stem}.md"]
    shutil.copyfile(path, targets[0])
    targets[1].write_text(markdown(report))
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("validate", "render", "save"))
    parser.add_argument("file", type=Path, help="a device_check.json")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist; run benchmarks/device_check.sh first")
    report = json.loads(args.file.read_text())
    if args.action == "validate":
        problems = validate(report)
        verdict = usefulness(report)[1] if isinstance(report, dict) else "useful: 0 rows, 0 implementations"
        print("\n".join(problems + [verdict]) if problems else f"{args.file}: complete; {verdict}")
        return 1 if problems else 0
    if args.action == "render":
        args.file.with_suffix(".md").write_text(markdown(report))
        return 0
    for target in save_results(args.file, args.results_dir):
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
