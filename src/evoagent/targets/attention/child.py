"""Functions that run INSIDE the sandbox child: import the candidate, trace, compile, run and time it.

Nothing here decides a verdict. Each function returns raw facts (outputs at sampled rows, inputs
after the call, the torch operations the wrapper ran, launch counts, timings) to the trusted
process, which rebuilds the inputs itself and judges. The timing functions are captured when this
module is imported, before any candidate code runs, and checked again after it ran.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import importlib.util
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..._forkserver import is_out_of_memory
from ...untrusted.triton_mode import ensure_triton_mode as _ensure_triton_mode
from . import cuda_build
from .reference import make_inputs
from .suites import AttentionConfig
from .target_view import TARGET_ARCH_ENV, arch_capability, target_view

# Captured before the candidate is imported (the sandbox imports this module to find the function).
_perf_counter = time.perf_counter
_synchronize = torch.cuda.synchronize
_Event = torch.cuda.Event
_event_record = torch.cuda.Event.record
_event_elapsed = torch.cuda.Event.elapsed_time
_TIMERS: dict[str, Callable[[], Any]] = {
    "time.perf_counter": lambda: time.perf_counter,
    "torch.cuda.synchronize": lambda: torch.cuda.synchronize,
    "torch.cuda.Event": lambda: torch.cuda.Event,
    "torch.cuda.Event.record": lambda: torch.cuda.Event.record,
    "torch.cuda.Event.elapsed_time": lambda: torch.cuda.Event.elapsed_time,
}
_ORIGINAL_TIMERS = {name: get() for name, get in _TIMERS.items()}
_cuda_is_available = torch.cuda.is_available

_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

class _Launches:
    """Counts Triton launches and marks when one is in progress (its own tensor ops are not the wrapper's)."""

    depth = 0
    count = 0
    kernels: collections.Counter[str] = collections.Counter()
    host_calls: collections.Counter[str] = collections.Counter()  # CUDA candidates' host functions (cuda_build)
    captured: list[tuple[Any, tuple[Any, ...], dict[str, Any], dict[str, Any] | None, Any]] = []
    autotune: dict[str, Any] | None = None  # the autotune config being launched, while one is
    autotune_calls = 0
    view_arch: str | None = None  # the target the candidate sees, when this child has no GPU


def _count_cuda_call(name: str) -> None:
    """A call of a CUDA candidate's host function (cuda_build.Extension) counts as a launch."""
    _Launches.count += 1
    _Launches.host_calls[name] += 1


cuda_build.CALL_HOOKS.append(_count_cuda_call)


def _kernel_name(fn: Any) -> str:
    inner = getattr(fn, "fn", fn)
    return str(getattr(inner, "__name__", type(fn).__name__))


def _install_launch_hooks(*, capture: bool, interpret: bool, every_config: bool = True,
                          real_autotune: bool = False) -> None:
    """Wraps Triton's launch entry points: count (and run) launches, or only capture them.

    Capturing, the autotuner launches every config that survives pruning (`every_config`, for the static
    report) or only the first (a launch plan); with `real_autotune` it is left as it is (on a GPU, after
    a real call has tuned and cached its choice, so the capture records the chosen config)."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for cls in (JITFunction, InterpretedFunction):
        original = cls.run

        def run(self: Any, *args: Any, grid: Any, warmup: bool, __original: Any = original, **kwargs: Any) -> Any:
            if capture:
                _Launches.captured.append((self, _snapshot(args), _snapshot(kwargs), _Launches.autotune, grid))
                return None
            if not warmup:
                _Launches.count += 1
                _Launches.kernels[_kernel_name(self)] += 1
            _Launches.depth += 1
            try:
                return __original(self, *args, grid=grid, warmup=warmup, **kwargs)
            finally:
                _Launches.depth -= 1

        cls.run = run
    if (capture or interpret) and not real_autotune:  # no benchmarking without a GPU
        Autotuner.run = _autotune_without_timing(every_config=capture and every_config)


def _autotune_without_timing(*, every_config: bool) -> Callable[..., Any]:
    """Autotuner.run as autotuning does it (pruning, each config's pre_hook), minus the timing.

    The capture launches every config that survives `prune_configs_by` (each is compiled and
    reported); the interpreter runs the first of them, the config the static report's rule names.
    """
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.nargs = dict(zip(self.arg_names, args))
        configs = self.prune_configs(kwargs) if len(self.configs) > 1 else list(self.configs)
        _Launches.autotune_calls += 1
        result = None
        for index, config in enumerate(configs if every_config else configs[:1]):
            if config.pre_hook is not None:
                config.pre_hook({**self.nargs, **kwargs, **config.all_kwargs()})
            _Launches.autotune = {"config": describe_config(config), "index": index, "count": len(configs),
                                  "call": _Launches.autotune_calls}
            try:
                result = self.fn.run(*args, **kwargs, **config.all_kwargs())
            finally:
                _Launches.autotune = None
        self.nargs = None
        return result
    return run


def describe_config(config: Any) -> str:
    """A triton.Config as 'BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3'."""
    parts = [f"{k}={v}" for k, v in config.kwargs.items()]
    parts += [f"num_warps={config.num_warps}", f"num_stages={config.num_stages}"]
    if getattr(config, "num_ctas", 1) not in (None, 1):
        parts.append(f"num_ctas={config.num_ctas}")
    if getattr(config, "maxnreg", None) is not None:
        parts.append(f"maxnreg={config.maxnreg}")
    return ", ".join(parts)


def _snapshot(values: Any) -> Any:
    """Launch arguments as they are now: a pre_hook changes host tensor descriptors in place."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    def one(x: Any) -> Any:
        if isinstance(x, TensorDescriptor):
            clone = copy.copy(x)
            clone.block_shape = list(x.block_shape)
            return clone
        return x

    if isinstance(values, dict):
        return {k: one(v) for k, v in values.items()}
    return tuple(one(v) for v in values)


def _candidate_view() -> contextlib.AbstractContextManager[Any]:
    """The target's view of the device (target_view) when this child has no GPU, else nothing."""
    if _Launches.view_arch is None:
        return contextlib.nullcontext()
    return target_view(_Launches.view_arch, passthrough=lambda: _Launches.depth > 0)


_UNINITIALISED = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})


