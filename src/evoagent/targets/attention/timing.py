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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from . import child
from .child import _call, _device, _import_candidate, _inputs, _install_launch_hooks, _prepare
from .reference import input_slice
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
    """Refills the inputs in place before every timed repetition (same tensors, new values), so that a
    candidate that memoises by tensor identity or pointer, or skips repeated work, returns wrong outputs.

    Repetition r's values at the (batch, head) slices the sampled rows read come from
    `input_slice(config, rep_seeds[r], ...)`, which the trusted side rebuilds to check that
    repetition's rows; the other slices get fresh device-random values (`refresh_seed`). Every
    repetition is equally checkable, and the child is not told which ones will be checked. The
    slices are built on host threads a few repetitions ahead (numpy fills without the GIL).
    """

    def __init__(self, inputs: tuple[torch.Tensor, ...], config: AttentionConfig, case: dict[str, Any],
                 device: str) -> None:
        self.inputs, self.config = inputs, config
        self.seeds = [int(s) for s in case["rep_seeds"]]
        rows = np.asarray(case["rows"])
        group = config.heads_q // config.heads_kv
        pairs_q = sorted({(int(b), int(h)) for b, h, _ in rows})
        pairs_kv = sorted({(b, h // group) for b, h in pairs_q})
        self.slices = (("q", pairs_q), ("k", pairs_kv), ("v", pairs_kv))
        self.partial = len(pairs_q) < config.batch * config.heads_q  # slices no sampled row reads
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(case["refresh_seed"]))
        self.ahead = min(8, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.ahead)
        self.pending = {r: self.pool.submit(self._build, r) for r in range(min(self.ahead, len(self.seeds)))}

    def _build(self, rep: int) -> list[list[torch.Tensor]]:
        dtype = self.inputs[0].dtype
        return [[torch.from_numpy(input_slice(self.config, self.seeds[rep], name, b, h)).to(dtype) for b, h in pairs]
                for name, pairs in self.slices]

    def __call__(self, rep: int) -> None:
        built = self.pending.pop(rep).result()
        if rep + self.ahead < len(self.seeds):
            self.pending[rep + self.ahead] = self.pool.submit(self._build, rep + self.ahead)
        for tensor, (_, pairs), values in zip(self.inputs, self.slices, built):
            if self.partial:
                tensor.normal_(generator=self.generator)
            for (b, h), value in zip(pairs, values):
                tensor[b, h].copy_(value)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class _Sampler:
    """Keeps the sampled rows of every timed repetition's output (a small gather on the device, queued
    after the repetition's end event, so it is never timed); `rows()` brings them to the host at the end."""

    def __init__(self, rows: np.ndarray, shape: tuple[int, ...], device: str) -> None:
        self.index = torch.as_tensor(np.asarray(rows), device=device)
        self.shape = tuple(shape)
        self.kept: list[torch.Tensor | None] = []

    def __call__(self, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != self.shape:
            self.kept.append(None)
            return
        index = self.index.to(out.device)
        self.kept.append(out.detach()[index[:, 0], index[:, 1], index[:, 2]])

    def rows(self) -> list[np.ndarray | None]:
        return [None if t is None else t.to(device="cpu", dtype=torch.float32).numpy() for t in self.kept]


def _time_interleaved(impls: dict[str, Callable[[], Any]], reps: int, refresh: _Refresher, sample: _Sampler
                      ) -> tuple[dict[str, list[float]], float]:
    """Per-implementation CUDA-event times (ms); each repetition refreshes the inputs, then runs every
    implementation once, in a rotating order, after zeroing a buffer twice the L2's size. The
    candidate's output rows are sampled after its end event, outside the timed interval."""
    flush = _flush_buffer()
    names = list(impls)
    events = {n: [(_timing_event(), _timing_event()) for _ in range(reps)] for n in names}
    child._synchronize()
    started = child._perf_counter()
    for rep in range(reps):
        refresh(rep)
        for i in range(len(names)):
            name = names[(rep + i) % len(names)]
            flush.zero_()
            start, end = events[name][rep]
            child._event_record(start)
            out = impls[name]()
            child._event_record(end)
            if name == "candidate":
                sample(out)
            del out
    child._synchronize()
    region_s = child._perf_counter() - started
    times = {n: [float(child._event_elapsed(s, e)) for s, e in events[n]] for n in names}
    return times, region_s


def _time_wall(fn: Callable[[], Any], reps: int, refresh: _Refresher, sample: _Sampler) -> tuple[list[float], float]:
    times, started = [], child._perf_counter()
    for rep in range(reps):
        refresh(rep)
        t0 = child._perf_counter()
        out = fn()
        times.append((child._perf_counter() - t0) * 1e3)
        sample(out)
        del out
    return times, child._perf_counter() - started


def benchmark(entry: str, cases: list[dict[str, Any]], warmup: int, interpret: bool,
              triton_cache: str | None = None, baselines: bool = True) -> dict[str, Any]:
    """Times the candidate (and baselines on a GPU) per case; returns raw times and every timed output's rows.

    A case is {"config": dict, "seed": int, "sm_scale": float, "rows": int64 (R, 3), "rep_seeds": [int]
    (one per repetition), "refresh_seed": int}: warm-up calls see the inputs of `seed`; timed
    repetition r sees new values in the same tensors (`_Refresher`), those of `rep_seeds[r]` where
    the sampled rows read. `rep_rows[r]` is repetition r's output at `rows` (None if it returned no
    tensor of q's shape); the trusted side decides afterwards which of them to check.
    """
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = _device(interpret)
    results = []
    for case in cases:
        results.append(_bench_case(module, case, warmup, device, baselines))
        if device == "cuda":
            torch.cuda.empty_cache()
    return {"results": results, "timers_changed": child.timers_changed(), "device": device_name()}


def _bench_case(module: Any, case: dict[str, Any], warmup: int, device: str,
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
    refresh = _Refresher(inputs, config, case, device)
    sample = _Sampler(case["rows"], config.q_shape, device)
    try:
        if device == "cuda":
            times, region_s = _time_interleaved(impls, len(case["rep_seeds"]), refresh, sample)
        else:
            candidate_times, region_s = _time_wall(impls["candidate"], len(case["rep_seeds"]), refresh, sample)
            times = {"candidate": candidate_times}
    finally:
        refresh.close()
    return {"config": config.name, "times_ms": times, "errors": errors, "region_s": region_s,
            "rep_rows": sample.rows()}


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

