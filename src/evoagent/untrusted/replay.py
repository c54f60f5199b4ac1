"""Runs in the sandboxed child: replays launch plans in Triton's interpreter from the kernels alone.

Without a GPU the kernels can only run in the interpreter, which runs their bodies as Python, so
this child is untrusted like any other; what keeps the score honest is that the trusted process
drives it (`evoagent.channel`): it sends fresh inputs, keeps the clock and checks every output. The
candidate's file is never imported here. Only its `@triton.jit` functions are defined, from its
source (decorators reduced to `triton.jit`, autotuning and heuristics already resolved in the plan),
with the module values they read given as data by the capture: the wrapper, module code and any
patching it does never run, so nothing can tell a timed call from another or compute around the plan.
"""

from __future__ import annotations

import ast
import builtins
import os
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..channel import Channel
from ..trusted.kernel_source import SAFE_BUILTINS, body_problems, is_jit, jit_functions
from .triton_mode import ensure_triton_mode

_KEPT_IMPORTS = ("triton", "math")
_TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
          "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8,
          "bool": torch.bool}


def kernels_module(source: str, filename: str, values: Mapping[str, Mapping[str, Any]]) -> types.ModuleType:
    """A module holding only the `@triton.jit` functions of `source` and the given module values.

    Kept: imports of triton and math, and module-level functions with a decorator named `jit` (any other
    decorator dropped). Everything else (the wrapper, other functions, assignments, statements) is left out.
    Kernel bodies must be Triton language (`trusted.kernel_source`), and see only a few builtins.
    """
    import triton.language as tl

    problems = body_problems(source, filename)
    if problems:
        raise ValueError(str(problems[0]))
    tree = ast.parse(source, filename)
    body: list[ast.stmt] = [node for node in tree.body
                            if isinstance(node, (ast.Import, ast.ImportFrom)) and _kept_import(node)]
    for function in jit_functions(tree):
        function.decorator_list = [_plain_jit(d) for d in function.decorator_list if is_jit(d)]
        body.append(function)
    module = types.ModuleType("evoagent_kernels_only")
    module.__file__ = filename
    module.__dict__["__builtins__"] = {name: getattr(builtins, name) for name in SAFE_BUILTINS
                                       if hasattr(builtins, name)} | {"__import__": _import_triton}
    for name, value in values.items():
        setattr(module, name, tl.constexpr(value["constexpr"]) if "constexpr" in value else value["number"])
    code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec")
    exec(code, module.__dict__)  # imports of triton and math, and function definitions: see above
    return module


def _import_triton(name: str, *args: Any, **kwargs: Any) -> Any:
    """The kernels module's imports (only triton and math; bodies cannot name __import__)."""
    if name.split(".")[0] not in _KEPT_IMPORTS:
        raise ImportError(f"a kernel replay imports only triton and math (not {name!r})")
    return builtins.__import__(name, *args, **kwargs)


def _kept_import(node: ast.Import | ast.ImportFrom) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    return all(n.split(".")[0] in _KEPT_IMPORTS for n in names) and not getattr(node, "level", 0)


def _plain_jit(decorator: ast.expr) -> ast.expr:
    """`triton.jit`, keeping only keyword arguments that are literals (do_not_specialize, noinline, ...)."""
    plain = ast.Attribute(value=ast.Name(id="triton", ctx=ast.Load()), attr="jit", ctx=ast.Load())
    if isinstance(decorator, ast.Call):
        keywords = [k for k in decorator.keywords if k.arg and _literal(k.value)]
        plain = ast.Call(func=plain, args=[], keywords=keywords)  # type: ignore[assignment]
    return ast.fix_missing_locations(ast.copy_location(plain, decorator))


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