class _OpTrace(TorchDispatchMode):
    """Records the aten operations the wrapper runs outside Triton launches.

    It also fills every floating-point tensor the wrapper allocates uninitialised (`torch.empty`,
    `empty_like`, `new_empty`...) with NaN, so output a kernel never writes reads as NaN whatever the
    allocator hands back (freshly mapped pages would read as zeros). Only in the test stage: the
    timed calls never run under this mode.
    """

    def __init__(self, *, poison: bool = True) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: collections.Counter[str] = collections.Counter()
        self.cross_device: list[str] = []
        self.poison = poison

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if _Launches.depth == 0:
            name = func._overloadpacket.__name__
            self.ops[name] += 1
            if name in ("_to_copy", "copy_"):
                self._check_devices(name, args, kwargs)
            if name in _UNINITIALISED and self.poison:
                out = func(*args, **kwargs)
                if isinstance(out, torch.Tensor) and out.is_floating_point():
                    out.fill_(float("nan"))  # the mode is off inside its own handler: not recorded
                return out
        return func(*args, **kwargs)

    def _check_devices(self, name: str, args: Any, kwargs: Any) -> None:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        devices = {str(t.device) for t in tensors}
        if "device" in kwargs and kwargs["device"] is not None:
            devices.add(str(torch.device(kwargs["device"])))
        if len(devices) > 1:
            self.cross_device.append(f"{name} between {sorted(devices)}")


def _prepare(interpret: bool, triton_cache: str | None, view_arch: str | None = None) -> None:
    """Triton's mode and cache; without a GPU, the target the candidate sees ($EVOAGENT_TARGET_ARCH)."""
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    if triton_cache:
        os.environ["TRITON_CACHE_DIR"] = triton_cache
    _ensure_triton_mode(interpret)
    if _cuda_is_available():
        _Launches.view_arch = None
    else:
        _Launches.view_arch = view_arch or os.environ.get(TARGET_ARCH_ENV) or "sm_90a"


def load_candidate(entry: str) -> Any:
    """Imports the candidate's file from the working directory, inside the target view (any target's child)."""
    name = os.path.splitext(os.path.basename(entry))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.getcwd(), entry))
    assert spec is not None and spec.loader is not None  # Check internal correctness.
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with _candidate_view():
        spec.loader.exec_module(module)
    return module


def _import_candidate(entry: str) -> Any:
    module = load_candidate(entry)
    if not callable(getattr(module, "attention", None)):
        raise AttributeError(f"{entry} defines no callable 'attention'")
    return module


