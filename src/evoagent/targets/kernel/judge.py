"""Verdicts, in the trusted process, on a kernel candidate's reports against the reference process's outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...result import Status
from ..attention.judge import OK, Verdict, missing_hardware, needs_device_reason
from ..attention.legality import ALLOWED_OPS
from ..attention.reference import TOLERANCES, compare


def tolerance_dtype(dtype: str) -> str:
    """The tolerance class of an output dtype (float64 outputs are held to float32's)."""
    return dtype if dtype in TOLERANCES else "float32"


def judge_case(where: str, reference: Mapping[str, Any], result: Mapping[str, Any]) -> Verdict:
    """One test case: the call, the legality of what ran, the inputs left unchanged, then the numerics."""
    if "error" in result:
        error = str(result["error"])
        if missing_hardware(error):
            return Verdict(status=Status.NEEDS_DEVICE, reason=needs_device_reason(where, error))
        status = Status.OOM if result.get("oom") else Status.CRASH
        what = "ModelNew(*get_init_inputs())" if result.get("stage") == "build" else "ModelNew.forward"
        return Verdict(status=status, reason=f"{where}: {what} raised {error}")
    try:
        for check in (_check_outputs_described, _check_ops, _check_inputs, _check_numerics):
            verdict = check(where, reference, result)
            if not verdict.ok:
                return verdict
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # only a tampered report lacks these fields
        return Verdict(status=Status.ILLEGAL, reason=f"{where}: the report from the candidate's process is "
                                                     f"malformed ({type(exc).__name__}: {exc})")
    return OK


def _check_outputs_described(where: str, reference: Mapping[str, Any], result: Mapping[str, Any]) -> Verdict:
    described = result["outputs_described"]
    expected = reference["outputs"]
    if len(described) != len(expected):
        return Verdict(status=Status.INCORRECT, reason=f"{where}: forward returned {len(described)} tensor(s), the "
                                                       f"reference {len(expected)}")
    for index, (got, want, dtype) in enumerate(zip(described, expected, reference["output_dtypes"])):
        name = "the output" if len(expected) == 1 else f"output {index}"
        if got.get("output_type") != "Tensor":
            return Verdict(status=Status.INCORRECT,
                           reason=f"{where}: {name} is a {got.get('output_type')}, expected a torch.Tensor")
        if list(got["shape"]) != list(np.shape(want)):
            return Verdict(status=Status.INCORRECT, reason=f"{where}: {name} has shape {tuple(got['shape'])}, "
                                                           f"expected {tuple(np.shape(want))}")
        if got["dtype"] != dtype:
            return Verdict(status=Status.INCORRECT, reason=f"{where}: {name} has dtype {got['dtype']}, "
                                                           f"expected {dtype}")
        if got.get("aliases_input"):
            return Verdict(status=Status.ILLEGAL, reason=f"{where}: {name} shares memory with an input; "
                                                         "return a new tensor")
    return OK


def _check_ops(where: str, reference: Mapping[str, Any], result: Mapping[str, Any]) -> Verdict:
    if result.get("launches", 0) < 1:
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: ModelNew.forward launched no Triton kernel and called no CUDA_SOURCE host "
                              "function; the work must be done by kernels defined in the file")
    banned = sorted(op for op in result.get("ops", {}) if op not in ALLOWED_OPS)
    if banned:
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: ModelNew.forward ran torch operation(s) "
                              f"{', '.join('aten.' + b for b in banned)} outside its kernels (the reference's ops "
                              "or other library compute); only allocation, view and copy operations may run around "
                              "the launches")
    if result.get("cross_device"):
        return Verdict(status=Status.ILLEGAL,
                       reason=f"{where}: the wrapper moved data between devices ({result['cross_device'][0]})")
    return OK


def _check_inputs(where: str, reference: Mapping[str, Any], result: Mapping[str, Any]) -> Verdict:
    after = result["inputs_after"]
    for index, spec in enumerate(reference["inputs"]):
        if "array" not in spec:
            continue
        got, want = np.asarray(after[index]), np.asarray(spec["array"])
        same = got.shape == want.shape and bool(np.array_equal(got, want, equal_nan=True))
        if not same:
            return Verdict(status=Status.ILLEGAL, reason=f"{where}: forward modified its input {index}; "
                                                         "inputs must be left unchanged")
    return OK


def _check_numerics(where: str, reference: Mapping[str, Any], result: Mapping[str, Any]) -> Verdict:
    for index, (got, want, dtype) in enumerate(zip(result["outputs"], reference["outputs"],
                                                   reference["output_dtypes"])):
        if got is None:
            return Verdict(status=Status.INCORRECT, reason=f"{where}: output {index} did not come back")
        want64 = np.asarray(want, dtype=np.float64)
        if want64.ndim == 0:
            want64, got = want64.reshape(1), np.asarray(got).reshape(1)
        outcome = compare(np.asarray(got), want64, tolerance_dtype(dtype))
        if not outcome.ok:
            at = f" at index {list(outcome.worst_index)}" if outcome.worst_index else ""
            name = "" if len(reference["outputs"]) == 1 else f"output {index}: "
            return Verdict(status=Status.INCORRECT, reason=f"{where}: {name}{outcome.reason}{at}")
    return OK


def check_outputs(where: str, reference: Mapping[str, Any], outputs: Any) -> Verdict:
    """The outputs a timed call returned, against the reference's (every timed call must do the work)."""
    if not isinstance(outputs, list) or len(outputs) != len(reference["outputs"]):
        return Verdict(status=Status.INCORRECT, reason=f"{where}: returned no outputs matching the reference's "
                                                       f"{len(reference['outputs'])}")
    try:
        return _check_numerics(where, reference, {"outputs": outputs})
    except (TypeError, ValueError) as exc:
        return Verdict(status=Status.ILLEGAL, reason=f"{where}: malformed outputs ({exc})")
