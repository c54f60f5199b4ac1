"""Functions that run INSIDE the candidate's sandbox child: import ModelNew, run it under the op trace, compile it.

Nothing here decides a verdict: outputs, inputs after the call, the torch operations the wrapper
ran and the launches go back to the trusted process, which compares them with the reference it
obtained from a process that never ran candidate code. The launch hooks, the op trace and the
target view are attention's (`targets/attention/child.py`): one trace for every kernel target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..._forkserver import is_out_of_memory
from ..attention.child import (
    _aliases,
    _candidate_view,
    _compile_one,
    _error_text,
    _install_launch_hooks,
    _jit_functions,
    _kernel_name,
    _launch_key,
    _Launches,
    _OpTrace,
    _perf_counter,
    _prepare,
    _synchronize,
    load_candidate,
    timers_changed,
)
from ..attention.target_view import arch_capability

ENTRY_CLASS = "ModelNew"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


def _import_candidate(entry: str) -> Any:
    module = load_candidate(entry)
    if not isinstance(getattr(module, ENTRY_CLASS, None), type):
        raise AttributeError(f"{entry} defines no class {ENTRY_CLASS!r}")
    return module


def _tensor(spec: dict[str, Any], device: str) -> Any:
    if "array" not in spec:
        return spec["value"]
    dtype = _DTYPES.get(spec["dtype"])
    array = np.asarray(spec["array"])
    return torch.from_numpy(array.copy()).to(device=device, dtype=dtype if dtype is not None else None)


def _build(module: Any, init_inputs: list[Any], state: dict[str, Any], device: str) -> Any:
    """ModelNew(*init_inputs) holding the reference's parameters and buffers (by state_dict name)."""
    with _candidate_view():
        model = getattr(module, ENTRY_CLASS)(*init_inputs)
    model = model.to(device) if device != "cpu" else model
    return _load_state(model, state)


def _load_state(model: Any, state: dict[str, Any]) -> Any:
    """Copies the reference's parameters and buffers into `model` by state_dict name (shapes must match)."""
    own = model.state_dict()
    missing = [name for name in state if name not in own]
    if missing:
        raise KeyError(f"ModelNew has no parameter or buffer {missing[0]!r} (the reference's state_dict names are "
                       f"{sorted(state)}; ModelNew's are {sorted(own)}): keep the reference's names")
    with torch.no_grad():
        for name, spec in state.items():
            value = _tensor(spec, "cpu")
            if tuple(own[name].shape) != tuple(value.shape):
                raise ValueError(f"ModelNew's {name} has shape {tuple(own[name].shape)}, the reference's "
                                 f"{tuple(value.shape)}")
            own[name].copy_(value.to(device=own[name].device, dtype=own[name].dtype))
    return model