class Replayer:
    """Buffers for one plan and its launches, run in the interpreter on inputs the trusted side sent."""

    def __init__(self, module: types.ModuleType, plan: Mapping[str, Any]) -> None:
        import triton.language as tl

        self.plan, self.tl = plan, tl
        self.kernels = {name: getattr(module, name) for name in {launch["kernel"] for launch in plan["launches"]}}
        self.buffers = {name: torch.empty(int(info["nbytes"]), dtype=torch.uint8)
                        for name, info in plan["buffers"].items()}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        for name, array in inputs.items():
            self.buffers[name] = torch.from_numpy(np.ascontiguousarray(array)).view(torch.uint8).reshape(-1).clone()
        for name, info in self.plan["buffers"].items():
            if name in inputs:
                continue
            init = info["init"]
            if init == "poison":
                self.buffers[name].fill_(0xFF)  # NaN in every float type: unwritten output shows
            else:
                self._fill(name, float(init[1]))
        for launch in self.plan["launches"]:
            args = {name: self._argument(spec) for name, spec in launch["args"].items()}
            self.kernels[launch["kernel"]].run(grid=tuple(launch["grid"]), warmup=False, **args,
                                               **launch.get("options", {}))
        out = self.plan["output"]
        flat = self.buffers[out["buffer"]].view(_TORCH[out["dtype"]])
        result = torch.as_strided(flat, out["shape"], out["stride"], out["offset"]).contiguous()
        return {"out": _to_numpy(result), "inputs": {n: self.buffers[n].numpy().copy() for n in inputs}}

    def _fill(self, name: str, value: float) -> None:
        """Fills a scratch buffer with `value` in the dtype the launches read it as (zeros are zeros in any)."""
        dtype = next((spec["dtype"] for launch in self.plan["launches"] for spec in launch["args"].values()
                      if spec.get("buffer") == name), "float32")
        raw = self.buffers[name]
        typed = _TORCH.get(dtype, torch.float32)
        usable = raw.numel() - raw.numel() % torch.empty((), dtype=typed).element_size()
        raw[:usable].view(typed).fill_(value)

    def _argument(self, spec: Mapping[str, Any]) -> Any:
        kind = spec["kind"]
        if kind == "value":
            return spec["value"]
        if kind == "tl_dtype":
            return self.tl.dtype(spec["name"])
        tensor = self._tensor(spec)
        if kind == "tensor":
            return tensor
        from triton.tools.tensor_descriptor import TensorDescriptor

        return TensorDescriptor(tensor, spec["shape"], spec["strides"], spec["block_shape"], padding=spec["padding"])

    def _tensor(self, spec: Mapping[str, Any]) -> torch.Tensor:
        raw = self.buffers[spec["buffer"]][int(spec["offset"]):]
        dtype = _TORCH[spec["dtype"]]
        size = torch.empty((), dtype=dtype).element_size()
        return raw[:raw.numel() - raw.numel() % size].view(dtype)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits travel as uint16
        bits: np.ndarray = tensor.view(torch.uint16).numpy().copy()
        return bits
    values: np.ndarray = tensor.numpy().copy()
    return values


def serve(entry: str, plans: list[dict[str, Any]], values: dict[str, dict[str, Any]]) -> None:
    """The driven replay child: answers {"plan": i, "inputs": {name: array}} with the output and the inputs after.

    `entry` is the candidate's file in the working directory (read as text, never imported); `values` the
    module values its kernels read (`plans.kernel_globals`). Runs in the interpreter (TRITON_INTERPRET=1).
    """
    os.environ["TRITON_INTERPRET"] = "1"
    ensure_triton_mode(True)
    with open(os.path.join(os.getcwd(), entry)) as f:
        module = kernels_module(f.read(), entry, values)
    replayers = [Replayer(module, plan) for plan in plans]
    channel = Channel.from_environment()
    while (request := channel.receive()) is not None:
        try:
            reply = replayers[int(request["plan"])].run(request["inputs"])
        except Exception as exc:  # the kernel's failure is data for the trusted side
            reply = {"error": f"{type(exc).__name__}: {str(exc).strip()[:1500]}"}
        channel.send(reply)
