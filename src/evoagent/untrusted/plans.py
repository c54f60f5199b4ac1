"""Runs in the sandboxed child: the Triton launches a wrapper made, as a launch plan (plain data).

A plan says which of the candidate's own kernels were launched, on which grid, and what each argument
was: a place in a named buffer (an input, the output, or a scratch buffer the wrapper allocated), a
scalar, a Triton dtype, or a tensor descriptor over a buffer. It carries no tensor data and no code:
the trusted side checks it (`evoagent.trusted.plan`) and replays it on inputs it made itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Allocation operations and the initial content of what they return.
_POISON = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})
_ZERO = frozenset({"zeros", "zeros_like", "new_zeros"})
_ONE = frozenset({"ones", "ones_like", "new_ones"})
_FULL = frozenset({"full", "full_like", "new_full"})
_VIEWS = frozenset({
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "transpose", "t", "permute", "expand",
    "unsqueeze", "squeeze", "select", "slice", "alias", "detach", "unbind", "split", "split_with_sizes", "chunk",
    "narrow", "unflatten", "flatten", "movedim", "view_as", "contiguous", "lift_fresh", "_local_scalar_dense",
})
_DTYPE_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
                torch.float64: "float64", torch.int8: "int8", torch.int16: "int16", torch.int32: "int32",
                torch.int64: "int64", torch.uint8: "uint8", torch.bool: "bool"}


class Allocations(TorchDispatchMode):
    """Records the storages the wrapper's torch operations create, and how each was initialised.

    `buffers` maps a storage's data pointer to {"nbytes", "init"}: init is "poison" (uninitialised),
    ["fill", value] (zeros, ones, full, fill_, zero_ on the whole buffer) or "computed" (written by any
    other operation: a replay could not rebuild it, so a launch may not read it).
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.buffers: dict[int, dict[str, Any]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._overloadpacket.__name__
        if name in _VIEWS:
            return out
        init: Any = "computed"
        if name in _POISON:
            init = "poison"
        elif name in _ZERO or name == "zero_":
            init = ["fill", 0.0]
        elif name in _ONE:
            init = ["fill", 1.0]
        elif name in _FULL or name == "fill_":
            value = args[-1] if name in ("full_like", "new_full", "fill_") else args[1] if len(args) > 1 else None
            init = ["fill", float(value)] if isinstance(value, (int, float, bool)) else "computed"
        for tensor in _tensors(out):
            self._record(tensor, init, whole=name not in ("fill_", "zero_") or _covers(tensor))
        return out

    def _record(self, tensor: torch.Tensor, init: Any, *, whole: bool) -> None:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        known = self.buffers.get(ptr)
        if known is None:
            self.buffers[ptr] = {"nbytes": int(storage.nbytes()), "init": init if whole else "computed"}
        elif not whole or init == "computed":
            known["init"] = "computed"
        else:
            known["init"] = init


def _covers(tensor: torch.Tensor) -> bool:
    return tensor.storage_offset() == 0 and tensor.numel() * tensor.element_size() == tensor.untyped_storage().nbytes()


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class PlanError(ValueError):
    """The wrapper did something a launch plan cannot describe (the message says what and where)."""


class Spans:
    """Named buffers by address range: the inputs, the output and the wrapper's allocations."""

    def __init__(self, inputs: Mapping[str, torch.Tensor], output: torch.Tensor | None,
                 allocations: Allocations) -> None:
        self.named: list[tuple[str, int, int]] = []
        self.buffers: dict[str, dict[str, Any]] = {}
        for name, tensor in inputs.items():
            self._add(name, tensor.untyped_storage().data_ptr(), int(tensor.untyped_storage().nbytes()))
        self.output_buffer: str | None = None
        out_ptr = output.untyped_storage().data_ptr() if output is not None else None
        for index, (ptr, info) in enumerate(sorted(allocations.buffers.items())):
            name = "out" if ptr == out_ptr else f"scratch{index}"
            self._add(name, ptr, info["nbytes"])
            self.buffers[name] = dict(info)
            if ptr == out_ptr:
                self.output_buffer = name

    def _add(self, name: str, start: int, nbytes: int) -> None:
        self.named.append((name, start, start + nbytes))

    def locate(self, ptr: int) -> tuple[str, int] | None:
        for name, start, end in self.named:
            if start <= ptr < end or (ptr == start == end):
                return name, ptr - start
        return None


def bound_arguments(fn: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every parameter of the kernel by name, defaults applied; the launch options such as num_warps)."""
    signature = inspect.signature(fn.fn)
    params = {k: v for k, v in kwargs.items() if k in signature.parameters}
    options = {k: v for k, v in kwargs.items() if k not in signature.parameters}
    bound = signature.bind(*args, **params)
    bound.apply_defaults()
    return dict(bound.arguments), options


def launch_grid(grid: Any, named: Mapping[str, Any]) -> list[int]:
    """The grid as Triton computes it at launch (a callable gets the bound arguments), as three ints."""
    if callable(grid):
        grid = grid(dict(named))
    dims = [int(g) for g in grid]
    if not 1 <= len(dims) <= 3:
        raise PlanError(f"a launch grid has {len(dims)} dimensions; Triton takes 1 to 3")
    return dims + [1] * (3 - len(dims))


def describe_argument(name: str, value: Any, spans: Spans, kernel: str) -> dict[str, Any]:
    """One launch argument as data: where a tensor points, a scalar's value, a dtype's name, a descriptor."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", **_place(name, value, spans, kernel)}
    if isinstance(value, TensorDescriptor):
        return {"kind": "desc", **_place(name, value.base, spans, kernel), "shape": [int(s) for s in value.shape],
                "strides": [int(s) for s in value.strides], "block_shape": [int(s) for s in value.block_shape],
                "padding": str(getattr(value, "padding", "zero"))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"kind": "value", "value": value}
    dtype_name = getattr(value, "name", None)
    if type(value).__name__ == "dtype" and isinstance(dtype_name, str):  # triton.language.dtype
        return {"kind": "tl_dtype", "name": dtype_name}
    constexpr = getattr(value, "value", value)
    if type(value).__name__ == "constexpr" and (constexpr is None or isinstance(constexpr, (bool, int, float, str))):
        return {"kind": "value", "value": constexpr}
    raise PlanError(f"kernel {kernel}: argument {name!r} is a {type(value).__name__}, which a launch plan cannot "
                    "carry (tensors, tensor descriptors, numbers, strings and Triton dtypes can)")