def _outputs(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [o for v in value for o in _outputs(v)]
    return [value]


def _describe(out: Any, inputs: list[Any]) -> dict[str, Any]:
    if not isinstance(out, torch.Tensor):
        return {"output_type": type(out).__name__}
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    return {"output_type": "Tensor", "shape": list(out.shape), "dtype": str(out.dtype).replace("torch.", ""),
            "aliases_input": _aliases(out, tuple(tensors))}


def _array(t: torch.Tensor) -> np.ndarray:
    t = t.detach().to("cpu")
    return np.asarray((t.to(torch.float32) if t.dtype in (torch.float16, torch.bfloat16) else t).numpy().copy())


def run_cases(entry: str, cases: list[dict[str, Any]], interpret: bool, triton_cache: str | None = None
              ) -> dict[str, Any]:
    """Runs ModelNew on each case (inputs and state as the reference made them, sent by the trusted side).

    Returns per case: outputs (as arrays), their descriptions, the inputs after the call, the aten
    operations run outside kernels, and the launch count. Outputs stay alive until every case ran and
    are read at the end, so an output buffer reused between calls shows as the last call's data.
    """
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = "cuda" if torch.cuda.is_available() and not interpret else "cpu"
    results: list[dict[str, Any]] = []
    kept: list[tuple[list[Any], list[Any]]] = []
    models: dict[str, Any] = {}  # one ModelNew per constructor arguments: state kept between calls shows
    for case in cases:
        try:
            key = repr(case["init_inputs"])
            if key not in models:
                models[key] = _build(module, case["init_inputs"], {}, device)
            model = _load_state(models[key], case["state"])
        except Exception as exc:
            results.append({"error": _error_text(exc, entry), "oom": is_out_of_memory(exc), "stage": "build"})
            kept.append(([], []))
            continue
        inputs = [_tensor(spec, device) for spec in case["inputs"]]
        trace, launches_before = _OpTrace(), _Launches.count
        started = _perf_counter()
        try:
            with trace, torch.no_grad(), _candidate_view():
                out = model(*inputs)
            if device == "cuda":
                _synchronize()
        except Exception as exc:  # the candidate's failure is data
            results.append({"error": _error_text(exc, entry), "oom": is_out_of_memory(exc), "stage": "forward"})
            kept.append(([], inputs))
            continue
        outs = _outputs(out)
        results.append({"outputs_described": [_describe(o, inputs) for o in outs],
                        "seconds": _perf_counter() - started, "launches": _Launches.count - launches_before,
                        "ops": dict(trace.ops), "cross_device": trace.cross_device})
        kept.append((outs, inputs))
    for result, (outs, inputs) in zip(results, kept):
        if "error" in result:
            continue
        result["outputs"] = [_array(o) if isinstance(o, torch.Tensor) else None for o in outs]
        result["inputs_after"] = [_array(x) if isinstance(x, torch.Tensor) else None for x in inputs]
    hosts = {f"{name}() (CUDA host function)": n for name, n in _Launches.host_calls.items()}
    return {"cases": results, "kernels": dict(_Launches.kernels) | hosts, "timers_changed": timers_changed()}


def time_candidate(entry: str, init_inputs: list[Any], state: dict[str, Any], input_sets: list[list[Any]],
                   warmup: int, interpret: bool, triton_cache: str | None = None) -> dict[str, Any]:
    """Per-call times (ms) of ModelNew, one timed call per input set, by the clock captured before the import.

    Before each timed call the next set's values are copied into the SAME input tensors (untimed), and
    each call's outputs are kept and returned, so a memoised or skipped call shows as a wrong output.
    Interim: the trusted side's driven timing (#23) replaces this; until then the numbers are labelled as
    measured in the candidate's process (without a GPU no score is authoritative anyway).
    """
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = "cuda" if torch.cuda.is_available() and not interpret else "cpu"
    model = _build(module, init_inputs, state, device)
    inputs = [_tensor(spec, device) for spec in input_sets[0]]
    times, outputs = [], []
    with torch.no_grad(), _candidate_view():
        for _ in range(warmup):
            model(*inputs)
        for values in input_sets:
            for tensor, spec in zip(inputs, values):
                if isinstance(tensor, torch.Tensor):
                    tensor.copy_(_tensor(spec, device))
            if device == "cuda":
                _synchronize()
            start = _perf_counter()
            out = model(*inputs)
            if device == "cuda":
                _synchronize()
            times.append((_perf_counter() - start) * 1e3)
            outputs.append([_array(o) for o in _outputs(out) if isinstance(o, torch.Tensor)])
    return {"times_ms": times, "outputs": outputs, "timers_changed": timers_changed()}


# --- static compile (no GPU needed) -----------------------------------------------------------


def compile_launches(entry: str, shapes: list[dict[str, Any]], archs: list[str],
                     triton_cache: str | None = None) -> dict[str, Any]:
    """Captures the Triton kernels ModelNew.forward launches (on uninitialised inputs of each shape) and
    compiles each distinct launch for each arch, as attention's `compile_launches` does."""
    _prepare(False, triton_cache)
    _install_launch_hooks(capture=True, interpret=False)
    on_gpu = _Launches.view_arch is None
    device = "cuda" if on_gpu else "cpu"
    wrapper_errors: list[dict[str, Any]] = []
    compiled: list[dict[str, Any]] = []
    kernels_defined: set[str] = set()
    for arch in archs:
        arch_capability(arch)
        _Launches.view_arch = None if on_gpu else arch
        module = _import_candidate(entry)
        kernels_defined |= set(_jit_functions(module))
        seen: set[tuple[str, str]] = set()
        for shape in shapes:
            del _Launches.captured[:]
            try:
                model = _build(module, shape["init_inputs"], {}, device)
                inputs = [torch.empty(s["shape"], dtype=_DTYPES[s["dtype"]], device=device) if "shape" in s
                          else s["value"] for s in shape["inputs"]]
                with torch.no_grad(), _candidate_view():
                    model(*inputs)
            except Exception as exc:
                wrapper_errors.append({"config": shape["name"], "arch": arch, "error": _error_text(exc, entry),
                                       "oom": is_out_of_memory(exc)})
            for fn, args, kwargs, tune, _grid in _Launches.captured:
                key = (_kernel_name(fn), _launch_key(fn, args, kwargs))
                if key not in seen:
                    seen.add(key)
                    compiled.append(_compile_one(module, entry, shape["name"], fn, args, kwargs, arch)
                                    | {"autotune": tune})
    unique_errors = list({(e["config"], e["error"]): e for e in wrapper_errors}.values())
    return {"launches": compiled, "wrapper_errors": unique_errors, "kernels_defined": sorted(kernels_defined)}


def serve_candidate(entry: str, init_inputs: list[Any], state: dict[str, Any], interpret: bool,
                    triton_cache: str | None = None) -> dict[str, Any]:
    """The child of a driven benchmark: answers each request {"inputs": [...]} with ModelNew's outputs.

    The trusted driver (`measure.drive_candidate`) sends fresh inputs with every request and times the
    answer with its own clock; the first request's inputs are allocated once and later ones copied into
    the same tensors, so a result remembered by tensor identity is stale and fails the driver's check.
    """
    import importlib

    channel = importlib.import_module("evoagent.channel").Channel.from_environment()
    _prepare(interpret, triton_cache)
    _install_launch_hooks(capture=False, interpret=interpret)
    module = _import_candidate(entry)
    device = "cuda" if torch.cuda.is_available() and not interpret else "cpu"
    model = _build(module, init_inputs, state, device)
    inputs: list[Any] | None = None
    with torch.no_grad(), _candidate_view():
        while (request := channel.receive()) is not None:
            if inputs is None:
                inputs = [_tensor(spec, device) for spec in request["inputs"]]
            else:
                for tensor, spec in zip(inputs, request["inputs"]):
                    if isinstance(tensor, torch.Tensor):
                        tensor.copy_(_tensor(spec, device))
            out = model(*inputs)
            if device == "cuda":
                _synchronize()
            channel.send({"outputs": [_array(o) for o in _outputs(out) if isinstance(o, torch.Tensor)]})
    return {"timers_changed": timers_changed()}