def _device(interpret: bool) -> str:
    return "cuda" if _cuda_is_available() and not interpret else "cpu"


def _inputs(config: AttentionConfig, seed: int, device: str) -> tuple[torch.Tensor, ...]:
    dtype = _TORCH_DTYPES[config.dtype]
    return tuple(torch.from_numpy(x).to(device=device, dtype=dtype) for x in make_inputs(config, seed))


def _error_text(exc: BaseException, entry: str) -> str:
    """The exception and the innermost frames in the candidate's file (line numbers an agent can use)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.basename(f.filename) == entry]
    where = "".join(f"\n  {entry} line {f.lineno}, in {f.name}: {f.line}" for f in frames[-3:])
    return f"{type(exc).__name__}: {str(exc).strip()[:1500]}{where}"


def _rows(t: torch.Tensor, rows: np.ndarray, head_div: int = 1) -> np.ndarray:
    index = torch.as_tensor(rows, device=t.device)
    picked = t[index[:, 0], index[:, 1] // head_div, index[:, 2]]
    return picked.detach().to(device="cpu", dtype=torch.float32).numpy()


def _storage_span(t: torch.Tensor) -> tuple[int, int]:
    start = t.untyped_storage().data_ptr()
    return start, start + t.untyped_storage().nbytes()


def _aliases(out: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> bool:
    if out.device.type == "meta":
        return False
    lo, hi = _storage_span(out)
    return any(lo < b and a < hi for a, b in (_storage_span(t) for t in inputs))


def _call(module: Any, config: AttentionConfig, inputs: tuple[torch.Tensor, ...], sm_scale: float) -> Any:
    q, k, v = inputs
    with _candidate_view():
        return module.attention(q, k, v, causal=config.causal, sm_scale=sm_scale)


def _describe_output(out: Any, config: AttentionConfig, inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    if not isinstance(out, torch.Tensor):
        return {"output_type": type(out).__name__}
    return {"output_type": "Tensor", "shape": list(out.shape), "dtype": str(out.dtype).replace("torch.", ""),
            "device": out.device.type, "aliases_input": _aliases(out, inputs)}


def run_cases(entry: str, cases: list[dict[str, Any]], interpret: bool, triton_cache: str | None = None
              ) -> dict[str, Any]:
    """Runs the candidate on each case; returns sampled output rows, inputs after, ops and launches.

    A case is {"config": dict, "seed": int, "sm_scale": float, "rows": int64 (R, 3)}. Outputs stay
    alive until every case ran, so no call can reuse an earlier output's memory, and rows are read
    only at the end (an output buffer shared between calls shows as the last call's data).
    """
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = _device(interpret)
    results: list[dict[str, Any]] = []
    kept: list[tuple[Any, tuple[torch.Tensor, ...], np.ndarray, int]] = []
    for case in cases:
        config = AttentionConfig.from_dict(case["config"])
        inputs = _inputs(config, case["seed"], device)
        trace, launches_before = _OpTrace(), _Launches.count
        started = _perf_counter()
        try:
            with trace:
                out = _call(module, config, inputs, case["sm_scale"])
            if device == "cuda":
                _synchronize()
        except Exception as exc:  # the candidate's failure is data
            results.append({"error": _error_text(exc, entry), "oom": is_out_of_memory(exc)})
            kept.append((None, inputs, case["rows"], 1))
            continue
        results.append({
            **_describe_output(out, config, inputs), "seconds": _perf_counter() - started,
            "launches": _Launches.count - launches_before, "ops": dict(trace.ops),
            "cross_device": trace.cross_device,
        })
        kept.append((out, inputs, case["rows"], config.heads_q // config.heads_kv))
    for result, (out, inputs, rows, group) in zip(results, kept):
        if "error" in result:
            continue
        if result["output_type"] == "Tensor" and result["shape"] == list(inputs[0].shape):
            result["out_rows"] = _rows(out, rows)
        result["q_rows"] = _rows(inputs[0], rows)
        result["k_rows"] = _rows(inputs[1], rows, group)
        result["v_rows"] = _rows(inputs[2], rows, group)
    hosts = {f"{name}() (CUDA host function)": n for name, n in _Launches.host_calls.items()}
    launched = dict(_Launches.kernels) | hosts
    return {"cases": results, "kernels": launched, "timers_changed": timers_changed()}


def capture_plans(entry: str, cases: list[dict[str, Any]], interpret: bool,
                  triton_cache: str | None = None) -> dict[str, Any]:
    """Calls the wrapper once per case with Triton's launches recorded instead of run; returns each call's plan.

    A case is {"config": dict, "seed": int, "sm_scale": float}. The plan (`untrusted.plans`) is data the
    trusted side checks and replays itself; the wrapper's torch operations are reported as in `run_cases`.
    On a GPU each case is first run for real (the autotuner tunes and caches its choice, untimed by us),
    then captured, and every distinct launch is compiled for this GPU (cubin and metadata, for the replay).
    """
    from ...untrusted.plans import Allocations, PlanError, kernel_globals

    _prepare(interpret, triton_cache)
    device = _device(interpret)
    if device == "cuda":  # a real call first, so that autotuning has chosen before the capture
        _install_launch_hooks(capture=False, interpret=False)
        module = _import_candidate(entry)
        for case in cases:
            config = AttentionConfig.from_dict(case["config"])
            with contextlib.suppress(Exception):  # a failing wrapper fails the same way in the capture below
                _call(module, config, _inputs(config, case["seed"], device), case["sm_scale"])
    _install_launch_hooks(capture=True, interpret=interpret, every_config=False, real_autotune=device == "cuda")
    module = module if device == "cuda" else _import_candidate(entry)
    results: list[dict[str, Any]] = []
    kernels: dict[str, Any] = {}
    binaries: dict[str, Any] | None = {} if device == "cuda" else None
    for case in cases:
        config = AttentionConfig.from_dict(case["config"])
        inputs = _inputs(config, case["seed"], device)
        trace, allocations = _OpTrace(poison=False), Allocations()
        del _Launches.captured[:]
        try:
            with allocations, trace:
                out = _call(module, config, inputs, case["sm_scale"])
            plan = _plan(dict(zip("qkv", inputs)), out, allocations, kernels, binaries)
        except PlanError as exc:
            results.append({"plan_error": str(exc), "ops": dict(trace.ops)})
            continue
        except Exception as exc:  # the candidate's failure is data
            results.append({"error": _error_text(exc, entry), "oom": is_out_of_memory(exc)})
            continue
        results.append({**_describe_output(out, config, inputs), "plan": plan, "ops": dict(trace.ops),
                        "cross_device": trace.cross_device})
    values = {name: v for fn in kernels.values() for name, v in kernel_globals(fn).items()}
    report: dict[str, Any] = {"cases": results, "globals": values, "timers_changed": timers_changed()}
    if binaries is not None:
        report["binaries"] = binaries
    return report


def _plan(inputs: dict[str, torch.Tensor], out: Any, allocations: Any, kernels: dict[str, Any],
          binaries: dict[str, Any] | None) -> dict[str, Any]:
    """The recorded launches of one call as a plan (see `untrusted.plans`); on a GPU each launch names its
    compiled binary (`_binary`)."""
    from ...untrusted.plans import PlanError, Spans, bound_arguments, describe_argument, launch_grid, output_layout

    spans = Spans(inputs, out if isinstance(out, torch.Tensor) else None, allocations)
    layout = output_layout(out, spans)
    launches: list[dict[str, Any]] = []
    for fn, args, kwargs, _tune, grid in _Launches.captured:
        name = _kernel_name(fn)
        if kernels.setdefault(name, fn) is not fn:
            raise PlanError(f"two different kernels are named {name!r}; give each @triton.jit function its own name")
        if getattr(fn.fn, "__qualname__", name) != name:
            raise PlanError(f"kernel {name!r} is not a module-level @triton.jit function; define kernels at "
                            "module level (a replay defines them from the file alone)")
        named, options = bound_arguments(fn, args, kwargs)
        launch = {"kernel": name, "grid": launch_grid(grid, named),
                  "args": {k: describe_argument(k, v, spans, name) for k, v in named.items()},
                  "options": {k: v for k, v in options.items() if isinstance(v, (bool, int, float, str))}}
        if binaries is not None:
            launch["binary"] = _binary(fn, args, kwargs, binaries)
        launches.append(launch)
    if not launches:
        raise PlanError("attention() launched no Triton kernel; the work must be done by @triton.jit kernels "
                        "defined in the file (launched as kernel[grid](...))")
    buffers = {name: info for name, info in spans.buffers.items()
               if name == layout["buffer"] or any(a.get("buffer") == name for launch in launches
                                                  for a in launch["args"].values())}
    return {"launches": launches, "buffers": buffers, "output": layout}


def _binary(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], binaries: dict[str, Any]) -> str:
    """Compiles one launch for this GPU (once per kernel and specialisation); returns its key in `binaries`.

    A binary is data for the trusted replay: the cubin, Triton's metadata and the kernel's signature."""
    from ...untrusted.plans import binary_record

    key = f"{_kernel_name(fn)}:{_launch_key(fn, args, kwargs)}"
    if key not in binaries:
        major, minor = torch.cuda.get_device_capability()
        binaries[key] = binary_record(_compile(fn, args, kwargs, major * 10 + minor))
    return key


def _compile(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], capability: int) -> Any:
    """Triton's compile of one launch ahead of time, specialised as `JITFunction.run` would specialise it."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("cuda", capability, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = {**kwargs, "debug": kwargs.get("debug", fn.debug) or knobs.runtime.debug}
    for knob in ("instrumentation_mode", "fpsan_homomorphic_casts"):  # as JITFunction.run adds them
        if hasattr(knobs.compilation, knob):
            kwargs[knob] = getattr(knobs.compilation, knob)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    return triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)


