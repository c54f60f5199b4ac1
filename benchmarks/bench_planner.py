"""The benchmark's schedule: prepare every implementation for every configuration, then time rows inside a deadline.

One-time costs (the CUDA seed's extension build, Triton compiles and autotuning, Flex's
`torch.compile`) are paid in a **prepare** phase before any row is timed, so the row budget counts
on measured per-row costs, not on a first row that carried every build:

1. per suite, the *core* implementations (every seed and SDPA's cuDNN, FLASH and EFFICIENT backends)
   are prepared for each configuration: built, compiled, autotuned by a first call on the
   configuration's inputs and checked against the reference. Each result is written to the report
   the moment it exists. A configuration is prepared only while the rows prepared so far, timed at
   the estimated row cost, still fit before the deadline;
2. the prepared rows are timed (interleaved, see attention_bench.py), each row saved as it is
   measured. Before a row, each *extra* implementation (Flex, flash-attn, FA3) is prepared for it
   if its cost (its last measured preparation, or `first_cost_guess_s` before the first) still
   leaves time for the rows left; else the row says why it has none.

The planner only schedules: a `Backend` prepares and times (on the GPU, or in Triton's interpreter),
and a clock tells the time, so a fake backend and clock test the schedule against worst-case costs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

CORE_BASELINES = ("sdpa-cudnn", "sdpa-flash", "sdpa-efficient")
EXTRA_BASELINES = ("flex", "flash-attn", "flash-attn-3")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """One implementation made ready for one configuration (or why it is not).

    Attributes:
        ok: built, compiled and its first output within tolerance: it can be timed.
        seconds: wall time of the preparation (builds, compiles and autotuning included).
        reason: why it cannot be timed (empty when ok).
        check: the comparison with the reference (attention_bench.compare), if the call ran.
    """

    ok: bool
    seconds: float
    reason: str = ""
    check: dict[str, Any] | None = None


class Backend(Protocol):
    """What prepares and times implementations (attention_bench.RealBackend, or a test's fake)."""

    def prepare(self, config: Any, name: str) -> Prepared: ...

    def time_row(self, config: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def row_estimate_s(self, implementations: int) -> float: ...

    def clocks(self) -> dict[str, str] | None: ...


@dataclasses.dataclass(slots=True, kw_only=True)
class Planner:
    """Prepares, then times, the configurations of a plan before `deadline_s` (seconds of `clock` from `started`).

    Attributes:
        backend: prepares and times.
        clock: seconds, monotonic (time.perf_counter, or a fake).
        started: the clock's reading at the benchmark's start (the deadline counts from it).
        deadline_s: no preparation or row is started that the estimates say would end after it.
        seeds: the seeds that can be prepared (loaded, passed the check stage).
        baselines: every baseline's name, core and extra.
        missing: implementation -> why it is never timed (a seed that failed its check, say).
        report: the report dict; rows, skipped and prepare are added to it.
        save: writes the report (called after every preparation and row).
        log: prints one line.
        first_cost_guess_s: an extra implementation's cost before its first preparation was measured.
        margin_s: time kept free before the deadline.
    """

    backend: Backend
    clock: Callable[[], float]
    started: float
    deadline_s: float
    seeds: list[str]
    baselines: list[str]
    missing: dict[str, str]
    report: dict[str, Any]
    save: Callable[[dict[str, Any]], None]
    log: Callable[[str], None] = print
    first_cost_guess_s: float = 45.0
    margin_s: float = 5.0
    _cost_s: dict[str, float] = dataclasses.field(default_factory=dict)
    _row_s_per_impl: float | None = None

    def elapsed(self) -> float:
        return self.clock() - self.started

    def run(self, plan: Sequence[tuple[str, Any]]) -> None:
        self.report.setdefault("rows", [])
        self.report.setdefault("skipped", [])
        self.report.setdefault("prepare", {})
        for suite in dict.fromkeys(s for s, _ in plan):
            pending: dict[str, tuple[Any, str]] = {c.name: (c, "") for s, c in plan if s == suite}
            while pending:  # rows timed faster than estimated leave time for the configurations left out
                prepared, left_out = self._prepare_suite([c for c, _ in pending.values()])
                for index, config in enumerate(prepared):
                    self._time(suite, config, rows_left=len(prepared) - index)
                pending = left_out
                if not prepared:
                    break
            for config, reason in pending.values():
                self._skip(suite, config, reason)

    # -- phase 1 -----------------------------------------------------------------------------------

    def core(self) -> list[str]:
        return [n for n in [*self.seeds, *CORE_BASELINES] if n in self.baselines or n in self.seeds]

    def extras(self) -> list[str]:
        return [n for n in EXTRA_BASELINES if n in self.baselines]

    def _prepare_suite(self, configs: Sequence[Any]) -> tuple[list[Any], dict[str, tuple[Any, str]]]:
        """Prepares the core implementations per configuration while the prepared rows still fit; returns
        those configurations, and the others with the reason each was left out."""
        prepared: list[Any] = []
        left_out: dict[str, tuple[Any, str]] = {}
        for config in configs:
            names = [n for n in self.core() if n not in self.missing]
            cost = sum(self._cost_s.get(n, 0.0) for n in names)
            need = cost + self.row_estimate(len(names)) * (len(prepared) + 1) + self.margin_s
            if (prepared or self.report["rows"]) and self.elapsed() + need > self.deadline_s:  # the first is tried
                left_out[config.name] = (config, f"not prepared: preparing it (~{cost:.0f} s) and timing the "
                                                 f"{len(prepared) + 1} prepared rows would end past the "
                                                 f"{self.deadline_s:.0f} s deadline (at {self.elapsed():.0f} s)")
                continue
            for name in names:
                self._prepare(config, name)
            prepared.append(config)
        return prepared, left_out

    def _prepare(self, config: Any, name: str) -> Prepared:
        result = self.backend.prepare(config, name)
        self._cost_s[name] = result.seconds
        entry = {"ok": result.ok, "seconds": round(result.seconds, 2), "reason": result.reason, "check": result.check}
        self.report["prepare"].setdefault(config.name, {})[name] = entry
        self.save(self.report)
        self.log(f"prepare {config.name} {name}: {'ok' if result.ok else result.reason} ({result.seconds:.1f} s)")
        return result

    # -- phase 2 -----------------------------------------------------------------------------------

    def row_estimate(self, implementations: int) -> float:
        if self._row_s_per_impl is None:
            return self.backend.row_estimate_s(implementations)
        return self._row_s_per_impl * max(implementations, 1)

    def _time(self, suite: str, config: Any, rows_left: int) -> None:
        """Times one prepared row (rows_left: it and the prepared rows after it), extras first if they fit."""
        entries = self.report["prepare"].get(config.name, {})
        ready = [n for n, e in entries.items() if e["ok"]]
        if not ready:
            self._skip(suite, config, "nothing to time: no implementation was prepared for it")
            return
        if self.elapsed() + self.row_estimate(len(ready)) > self.deadline_s:
            self._skip(suite, config, f"not timed: no time left before the {self.deadline_s:.0f} s deadline "
                                      f"(at {self.elapsed():.0f} s)")
            return
        late: dict[str, str] = {}
        for name in self.extras():
            if name in self.missing:
                continue
            cost = self._cost_s.get(name, self.first_cost_guess_s)
            need = cost + self.row_estimate(len(ready) + 1) * rows_left + self.margin_s
            if self.elapsed() + need > self.deadline_s:
                late[name] = (f"not prepared: it needs ~{cost:.0f} s (compile) and the {rows_left} rows left "
                              f"needed the time before the {self.deadline_s:.0f} s deadline")
                continue
            if self._prepare(config, name).ok:
                ready.append(name)
        self._measure(suite, config, ready, late)

    def _measure(self, suite: str, config: Any, ready: list[str], late: dict[str, str]) -> None:
        began = self.clock()
        try:
            numbers = self.backend.time_row(config, ready)
        except Exception as exc:  # a CUDA error left by a kernel, out of memory
            why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            self._skip(suite, config, f"timing failed: {why}")
            return
        seconds = self.clock() - began
        for name, number in numbers.items():
            number.setdefault("rel_l2", self.backend_check(config.name, name).get("rel_l2"))
        self._row_s_per_impl = max(self._row_s_per_impl or 0.0, seconds / max(len(ready), 1))
        entries = self.report["prepare"].get(config.name, {})
        missing = dict(late)
        for name in [*self.seeds, *self.baselines]:
            if name in self.missing:
                missing[name] = self.missing[name]
            elif name in entries and not entries[name]["ok"]:
                missing[name] = entries[name]["reason"]
            elif name not in numbers and name not in missing:
                missing[name] = "not prepared for this row"
        cudnn = numbers.get("sdpa-cudnn", {}).get("tflops")
        row = {"suite": suite, "config": config.name, "shape": config.to_dict(),
               "gflop": round(config.flops() / 1e9, 3), "numbers": numbers, "missing": missing,
               "ratio_to_cudnn": {n: round(x["tflops"] / cudnn, 4) for n, x in numbers.items() if cudnn},
               "checks": {n: self.backend_check(config.name, n) for n in numbers},
               "clocks_after": self.backend.clocks(), "seconds": round(seconds, 2)}
        self.report["rows"].append(row)
        self.save(self.report)
        self.log(row_line(row, self.baselines))

    def backend_check(self, config_name: str, name: str) -> dict[str, Any]:
        return dict(self.report["prepare"].get(config_name, {}).get(name, {}).get("check") or {})

    def _skip(self, suite: str, config: Any, reason: str) -> None:
        self.report["skipped"].append({"suite": suite, "config": config.name, "reason": reason})
        self.save(self.report)
        self.log(f"{config.name}: {reason}")


def row_line(row: dict[str, Any], baselines: Sequence[str]) -> str:
    parts = [f"{n} {x['tflops']:.4g}" for n, x in row["numbers"].items()]
    ratios = [f"{n}/cuDNN {r:.3f}x" for n, r in row["ratio_to_cudnn"].items() if n not in baselines]
    tail = f" TFLOPS ({row['seconds']} s timing; {len(row['missing'])} missing)"
    return f"{row['config']}: " + ", ".join(parts + ratios) + tail
