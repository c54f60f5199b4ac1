"""Nsight Compute's CSV reduced to the ten numbers a kernel engineer reads first, per kernel.

`ncu --csv --section ... --metrics ...` (`ARGUMENTS`) prints one row per kernel launch and metric:
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",
"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value". `summarise` keeps, per
kernel name (the mean over its launches): SM, memory, DRAM and tensor-pipe speed of light, issue
slots busy, eligible warps and cycles with none, achieved occupancy, registers per thread, the
duration, and the three largest warp stall reasons. Names are the sections' display names and the
raw metrics NVIDIA documents (Nsight Compute's Profiling Guide, "Metrics Reference").
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SECTIONS = ("SpeedOfLight", "ComputeWorkloadAnalysis", "SchedulerStats", "WarpStateStats", "Occupancy", "LaunchStats")
_TENSOR = ("sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",  # Hopper wgmma
           "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active")  # mma.sync
_STALL_PREFIX = "smsp__average_warps_issue_stalled_"
_STALL_SUFFIX = "_per_issue_active.ratio"
_STALLS = ("long_scoreboard", "short_scoreboard", "barrier", "wait", "math_pipe_throttle", "mio_throttle",
           "lg_throttle", "not_selected", "selected", "dispatch_stall", "no_instruction", "membar", "sleeping",
           "tex_throttle", "drain", "branch_resolving", "imc_miss", "misc")
ARGUMENTS = (*(a for s in SECTIONS for a in ("--section", s)), "--metrics",
             ",".join((*_TENSOR, *(f"{_STALL_PREFIX}{s}{_STALL_SUFFIX}" for s in _STALLS))))

# summary key -> the metric names that give it (the first one present wins)
METRICS: dict[str, tuple[str, ...]] = {
    "sm_throughput_pct": ("Compute (SM) Throughput", "sm__throughput.avg.pct_of_peak_sustained_elapsed"),
    "memory_throughput_pct": ("Memory Throughput", "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"),
    "dram_throughput_pct": ("DRAM Throughput", "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed"),
    "tensor_pipe_pct": _TENSOR,
    "issue_slots_busy_pct": ("Issue Slots Busy", "sm__inst_issued.avg.pct_of_peak_sustained_active"),
    "eligible_warps_per_scheduler": ("Eligible Warps Per Scheduler",),
    "no_eligible_pct": ("No Eligible",),
    "achieved_occupancy_pct": ("Achieved Occupancy", "sm__warps_active.avg.pct_of_peak_sustained_active"),
    "registers_per_thread": ("Registers Per Thread",),
    "duration_us": ("Duration", "gpu__time_duration.sum"),
}
_TO_US = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def read_rows(lines: Iterable[str]) -> list[dict[str, str]]:
    """The CSV rows of ncu's output (lines before the header, ncu's own '==PROF==' notes, are skipped)."""
    body = [line for line in lines if line.startswith('"')]
    return list(csv.DictReader(body))


def summarise(rows: Sequence[Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """{kernel name: {summary key: value, "top_stalls": [(reason, warps per issue), ...], "launches": n}}."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    launches: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        kernel, name = row.get("Kernel Name", ""), row.get("Metric Name", "")
        value = _number(row.get("Metric Value", ""))
        if not kernel or value is None:
            continue
        if name in ("Duration", "gpu__time_duration.sum"):
            value *= _TO_US.get(row.get("Metric Unit", "").strip(), 1.0)
        launches[kernel].add(row.get("ID", ""))
        values[kernel][name].append(value)
    out: dict[str, dict[str, Any]] = {}
    for kernel, metrics in values.items():
        summary: dict[str, Any] = {"launches": len(launches[kernel])}
        for key, names in METRICS.items():
            found = next((metrics[n] for n in names if n in metrics), None)
            summary[key] = round(statistics.mean(found), 3) if found else None
        stalls = [(name[len(_STALL_PREFIX):-len(_STALL_SUFFIX)], statistics.mean(v)) for name, v in metrics.items()
                  if name.startswith(_STALL_PREFIX) and name.endswith(_STALL_SUFFIX)]
        summary["top_stalls"] = [(reason, round(v, 3)) for reason, v in sorted(stalls, key=lambda s: -s[1])[:3]]
        out[kernel] = summary
    return out


def summary_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per kernel and metric, for the agent's profile section."""
    lines = []
    for kernel, numbers in summary.items():
        stalls = ", ".join(f"{reason} {value:g}" for reason, value in numbers.get("top_stalls", []))
        shown = ", ".join(f"{key} {numbers[key]:g}" for key in METRICS if numbers.get(key) is not None)
        lines.append(f"{kernel} ({numbers.get('launches', 0)} launches): {shown}"
                     + (f"; top stalls (warps per issued instruction): {stalls}" if stalls else ""))
    return "\n".join(lines)