def timers_changed() -> list[str]:
    """The timing functions that are no longer the ones captured before the candidate was imported."""
    return [name for name, get in _TIMERS.items() if get() is not _ORIGINAL_TIMERS[name]]


# --- static compile (no GPU needed) -----------------------------------------------------------


def compile_launches(entry: str, configs: list[dict[str, Any]], archs: list[str],
                     triton_cache: str | None = None) -> dict[str, Any]:
    """Captures the kernels the wrapper launches for each config and compiles them for each arch.

    Nothing is launched: Triton's launch entry point is replaced by a recorder and each distinct
    launch is compiled ahead of time. With a GPU the wrapper gets small real CUDA tensors; without
    one it gets host tensors inside the arch's target view (target_view), and the candidate is
    imported once per arch, so that import-time target queries see the arch being compiled.
    Every autotune config that survives pruning is captured (after its pre_hook) and compiled.
    """
    _prepare(False, triton_cache)
    _install_launch_hooks(capture=True, interpret=False)
    on_gpu = _Launches.view_arch is None
    wrapper_errors: list[dict[str, Any]] = []
    compiled: list[dict[str, Any]] = []
    kernels_defined: set[str] = set()
    for arch in archs:
        arch_capability(arch)  # a clear error for an unknown name, before any candidate code runs
        _Launches.view_arch = None if on_gpu else arch
        module = _import_candidate(entry)
        kernels_defined |= set(_jit_functions(module))
        launches = _capture(module, entry, configs, "cuda" if on_gpu else "cpu", arch, wrapper_errors)
        compiled += [_compile_one(module, entry, name, fn, args, kwargs, arch) | {"autotune": tune}
                     for name, fn, args, kwargs, tune in launches]
    unique_errors = list({(e["config"], e["error"]): e for e in wrapper_errors}.values())
    return {"launches": compiled, "wrapper_errors": unique_errors, "kernels_defined": sorted(kernels_defined)}


