"""Functions that run INSIDE the sandbox child to time and profile a candidate against the baselines.

On a GPU: the candidate and the baselines (PyTorch SDPA with the cuDNN, FLASH and EFFICIENT
backends forced; flash-attn 2/3 when importable) run in one process, interleaved, each repetition
after an L2 flush, timed with CUDA events; the raw times come back for the trusted side to reduce
and cross-check. Without a GPU: the interpreter's wall time of the candidate alone.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

from . import child
from .child import _call, _device, _import_candidate, _inputs, _install_launch_hooks, _prepare, _rows
from .suites import AttentionConfig

# Baselines captured before the candidate is imported (it cannot slow them down by patching).
_SDPA = torch.nn.functional.scaled_dot_product_attention


def _baselines(config: AttentionConfig, inputs: tuple[torch.Tensor, ...], sm_scale: float
               ) -> dict[str, Callable[[], Any]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = inputs
    gqa = config.heads_q != config.heads_kv

    def sdpa(backend: Any) -> Callable[[], Any]:
        def run() -> Any:
            with sdpa_kernel(backend):
                return _SDPA(q, k, v, is_causal=config.causal, scale=sm_scale, enable_gqa=gqa)
        return run

    impls = {"sdpa-cudnn": sdpa(SDPBackend.CUDNN_ATTENTION), "sdpa-flash": sdpa(SDPBackend.FLASH_ATTENTION),
             "sdpa-efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION)}
    qt, kt, vt = (t.transpose(1, 2).contiguous() for t in inputs)  # flash-attn wants (B, N, H, D)
    for name, module in (("flash-attn", "flash_attn"), ("flash-attn-3", "flash_attn_interface")):
        try:
            fn = __import__(module, fromlist=["flash_attn_func"]).flash_attn_func
        except Exception:
            continue
        impls[name] = functools.partial(fn, qt, kt, vt, causal=config.causal, softmax_scale=sm_scale)
    return impls


def _flush_buffer() -> torch.Tensor:
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)
    return torch.empty(max(2 * l2, 64 << 20), dtype=torch.int8, device="cuda")


def _timing_event() -> Any:
    return child._Event(enable_timing=True)  # type: ignore[no-untyped-call]


class _Refresher:
    """Refills the inputs in place before every timed repetition (same tensors, new values): random
    ones, except at the checked repetition, whose values come from `check_seed` so that the trusted
    side can rebuild them and verify that call's output. A candidate that memoises by tensor identity
    or pointer, or skips repeated work, returns a wrong output there; it cannot tell which call it is."""

    def __init__(self, inputs: tuple[torch.Tensor, ...], config: AttentionConfig, case: dict[str, Any],
                 device: str, reps: int) -> None:
        self.inputs = inputs
        self.check_rep = min(int(case["check_rep"]), reps - 1)
        self.checked = _inputs(config, int(case["check_seed"]), device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(case["refresh_seed"]))

    def __call__(self, rep: int) -> None:
        for tensor, checked in zip(self.inputs, self.checked):
            if rep == self.check_rep:
                tensor.copy_(checked)
            else:
                tensor.normal_(generator=self.generator)


def _time_interleaved(impls: dict[str, Callable[[], Any]], reps: int, refresh: _Refresher
                      ) -> tuple[dict[str, list[float]], float, Any]:
    """Per-implementation CUDA-event times (ms); each repetition refreshes the inputs, then runs every
    implementation once, in a rotating order, after zeroing a buffer twice the L2's size. Also returns
    the candidate's output of repetition `refresh.check_rep` (the trusted side checks it)."""
    flush = _flush_buffer()
    names = list(impls)
    events = {n: [(_timing_event(), _timing_event()) for _ in range(reps)] for n in names}
    child._synchronize()
    started, checked = child._perf_counter(), None
    for rep in range(reps):
        refresh(rep)
        for i in range(len(names)):
            name = names[(rep + i) % len(names)]
            flush.zero_()
            start, end = events[name][rep]
            child._event_record(start)
            out = impls[name]()
            child._event_record(end)
            if name == "candidate" and rep == refresh.check_rep:
                checked = out
            del out
    child._synchronize()
    region_s = child._perf_counter() - started
    times = {n: [float(child._event_elapsed(s, e)) for s, e in events[n]] for n in names}
    return times, region_s, checked


def _time_wall(fn: Callable[[], Any], reps: int, refresh: _Refresher) -> tuple[list[float], float, Any]:
    times, started, checked = [], child._perf_counter(), None
    for rep in range(reps):
        refresh(rep)
        t0 = child._perf_counter()
        out = fn()
        times.append((child._perf_counter() - t0) * 1e3)
        if rep == refresh.check_rep:
            checked = out
    return times, child._perf_counter() - started, checked


