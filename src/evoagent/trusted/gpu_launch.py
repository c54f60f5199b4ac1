"""Loads a candidate's compiled kernels and launches a plan on a GPU, in a process that never imports it.

The capture child compiled each launch (cubin, Triton's metadata, the kernel's signature) and reported
them as data. Here they are checked, written to a private folder, and loaded through Triton's own
`CompiledKernel` and launcher, whose C source is generated from a signature we validated (every type
from a fixed grammar), so nothing the child wrote becomes host code. Only the kernels' device code runs,
on buffers this process allocated; device code can read any memory of this CUDA context, so callers
keep no reference output or earlier answer on the device while candidate kernels run.
"""

from __future__ import annotations

import json
import re
import tempfile
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .plan import PlanRejected

_SCALAR = r"(?:i1|i8|i16|i32|i64|u1|u8|u16|u32|u64|fp16|bf16|fp32|f32|fp64)"
_ELEMENT = r"(?:i1|i8|i16|i32|i64|u1|u8|u16|u32|u64|fp8e4nv|fp8e5|fp8e4b15|fp8e4b8|fp8e5b16|fp16|bf16|fp32|f32|fp64)"
_LAYOUT = r"(?:,[a-z_]{1,32}<[0-9a-z_, \[\]=<>.-]{0,512}>)?"  # a shared-memory layout, when Triton adds one
_SIGNATURE_TYPE = re.compile(rf"(?:\*k?{_ELEMENT}|{_SCALAR}|constexpr|nvTmaDesc|"
                             rf"tensordesc<{_ELEMENT}\[[0-9, ]{{1,64}}\]{_LAYOUT}>)\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}\Z")
_TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
          "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8,
          "bool": torch.bool}
_ALIGN = 256  # bytes: every buffer starts at a multiple, as torch's allocator gives


def check_binary(key: str, binary: Any) -> dict[str, Any]:
    """A compiled launch as the capture reports it, checked; raises PlanRejected if it is anything else."""
    if not isinstance(binary, dict) or not isinstance(binary.get("cubin"), bytes) or not binary["cubin"]:
        raise PlanRejected(f"binary {key!r} carries no cubin")
    metadata, signature = binary.get("metadata"), binary.get("signature")
    if not isinstance(metadata, dict) or not _NAME.match(str(metadata.get("name"))):
        raise PlanRejected(f"binary {key!r}: the metadata names no kernel function")
    target = metadata.get("target")
    if not isinstance(target, dict) or target.get("backend") != "cuda":
        raise PlanRejected(f"binary {key!r} is not for a CUDA target")
    for field in ("num_warps", "num_ctas", "shared"):
        if not isinstance(metadata.get(field), int) or not 0 <= metadata[field] <= (1 << 24):
            raise PlanRejected(f"binary {key!r}: metadata field {field!r} is not a small int")
    if not isinstance(signature, dict) or not all(_NAME.match(str(k)) and isinstance(v, str)
                                                  and _SIGNATURE_TYPE.match(v) for k, v in signature.items()):
        raise PlanRejected(f"binary {key!r}: the kernel signature holds a type outside Triton's grammar")
    json.dumps(metadata)  # plain values only (raises TypeError otherwise)
    return binary


class LoadedKernels:
    """Checked binaries written to a private folder and loaded as Triton `CompiledKernel`s, by key."""

    def __init__(self, binaries: Mapping[str, Any]) -> None:
        from triton.compiler.compiler import CompiledKernel

        self.folder = Path(tempfile.mkdtemp(prefix="evoagent-replay-kernels-"))
        self.kernels: dict[str, Any] = {}
        self.signatures: dict[str, list[str]] = {}
        for index, (key, raw) in enumerate(binaries.items()):
            binary = check_binary(key, raw)
            stem = self.folder / f"k{index}"
            stem.with_suffix(".json").write_text(json.dumps(binary["metadata"]))
            stem.with_suffix(".cubin").write_bytes(binary["cubin"])
            signature = dict(binary["signature"])
            source = types.SimpleNamespace(signature=signature, constants={},
                                           fn=types.SimpleNamespace(arg_names=list(signature)))
            group = {f"k{index}{suffix}": str(stem.with_suffix(suffix)) for suffix in (".json", ".cubin")}
            self.kernels[key] = CompiledKernel(source, group, f"replay{index}")
            self.signatures[key] = list(signature)


class PlanBuffers:
    """The device memory one plan runs on: the caller's inputs and the plan's output and scratch buffers."""

    def __init__(self, plan: Mapping[str, Any], inputs: Mapping[str, torch.Tensor], device: str = "cuda") -> None:
        self.plan = plan
        self.raw: dict[str, torch.Tensor] = {name: t.view(-1).view(torch.uint8) for name, t in inputs.items()}
        for name, info in plan["buffers"].items():
            size = -(-int(info["nbytes"]) // _ALIGN) * _ALIGN
            self.raw[name] = torch.empty(size, dtype=torch.uint8, device=device)

    def reset(self) -> None:
        """Poisons uninitialised buffers (0xFF bytes are NaN in every float type) and fills the others."""
        for name, info in self.plan["buffers"].items():
            if info["init"] == "poison":
                self.raw[name].fill_(0xFF)
            else:
                dtype = self.dtype_of(name)
                raw = self.raw[name]
                usable = raw.numel() - raw.numel() % torch.empty((), dtype=dtype).element_size()
                raw[:usable].view(dtype).fill_(float(info["init"][1]))

    def dtype_of(self, name: str) -> torch.dtype:
        specs = (spec for launch in self.plan["launches"] for spec in launch["args"].values())
        return next((_TORCH[s["dtype"]] for s in specs if s.get("buffer") == name), torch.float32)

    def tensor(self, spec: Mapping[str, Any]) -> torch.Tensor:
        raw = self.raw[spec["buffer"]][int(spec["offset"]):]
        dtype = _TORCH[spec["dtype"]]
        size = torch.empty((), dtype=dtype).element_size()
        return raw[:raw.numel() - raw.numel() % size].view(dtype)

    def output(self) -> torch.Tensor:
        out = self.plan["output"]
        flat = self.raw[out["buffer"]].view(_TORCH[out["dtype"]])
        return torch.as_strided(flat, out["shape"], out["stride"], out["offset"])

    def argument(self, spec: Mapping[str, Any]) -> Any:
        kind = spec["kind"]
        if kind == "value":
            return spec["value"]
        if kind == "tl_dtype":
            import triton.language as tl

            return tl.dtype(spec["name"])
        if kind == "tensor":
            return self.tensor(spec)
        from triton.tools.tensor_descriptor import TensorDescriptor

        return TensorDescriptor(self.tensor(spec), spec["shape"], spec["strides"], spec["block_shape"],
                                padding=spec["padding"])


def launch_plan(kernels: LoadedKernels, buffers: PlanBuffers) -> None:
    """Enqueues the plan's launches on the current stream, each with every signature argument in order."""
    for launch in buffers.plan["launches"]:
        key = launch["binary"]
        values = [buffers.argument(launch["args"][name]) if name in launch["args"] else None
                  for name in kernels.signatures[key]]
        kernels.kernels[key][tuple(launch["grid"])](*values)


def use_torch_allocator() -> None:
    """Triton's global scratch (device-side tensor descriptors, ...) from torch, in this process."""
    import triton

    def allocate(size: int, alignment: int, stream: Any) -> torch.Tensor:
        return torch.empty(size, dtype=torch.int8, device="cuda")

    triton.set_allocator(allocate)
