"""Checks the launch plans a capture child reports, before anything replays them.

A plan (built by `evoagent.untrusted.plans` in the child) is untrusted data. Here it must prove it is
the shape our capture builds — known buffers, in-range offsets, plain scalars, bounded scratch — and
that it does not depend on input values (two captures with different data must agree). Anything
else is the candidate's doing and is `illegal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})
_KINDS = frozenset({"tensor", "desc", "value", "tl_dtype"})
MAX_LAUNCHES = 64
MAX_GRID = 2**31 - 1


class PlanRejected(ValueError):
    """A launch plan that is not what our capture builds (the message says where)."""


def check_plan(plan: Any, inputs: Mapping[str, int], *, max_scratch_bytes: int) -> dict[str, Any]:
    """Returns the plan if it is well formed for inputs {name: nbytes}; raises PlanRejected otherwise."""
    if not isinstance(plan, dict) or set(plan) != {"launches", "buffers", "output"}:
        raise PlanRejected("the plan is not a mapping of launches, buffers and output")
    buffers = plan["buffers"]
    if not isinstance(buffers, dict) or any(not _NAME.match(str(n)) or _in(n, inputs) for n in buffers):
        raise PlanRejected("the plan's buffers are not named scratch buffers")
    scratch = 0
    for name, info in buffers.items():
        if not isinstance(info, dict) or not _count(info.get("nbytes"), 1 << 40):
            raise PlanRejected(f"buffer {name!r} has no valid size")
        init = info.get("init")
        if init != "poison" and not (isinstance(init, list) and len(init) == 2 and init[0] == "fill"
                                     and isinstance(init[1], float)):
            raise PlanRejected(f"buffer {name!r} starts {init!r}: a replay can only poison or fill a buffer")
        scratch += info["nbytes"]
    if scratch > max_scratch_bytes:
        raise PlanRejected(f"the wrapper allocates {scratch} bytes of output and scratch, over the limit of "
                           f"{max_scratch_bytes}")
    sizes = {**inputs, **{n: i["nbytes"] for n, i in buffers.items()}}
    _check_output(plan["output"], sizes)
    launches = plan["launches"]
    if not isinstance(launches, list) or not 1 <= len(launches) <= MAX_LAUNCHES:
        raise PlanRejected(f"a plan has 1 to {MAX_LAUNCHES} launches")
    for index, launch in enumerate(launches):
        _check_launch(index, launch, sizes)
    return plan


def _count(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _check_output(output: Any, sizes: Mapping[str, int]) -> None:
    if not isinstance(output, dict) or not _in(output.get("buffer"), sizes) or not _in(output.get("dtype"), _DTYPES):
        raise PlanRejected("the plan's output is not a known buffer and dtype")
    shape, stride = output.get("shape"), output.get("stride")
    if not (isinstance(shape, list) and isinstance(stride, list) and len(shape) == len(stride)
            and all(_count(x, 1 << 40) for x in [*shape, *stride, output.get("offset")])):
        raise PlanRejected("the plan's output layout is malformed")


def _check_launch(index: int, launch: Any, sizes: Mapping[str, int]) -> None:
    where = f"launch {index + 1}"
    if not isinstance(launch, dict) or not _NAME.match(str(launch.get("kernel"))):
        raise PlanRejected(f"{where} names no kernel")
    grid = launch.get("grid")
    if not (isinstance(grid, list) and len(grid) == 3 and all(_count(g, MAX_GRID) for g in grid)):
        raise PlanRejected(f"{where}: the grid is not three non-negative ints")
    if "binary" in launch and not (isinstance(launch["binary"], str) and len(launch["binary"]) < 4096):
        raise PlanRejected(f"{where}: the binary key is malformed")
    options = launch.get("options", {})
    if not isinstance(options, dict) or any(not _NAME.match(str(k)) or not _plain(v) for k, v in options.items()):
        raise PlanRejected(f"{where}: launch options must be plain values")
    args = launch.get("args")
    if not isinstance(args, dict):
        raise PlanRejected(f"{where} has no arguments")
    for name, spec in args.items():
        if not _NAME.match(str(name)) or not isinstance(spec, dict) or not _in(spec.get("kind"), _KINDS):
            raise PlanRejected(f"{where}: argument {name!r} is malformed")
        kind = spec["kind"]
        if kind == "value" and not _plain(spec.get("value")):
            raise PlanRejected(f"{where}: argument {name!r} is not a plain value")
        if kind == "tl_dtype" and not _NAME.match(str(spec.get("name"))):
            raise PlanRejected(f"{where}: argument {name!r} is not a Triton dtype name")
        if kind in ("tensor", "desc"):
            if not _in(spec.get("buffer"), sizes) or not _in(spec.get("dtype"), _DTYPES):
                raise PlanRejected(f"{where}: argument {name!r} points at no known buffer")
            if not _count(spec.get("offset"), sizes[spec["buffer"]]):
                raise PlanRejected(f"{where}: argument {name!r} points outside buffer {spec['buffer']!r}")
        if kind == "desc":
            lists = [spec.get(k) for k in ("shape", "strides", "block_shape")]
            if not all(isinstance(x, list) and x and all(_count(v, 1 << 40) for v in x) for x in lists) or \
                    not _in(spec.get("padding"), ("zero", "nan")):
                raise PlanRejected(f"{where}: tensor descriptor {name!r} is malformed")


def _in(value: Any, names: Any) -> bool:
    """`value in names` for untrusted values (a list or dict is in no set of names, never a TypeError)."""
    return isinstance(value, str) and value in names


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) < 256)


def plan_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Where two plans of the same configuration differ (in words), or None when they are the same."""
    if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
        return None
    if len(a["launches"]) != len(b["launches"]):
        return f"{len(a['launches'])} launches in one call, {len(b['launches'])} in the other"
    for index, (x, y) in enumerate(zip(a["launches"], b["launches"])):
        for key in ("kernel", "grid", "options"):
            if x.get(key) != y.get(key):
                return f"launch {index + 1}'s {key} changed ({x.get(key)!r} -> {y.get(key)!r})"
        for name in sorted(set(x["args"]) | set(y["args"])):
            if x["args"].get(name) != y["args"].get(name):
                return f"launch {index + 1}'s argument {name!r} changed"
    return "the output or scratch buffers changed"