def _capture(module: Any, entry: str, configs: list[dict[str, Any]], device: str, arch: str,
             wrapper_errors: list[dict[str, Any]]) -> list[tuple[str, Any, Any, Any, Any]]:
    """The distinct launches the wrapper makes for each config: (config name, kernel, args, kwargs, autotune)."""
    launches, seen = [], set()
    for data in configs:
        config = AttentionConfig.from_dict(data)
        dtype = _TORCH_DTYPES[config.dtype]
        q = torch.empty(config.q_shape, dtype=dtype, device=device)
        k, v = (torch.empty(config.kv_shape, dtype=dtype, device=device) for _ in range(2))
        del _Launches.captured[:]
        try:
            _call(module, config, (q, k, v), config.head_dim ** -0.5)
        except Exception as exc:
            wrapper_errors.append({"config": config.name, "arch": arch, "error": _error_text(exc, entry),
                                   "oom": is_out_of_memory(exc)})
        for fn, args, kwargs, tune, _grid in _Launches.captured:
            key = (_kernel_name(fn), _launch_key(fn, args, kwargs))
            if key not in seen:
                seen.add(key)
                launches.append((config.name, fn, args, kwargs, tune))
    return launches


def _launch_key(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What one compile depends on: constexprs and launch options by value, other arguments by how
    Triton specialises them (dtype and 16-byte alignment; ints equal to 1, divisible by 16, 32-bit)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    by_value = {p.name for p in fn.params if p.is_constexpr} | {k for k in kwargs if k not in fn.arg_names}
    named = {**dict(zip(fn.arg_names, args)), **kwargs}

    def describe(name: str, x: Any) -> str:
        if name in by_value:
            return repr(x)
        if isinstance(x, TensorDescriptor):  # specialised on dtype and block shape, like a launch
            return f"D[{x.base.dtype},{list(x.block_shape)},{x.padding}]"
        if isinstance(x, torch.Tensor):
            return f"T[{x.dtype},{x.data_ptr() % 16 == 0}]"
        if isinstance(x, int) and not isinstance(x, bool):
            return f"i[{x == 1},{x % 16 == 0},{abs(x) < 2**31}]"
        return repr(x)

    return repr(sorted((name, describe(name, value)) for name, value in named.items()))


def _jit_functions(module: Any) -> dict[str, Any]:
    from triton.runtime.jit import JITFunction

    return {name: value for name, value in vars(module).items() if isinstance(value, JITFunction)}


def _compile_one(module: Any, entry: str, config_name: str, fn: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any], arch: str) -> dict[str, Any]:
    record: dict[str, Any] = {"kernel": _kernel_name(fn), "config": config_name, "arch": arch}
    started = _perf_counter()
    try:
        kernel = _compile(fn, args, kwargs, arch_capability(arch))
    except Exception as exc:
        record.update(ok=False, seconds=_perf_counter() - started, oom=is_out_of_memory(exc),
                      **_compile_error(exc, module, entry),
                      skippable=_autotune_skips(exc))
        return record
    meta = kernel.metadata
    record.update(
        ok=True, seconds=_perf_counter() - started, shared_bytes=int(meta.shared),
        num_warps=int(meta.num_warps), num_stages=int(getattr(meta, "num_stages", 0)),
        tmem_bytes=int(getattr(meta, "tmem_size", 0) or 0), cubin=bytes(kernel.asm["cubin"]),
        ptx=str(kernel.asm["ptx"]), blocks=_block_sizes(fn, args, kwargs),
    )
    return record


