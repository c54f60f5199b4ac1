"""Functions that run the PROBLEM (never a candidate) in a sandbox child: shapes, inputs, reference outputs, baselines.

The process that runs these imports only the problem file, so the numbers it returns (reference
outputs, eager and torch.compile times) come from a process no candidate code ran in.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch

PROBLEM_FILE = "problem.py"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


def import_problem(name: str = PROBLEM_FILE) -> Any:
    """The problem module from the call's working directory."""
    spec = importlib.util.spec_from_file_location("evoagent_problem", os.path.join(os.getcwd(), name))
    assert spec is not None and spec.loader is not None  # Check internal correctness.
    module = importlib.util.module_from_spec(spec)
    sys.modules["evoagent_problem"] = module
    spec.loader.exec_module(module)
    return module


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def describe_inputs(values: Any) -> list[dict[str, Any]]:
    """get_inputs() as specs: tensors by shape and dtype, anything else by value."""
    out = []
    for value in values:
        if isinstance(value, torch.Tensor):
            out.append({"shape": list(value.shape), "dtype": dtype_name(value.dtype)})
        else:
            out.append({"value": value})
    return out


def input_elements(specs: list[dict[str, Any]]) -> int:
    return sum(int(np.prod(s["shape"])) for s in specs if "shape" in s)


def plan_inputs(file: str = PROBLEM_FILE) -> dict[str, Any]:
    """The inputs' shapes and dtypes and the init inputs at this file's constants (inputs built on 'meta')."""
    module = import_problem(file)
    with torch.device("meta"):
        inputs = module.get_inputs()
    return {"inputs": describe_inputs(inputs), "init_inputs": plain(module.get_init_inputs())}


def plain(value: Any) -> Any:
    """Init inputs as plain values (ints, floats, tuples...) the candidate's child can rebuild."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        raise TypeError("get_init_inputs() returned a tensor; init inputs must be plain values")
    return value


def _transform(x: torch.Tensor, mode: str, scale: float, gen: torch.Generator) -> torch.Tensor:
    """Inputs beyond the problem's generator: 'signed' centres them on 0 and scales; 'normal' redraws them."""
    if not x.is_floating_point() or mode == "problem":
        return x
    x32 = x.to(torch.float32)
    if mode == "signed":
        out = (x32 - x32.mean()) * scale
    else:
        out = torch.randn(x.shape, generator=gen, dtype=torch.float32) * scale
    return out.to(x.dtype)


def _perturb_state(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Floating parameters and buffers moved off their initial values (a LayerNorm's weight 1 and bias 0
    would hide a kernel that ignores them)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                spread = float(tensor.float().std()) if tensor.numel() > 1 else 0.0
                noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * (spread or 0.5)
                tensor.add_(noise.to(tensor.dtype))


def to_array(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as numpy (float32 for 16-bit floats, whose values it holds exactly)."""
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return np.asarray(t.numpy().copy())


def build_case(module: Any, case: dict[str, Any]) -> tuple[torch.nn.Module, list[Any], list[Any]]:
    """Model and inputs of one case: the model from `seed`, the inputs from `input_seed` (default: seed)."""
    seed = int(case["seed"])
    input_seed = int(case.get("input_seed", seed))
    init_inputs = module.get_init_inputs()
    torch.manual_seed(seed)
    model = module.Model(*init_inputs)
    torch.manual_seed(input_seed)
    inputs = module.get_inputs()
    gen = torch.Generator().manual_seed(input_seed + 1)
    inputs = [_transform(x, case["mode"], float(case["scale"]), gen) if isinstance(x, torch.Tensor) else x
              for x in inputs]
    if case["mode"] != "problem":
        _perturb_state(model, torch.Generator().manual_seed(seed + 2))
    return model.eval(), inputs, init_inputs


def reference_cases(cases: list[dict[str, Any]], file: str = PROBLEM_FILE) -> list[dict[str, Any]]:
    """For each case {"seed", "mode", "scale"}: inputs, the model's state and the reference output in float64."""
    module = import_problem(file)
    out: list[dict[str, Any]] = []
    for case in cases:
        try:
            model, inputs, init_inputs = build_case(module, case)
            state = {name: {"array": to_array(t), "dtype": dtype_name(t.dtype)}
                     for name, t in model.state_dict().items()}
            outputs = _forward64(model, inputs)
        except Exception as exc:  # the problem does not allow this shape (or is broken): data for the caller
            out.append({"error": f"{type(exc).__name__}: {str(exc)[:500]}",
                        "trace": traceback.format_exc(limit=4)[-1500:]})
            continue
        out.append({
            "init_inputs": plain(init_inputs),
            "inputs": [{"array": to_array(x), "dtype": dtype_name(x.dtype)} if isinstance(x, torch.Tensor)
                       else {"value": x} for x in inputs],
            "state": state,
            "outputs": [to_array(o) for o in outputs],
            "output_dtypes": [dtype_name(o.dtype) for o in _forward_dtypes(model, inputs)],
        })
    return out


def _flatten(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    raise TypeError(f"Model.forward returned {type(value).__name__}; expected a tensor or a tuple of tensors")


def _forward64(model: torch.nn.Module, inputs: list[Any]) -> list[torch.Tensor]:
    """The reference in float64 (float32 for problems whose ops have no float64 kernel)."""
    for dtype in (torch.float64, torch.float32):
        try:
            wide = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
            with torch.no_grad():
                return [o.to(torch.float64) for o in _flatten(_copy_as(model, dtype)(*wide))]
        except (RuntimeError, NotImplementedError):
            if dtype is torch.float32:
                raise
    raise AssertionError("unreachable")  # Check internal correctness.


def _copy_as(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to(dtype)


def _forward_dtypes(model: torch.nn.Module, inputs: list[Any]) -> list[torch.Tensor]:
    """The reference's outputs at the problem's own dtypes (their dtypes are what a candidate must return)."""
    with torch.no_grad():
        return _flatten(model(*inputs))


def time_reference(seed: int, reps: int, warmup: int, device: str, compiled: bool,
                   file: str = PROBLEM_FILE) -> dict[str, Any]:
    """Per-call times (ms) of the reference in eager mode and, if `compiled`, under torch.compile."""
    module = import_problem(file)
    model, inputs, _ = build_case(module, {"seed": seed, "mode": "problem", "scale": 1.0})
    model = model.to(device)
    inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]
    times: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    try:  # eager first: creating the compiled module loads dynamo, which must not touch eager's numbers
        times["eager"] = _time(model, inputs, reps, warmup, device)
    except Exception as exc:
        errors["eager"] = _one_line(exc)
    if compiled:
        try:
            times["compile"] = _time(torch.compile(model), inputs, reps, warmup, device)
        except Exception as exc:
            errors["compile"] = _one_line(exc)
    return {"times_ms": times, "errors": errors}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _time(fn: Any, inputs: list[Any], reps: int, warmup: int, device: str) -> list[float]:
    with torch.no_grad():
        for _ in range(warmup):
            fn(*inputs)
        out = []
        for _ in range(reps):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(*inputs)
            if device == "cuda":
                torch.cuda.synchronize()
            out.append((time.perf_counter() - start) * 1e3)
    return out
