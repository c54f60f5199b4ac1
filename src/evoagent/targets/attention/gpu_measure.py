"""Trusted side of the attention target on a GPU: replays launch plans, times them, checks every repetition.

`replay_on_gpu` runs in a sandboxed GPU call that is given no candidate file: it loads the candidate's
compiled kernels (`trusted.gpu_launch`), fills inputs it allocated with fresh random values every
repetition, keeps pristine host copies, and times each repetition with its own CUDA events after a GPU
spin (`torch.cuda._sleep`), so the host's launch work is queued before the start event and never inside
the interval. After each repetition has ended it draws, from OS entropy, the output rows to check and
copies them out; the reference is computed on the host in fp64 (never on the device, where the kernels
could read it). Baselines (PyTorch SDPA backends, flash-attn when present) run after the candidate in
each repetition, so no library answer for the same inputs exists while candidate kernels run.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...trusted.gpu_launch import LoadedKernels, PlanBuffers, launch_plan, use_torch_allocator
from .reference import compare
from .suites import AttentionConfig

_TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
SLEEP_CYCLES = 2_000_000  # ~1 ms at H100 clocks: the host enqueues start, launches and end meanwhile
ROWS_PER_SLICE = 24
SLICES_PER_REP = 2


def replay_on_gpu(binaries: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], baselines: bool) -> dict[str, Any]:
    """Per job: {"times_ms": {impl: [...]}, "errors": {...}, "region_s", "failure": None | {kind, reason}}.

    A job is {"plan": dict, "config": dict, "sm_scale": float, "warmup": int, "reps": int, "rows": int
    (rows checked per slice; 0 for the default)}.
    """
    use_torch_allocator()
    kernels = LoadedKernels(binaries)
    return {"results": [_job(kernels, job, baselines) for job in jobs], "device": torch.cuda.get_device_name(0)}


def _job(kernels: LoadedKernels, job: Mapping[str, Any], baselines: bool) -> dict[str, Any]:
    config = AttentionConfig.from_dict(job["config"])
    dtype = _TORCH[config.dtype]
    q = torch.empty(config.q_shape, dtype=dtype, device="cuda")
    k, v = (torch.empty(config.kv_shape, dtype=dtype, device="cuda") for _ in range(2))
    buffers = PlanBuffers(job["plan"], {"q": q, "k": k, "v": v})
    generator = torch.Generator(device="cuda")
    generator.manual_seed(int.from_bytes(os.urandom(8), "little"))
    secret = np.random.default_rng()  # OS entropy: which rows are checked, drawn after each repetition
    impls = _baselines(config, (q, k, v), float(job["sm_scale"])) if baselines else {}
    flush = torch.empty(max(2 * getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20), 64 << 20),
                        dtype=torch.int8, device="cuda")
    times: dict[str, list[float]] = {"candidate": []}
    errors: dict[str, str] = {}
    checks: list[tuple[int, Any]] = []
    warmup, reps = int(job["warmup"]), int(job["reps"])
    started = time.perf_counter()
    for rep in range(warmup + reps):
        for tensor in (q, k, v):
            tensor.normal_(generator=generator)
        host = tuple(t.cpu() for t in (q, k, v))  # pristine values, copied before any candidate launch
        buffers.reset()
        elapsed = _timed(lambda: launch_plan(kernels, buffers), flush)
        checks.append((rep, _sample(config, buffers.output(), (q, k, v), host, secret, int(job.get("rows", 0)))))
        buffers.raw[job["plan"]["output"]["buffer"]].fill_(0xFF)  # no later launch can read this answer
        if rep >= warmup:
            times["candidate"].append(elapsed)
        for name in list(impls):
            try:
                value = _timed(impls[name], flush)
            except Exception as exc:  # a baseline this machine lacks: reported, never the candidate's fault
                errors[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                del impls[name]
                continue
            if rep >= warmup:
                times.setdefault(name, []).append(value)
    region_s = time.perf_counter() - started
    failure = next((f for f in (_verify(config, float(job["sm_scale"]), rep, sample) for rep, sample in checks) if f),
                   None)
    return {"times_ms": times, "errors": errors, "region_s": region_s, "failure": failure}


def _timed(fn: Callable[[], Any], flush: torch.Tensor) -> float:
    """One timed run: L2 flushed, the GPU held by a spin while the host queues the events and the work."""
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    flush.zero_()
    torch.cuda._sleep(SLEEP_CYCLES)  # type: ignore[no-untyped-call]
    start.record()
    out = fn()
    end.record()
    end.synchronize()
    del out
    return float(start.elapsed_time(end))


def _sample(config: AttentionConfig, out: torch.Tensor, inputs: tuple[torch.Tensor, ...],
            host: tuple[torch.Tensor, ...], secret: np.random.Generator, rows_per_slice: int) -> dict[str, Any]:
    """Rows of this repetition's output drawn now (after it ended), with the inputs they need, and whether the
    inputs were left as they were."""
    group = config.heads_q // config.heads_kv
    per_slice = rows_per_slice or ROWS_PER_SLICE
    picks = []
    for _ in range(SLICES_PER_REP):
        b, h = int(secret.integers(config.batch)), int(secret.integers(config.heads_q))
        n = np.unique(np.r_[config.seqlen - 1, secret.choice(config.seqlen, size=min(per_slice, config.seqlen),
                                                             replace=False)])
        picks.append((b, h, n))
    q, k, v = inputs
    changed = [name for name, now, before, div in (("q", q, host[0], 1), ("k", k, host[1], group),
                                                   ("v", v, host[2], group))
               if any(not torch.equal(now[b, h // div].cpu(), before[b, h // div]) for b, h, _ in picks)]
    return {"picks": [(b, h, n, out[b, h][torch.as_tensor(n, device=out.device)].float().cpu().numpy(),
                       host[0][b, h][torch.as_tensor(n)].double().numpy(), host[1][b, h // group].double().numpy(),
                       host[2][b, h // group].double().numpy()) for b, h, n in picks], "changed": changed}


def _verify(config: AttentionConfig, sm_scale: float, rep: int, sample: Mapping[str, Any]) -> dict[str, str] | None:
    where = f"config {config.name}, repetition {rep + 1}"
    if sample["changed"]:
        return {"kind": "illegal", "reason": f"{where}: the kernels modified their input {sample['changed'][0]}; "
                                             "inputs must be left unchanged"}
    for b, h, rows, got, q, k, v in sample["picks"]:
        scores = (q @ k.T) * sm_scale
        if config.causal:
            scores = np.where(np.arange(config.seqlen)[None, :] <= rows[:, None], scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        expected = (weights / weights.sum(axis=-1, keepdims=True)) @ v
        outcome = compare(got, expected, config.dtype)
        if not outcome.ok:
            row = int(rows[outcome.worst_index[0]]) if outcome.worst_index else int(rows[0])
            return {"kind": "incorrect", "reason": f"{where}: {outcome.reason}, at [batch {b}, head {h}, row {row}]"}
    return None


def _baselines(config: AttentionConfig, inputs: tuple[torch.Tensor, ...], sm_scale: float
               ) -> dict[str, Callable[[], Any]]:
    """The library attentions timed after the candidate (cuDNN, FLASH and EFFICIENT SDPA; flash-attn if present)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = inputs
    gqa = config.heads_q != config.heads_kv

    def sdpa(backend: Any) -> Callable[[], Any]:
        def run() -> Any:
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=config.causal,
                                                                        scale=sm_scale, enable_gqa=gqa)
        return run

    impls = {"sdpa-cudnn": sdpa(SDPBackend.CUDNN_ATTENTION), "sdpa-flash": sdpa(SDPBackend.FLASH_ATTENTION),
             "sdpa-efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION)}
    for name, module in (("flash-attn", "flash_attn"), ("flash-attn-3", "flash_attn_interface")):
        try:
            fn = __import__(module, fromlist=["flash_attn_func"]).flash_attn_func
        except Exception:
            continue

        def flash(fn: Any = fn) -> Any:  # (B, N, H, D) layout: the transposes are part of its time, as for a user
            return fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=config.causal,
                      softmax_scale=sm_scale)
        impls[name] = functools.partial(flash)
    return impls