def _block_sizes(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, int]:
    """The launch's integer constexprs named BLOCK_* (tile sizes), e.g. {"BLOCK_M": 128, "BLOCK_N": 64}."""
    named = {**dict(zip(fn.arg_names, args)), **kwargs}
    return {p.name: int(named[p.name]) for p in fn.params
            if p.is_constexpr and p.name.startswith("BLOCK") and isinstance(named.get(p.name), int)
            and not isinstance(named.get(p.name), bool)}


def _autotune_skips(exc: BaseException) -> bool:
    """Whether Triton's autotuner skips a config that fails this way (it re-raises anything else)."""
    chain: BaseException | None = exc
    while chain is not None:
        if type(chain).__name__ in ("OutOfResources", "CompileTimeAssertionFailure", "PTXASError"):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _def_line(jit_fn: Any) -> int:
    """The file line of the kernel's `def` (after its decorators)."""
    offset = next((i for i, text in enumerate(jit_fn.raw_src) if text.strip().startswith("def ")), 0)
    return int(jit_fn.starting_line_number) + offset


def _compile_error(exc: BaseException, module: Any, entry: str) -> dict[str, Any]:
    """The error text and, for errors in kernel code, the line in the candidate's file."""
    from triton.compiler.errors import CompilationError

    innermost, chain = None, exc  # type: tuple[Any, BaseException | None]
    while chain is not None:
        if isinstance(chain, CompilationError):
            innermost = chain
        chain = chain.__cause__ or chain.__context__
    if innermost is None or not hasattr(innermost.node, "lineno"):
        return {"error": _error_text(exc, entry), "line": None}
    line = None
    for jit_fn in _jit_functions(module).values():
        if jit_fn.src == innermost.src:
            line = _def_line(jit_fn) + innermost.node.lineno - 1
    message = (innermost.error_message or type(innermost).__name__).strip()
    return {"error": message[:2000], "line": line, "excerpt": str(innermost)[:2000]}
