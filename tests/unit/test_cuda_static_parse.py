"""Reading nvcc and cuobjdump output for a CUDA candidate: per-kernel SASS, names, errors with kernel.py lines."""

from __future__ import annotations

from evoagent.result import Status
from evoagent.targets.attention.cuda_static import (
    _PTX_ENTRY,
    _SASS_FUNCTION,
    _split,
    check_stage,
    demangle,
    first_error,
    nvcc_errors,
)
from evoagent.targets.attention.static import resource_usage, sass_mix

# cuobjdump --dump-resource-usage / --dump-sass of a two-kernel cubin (sm_90a, nvcc 13.0), encodings cut.
RESOURCES = """
Resource usage:
 Common:
  GLOBAL:0
 Function _ZN3evo5firstEPf:
  REG:10 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:536 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _Z6secondILi4EEvPK6float4PS0_:
  REG:12 STACK:16 SHARED:1024 LOCAL:0 CONSTANT[0]:544 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
SASS = """
	code for sm_90a
	.target	sm_90a

		Function : _ZN3evo5firstEPf
	.headerflags	@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0030*/                   HFMA2.MMA R7, -RZ, RZ, 1.875, 0 ;
        /*0060*/                   STG.E desc[UR4][R2.64], R7 ;
        /*0070*/                   EXIT ;
		..........


		Function : _Z6secondILi4EEvPK6float4PS0_
	.headerflags	@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0060*/                   LDG.E.128 R4, desc[UR4][R4.64+0x40] ;
        /*0068*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR4], R24 ;
        /*0070*/                   LDSM.16.M88.4 R8, [R3] ;
        /*0080*/                   STG.E.128 desc[UR4][R2.64], R4 ;
        /*0090*/                   EXIT ;
"""


def test_each_kernel_gets_its_own_sass_mix_and_resources() -> None:
    listings = _split(SASS, _SASS_FUNCTION)
    assert list(listings) == ["_ZN3evo5firstEPf", "_Z6secondILi4EEvPK6float4PS0_"]
    first, second = (sass_mix(text) for text in listings.values())
    assert first["tensor_core"] == {} and first["global_access_bits"] == {"STG.32": 1}  # HFMA2.MMA is no MMA
    assert second["tensor_core"] == {"HGMMA": 1}
    assert second["global_access_bits"] == {"LDG.128": 1, "STG.128": 1} and second["memory"]["LDSM"] == 1
    usage = resource_usage(RESOURCES)
    assert usage["_Z6secondILi4EEvPK6float4PS0_"] == {"registers": 12, "stack_bytes": 16,
                                                        "static_shared_bytes": 1024, "local_bytes": 0}


def test_ptx_entries_are_split_by_name() -> None:
    ptx = ".visible .entry _Z1aPf(\n mma.sync.aligned;\n}\n.visible .entry _Z1bPf(\n ld.global.v4.u32 {};\n}"
    parts = _split(ptx, _PTX_ENTRY)
    assert "mma.sync" in parts["_Z1aPf"] and "mma.sync" not in parts["_Z1bPf"]


def test_kernel_names_are_demangled_to_their_qualified_name() -> None:
    assert demangle("_ZN3evo5firstEPf") == "evo::first"
    assert demangle("_Z6secondILi4EEvPK6float4PS0_") == "second"
    assert demangle("plain_c_name") == "plain_c_name"


def test_nvcc_messages_keep_their_kernel_py_line() -> None:
    log = ('kernel.py(21): error: identifier "nope" is undefined\n      int x = nope;\n\n'
           'kernel.py(30): warning #177-D: variable "y" was declared but never referenced\n'
           "/usr/local/cuda/include/x.h(3): error: something in a header\n"
           "ptxas error   : Entry function '_Z1kv' uses too much shared data (0x40000 bytes, 0x38000 max)\n")
    errors = nvcc_errors(log, "kernel.py")
    assert errors == [{"line": 21, "error": 'identifier "nope" is undefined'},
                      {"line": None, "error": "something in a header"},
                      {"line": None, "error": "ptxas: Entry function '_Z1kv' uses too much shared data "
                                              "(0x40000 bytes, 0x38000 max)"}]


def _report(**changes):
    base = {"ok": True, "oom": False, "errors": [], "wrapper_errors": [], "kernels": [], "skipped": [],
            "describes": "", "shared_bytes": 0, "registers": None, "spill_bytes": 0, "spill_instructions": 0,
            "compile_seconds": 1.0, "missing_tool": False, "compiler_output": ""}
    return base | changes


def test_a_compile_error_is_compile_error_naming_the_kernel_py_line() -> None:
    reports = {"sm_90a": _report(ok=False, errors=[
        {"kernel": "CUDA_SOURCE", "config": "nvcc", "line": 21, "error": 'identifier "nope" is undefined'},
        {"kernel": "CUDA_SOURCE", "config": "nvcc", "line": 22, "error": "expected a ;"}])}
    assert first_error(reports) == 'sm_90a: nvcc: kernel.py line 21: identifier "nope" is undefined (and 1 more errors)'
    stage = check_stage(reports)
    assert stage.status is Status.COMPILE_ERROR and "kernel.py line 21" in stage.reason


def test_no_nvcc_is_needs_device_and_no_kernel_is_illegal() -> None:
    missing = _report(ok=False, missing_tool=True, errors=[{"kernel": "CUDA_SOURCE", "config": "nvcc", "line": None,
                                                           "error": "nvcc not found"}])
    assert check_stage({"sm_90a": missing}).status is Status.NEEDS_DEVICE
    empty = check_stage({"sm_90a": _report()})
    assert empty.status is Status.ILLEGAL and "no __global__ kernel" in empty.reason