def benchmark(entry: str, cases: list[dict[str, Any]], reps: int, warmup: int, interpret: bool,
              triton_cache: str | None = None, baselines: bool = True) -> dict[str, Any]:
    """Times the candidate (and baselines on a GPU) per case; returns raw times and one timed output's rows.

    A case is {"config": dict, "seed": int, "sm_scale": float, "rows": int64 (R, 3), "check_rep": int,
    "check_seed": int, "refresh_seed": int}: warm-up calls see the inputs of `seed`; every timed
    repetition sees new values in the same tensors (`_Refresher`), those of `check_seed` at `check_rep`.
    """
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = _device(interpret)
    results = []
    for case in cases:
        results.append(_bench_case(module, case, reps, warmup, device, baselines))
        if device == "cuda":
            torch.cuda.empty_cache()
    return {"results": results, "timers_changed": child.timers_changed(), "device": device_name()}


def _bench_case(module: Any, case: dict[str, Any], reps: int, warmup: int, device: str,
                baselines: bool) -> dict[str, Any]:
    config = AttentionConfig.from_dict(case["config"])
    inputs = _inputs(config, case["seed"], device)
    impls: dict[str, Callable[[], Any]] = {"candidate": lambda: _call(module, config, inputs, case["sm_scale"])}
    if device == "cuda" and baselines:
        impls.update(_baselines(config, inputs, case["sm_scale"]))
    errors = {}
    for name in list(impls):
        try:
            for _ in range(warmup):
                impls[name]()
            if device == "cuda":
                child._synchronize()
        except Exception as exc:
            if name == "candidate":
                raise
            errors[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            del impls[name]
    refresh = _Refresher(inputs, config, case, device, reps)
    if device == "cuda":
        times, region_s, out = _time_interleaved(impls, reps, refresh)
    else:
        candidate_times, region_s, out = _time_wall(impls["candidate"], reps, refresh)
        times = {"candidate": candidate_times}
    return {"config": config.name, "times_ms": times, "errors": errors, "region_s": region_s,
            "out_rows": _rows(out, case["rows"]) if isinstance(out, torch.Tensor) else None}


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def profile(entry: str, case: dict[str, Any], interpret: bool, triton_cache: str | None = None,
            ncu: bool = False, ncu_timeout_s: float = 120.0) -> dict[str, Any]:
    """Per-kernel CUDA times of a few calls (torch.profiler) and, when `ncu` exists, its SOL summary."""
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    config = AttentionConfig.from_dict(case["config"])
    inputs = _inputs(config, case["seed"], _device(interpret))
    for _ in range(2):
        _call(module, config, inputs, case["sm_scale"])
    child._synchronize()
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            _call(module, config, inputs, case["sm_scale"])
        child._synchronize()
    kernels = []
    for event in prof.key_averages():
        cuda_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
        if cuda_us:
            kernels.append({"name": event.key[:120], "calls": int(event.count), "device_ms_total": cuda_us / 1e3})
    kernels.sort(key=lambda k: -k["device_ms_total"])
    launched = sorted(child._Launches.kernels)  # the candidate's own kernels, not torch's input casts
    summary = _ncu_summary(entry, case, ncu_timeout_s, launched) if ncu else {"requested": False}
    return {"config": config.name, "kernels": kernels[:10], "ncu": summary}


_NCU_PROBE = """
import sys, torch
sys.path.insert(0, {cwd!r})
from evoagent.targets.attention.child import _import_candidate, _inputs, _call
from evoagent.targets.attention.suites import AttentionConfig
config = AttentionConfig.from_dict({config!r})
module = _import_candidate({entry!r})
inputs = _inputs(config, {seed!r}, "cuda")
_call(module, config, inputs, {scale!r}); torch.cuda.synchronize()
"""


def _ncu_summary(entry: str, case: dict[str, Any], timeout_s: float, kernels: list[str]) -> dict[str, Any]:
    """Nsight Compute's SpeedOfLight section for the candidate's first launches, if ncu is installed."""
    ncu = shutil.which("ncu")
    if ncu is None:
        return {"available": False}
    probe = _NCU_PROBE.format(cwd=os.getcwd(), config=case["config"], entry=entry, seed=case["seed"],
                              scale=case["sm_scale"])
    # --clock-control none: measure the clocks as they are (ncu would otherwise lock them to base).
    command = [ncu, "--csv", "--clock-control", "none", "--section", "SpeedOfLight", "--launch-count", "3",
               sys.executable, "-c", probe]
    if kernels:  # profile the candidate's launches, not the elementwise kernels that build the inputs
        command[1:1] = ["--kernel-name", "regex:^(" + "|".join(re.escape(k) for k in kernels) + ")"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": True, "error": f"{type(exc).__name__}: {exc}"}
    rows = [line for line in done.stdout.splitlines() if line.startswith('"')]
    return {"available": True, "returncode": done.returncode, "csv": rows[:40],
            "stderr_tail": done.stderr[-500:] if done.returncode else ""}