def _place(name: str, tensor: torch.Tensor, spans: Spans, kernel: str) -> dict[str, Any]:
    found = spans.locate(tensor.data_ptr())
    if found is None:
        raise PlanError(f"kernel {kernel}: argument {name!r} points at memory that is not q, k, v, the output or a "
                        "buffer the wrapper allocated in this call (a tensor kept from an earlier call?)")
    buffer, offset = found
    info = spans.buffers.get(buffer)
    if info is not None and info["init"] == "computed":
        raise PlanError(f"kernel {kernel}: argument {name!r} is a tensor the wrapper computed with torch operations; "
                        "kernels may read only q, k, v and buffers the wrapper allocated (empty, zeros, full)")
    return {"buffer": buffer, "offset": int(offset), "dtype": _DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))}


def output_layout(output: Any, spans: Spans) -> dict[str, Any]:
    """Where the returned tensor lives: its buffer, dtype, shape, strides and element offset."""
    if not isinstance(output, torch.Tensor) or type(output) is not torch.Tensor:
        kind = type(output).__name__
        raise PlanError(f"attention() returned a {kind}; it must return a plain torch.Tensor (not a subclass)")
    if spans.output_buffer is None:
        raise PlanError("the returned tensor is not one the wrapper allocated in this call (an input, or memory "
                        "kept from an earlier call); allocate the output in every call")
    return {"buffer": spans.output_buffer, "dtype": _DTYPE_NAMES.get(output.dtype, str(output.dtype)),
            "shape": [int(s) for s in output.shape], "stride": [int(s) for s in output.stride()],
            "offset": int(output.storage_offset())}


def kernel_globals(fn: Any) -> dict[str, Any]:
    """The module-level values a kernel (and the @triton.jit helpers it calls) reads: numbers and constexprs,
    as data, so that a replay defines the kernels without running any other module code."""
    from triton.runtime.jit import JITFunction

    found: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(jit: Any) -> None:
        if id(jit) in seen:
            return
        seen.add(id(jit))
        code, namespace = jit.fn.__code__, jit.fn.__globals__
        for name in _code_names(code):
            value = namespace.get(name)
            if isinstance(value, JITFunction):
                visit(value)
            elif type(value).__name__ == "constexpr":
                inner = getattr(value, "value", None)
                if inner is None or isinstance(inner, (bool, int, float, str)):
                    found[name] = {"constexpr": inner}
            elif isinstance(value, (bool, int, float)):
                found[name] = {"number": value}

    visit(fn)
    return found


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def binary_record(kernel: Any) -> dict[str, Any]:
    """A compiled Triton kernel as data for the trusted replay: its cubin, metadata (plain values) and signature."""
    import json

    def plain(value: Any) -> Any:
        if hasattr(value, "_asdict"):
            return value._asdict()
        if hasattr(value, "__dict__"):
            return value.__dict__
        return list(value) if isinstance(value, (tuple, set, frozenset)) else str(value)

    metadata = json.loads(json.dumps(kernel.metadata._asdict(), default=plain))
    return {"cubin": bytes(kernel.asm["cubin"]), "metadata": metadata,
            "signature": {str(k): str(v) for k, v in kernel.src.signature.items()}}
