"""Parsing of the static compile report: SASS/PTX instruction mix, resource usage, errors, cache keys."""

from __future__ import annotations

import pytest

from evoagent.targets.attention.static import (
    cache_key,
    default_cache_dir,
    first_error,
    ptx_mix,
    resource_usage,
    sass_mix,
    summarise,
)
from evoagent.targets.attention.suites import get_suite

SASS = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64] ;
        /*0020*/              @!P0 LDGSTS.E.BYPASS.128 [R5], desc[UR6][R8.64] ;
        /*0030*/                   LDG.E.U16 R9, desc[UR4][R2.64] ;
        /*0040*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24 ;
        /*0050*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24 ;
        /*0060*/                   STL [R1], R3 ;
        /*0070*/                   LDL R3, [R1] ;
        /*0080*/                   UTCHMMA gdesc[UR4], gdesc[UR6], tmem[UR8], tmem[UR10], idesc[UR11], UPT ;
        /*0090*/                   STG.E.64 desc[UR4][R2.64], R6 ;
"""


def test_sass_mix_counts_tensor_core_ops_widths_and_spills() -> None:
    mix = sass_mix(SASS)
    assert mix["tensor_core"] == {"HGMMA": 2, "UTCHMMA": 1}
    assert mix["global_access_bits"] == {"LDG.128": 1, "LDG.16": 1, "LDGSTS.128": 1, "STG.64": 1}
    assert mix["spill_instructions"] == 2
    assert mix["total"] == 10


def test_ptx_mix_counts_wgmma_tcgen05_and_vector_loads() -> None:
    ptx = ("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {...};\n"
           "tcgen05.mma.cta_group::1.kind::f16 [x];\n"
           "ld.global.v4.b32 {%r1, %r2, %r3, %r4}, [%rd1];\n"
           "cp.async.cg.shared.global [%r1], [%rd2], 16;\n")
    mix = ptx_mix(ptx)
    assert mix["wgmma.mma_async"] == 1 and mix["tcgen05.mma"] == 1
    assert mix["ld.global.128bit"] == 1 and mix["cp.async"] == 1


def test_resource_usage_reads_registers_stack_and_local_memory() -> None:
    text = """Resource usage:
 Common:
  GLOBAL:11 CONSTANT[4]:8
 Function _attention_forward:
  REG:194 STACK:16 SHARED:1024 LOCAL:8 CONSTANT[0]:640 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
    assert resource_usage(text) == {"_attention_forward": {"registers": 194, "stack_bytes": 16,
                                                           "static_shared_bytes": 1024, "local_bytes": 8}}


def test_shared_memory_over_the_arch_limit_is_a_compile_error() -> None:
    compiled = [{"ok": True, "kernel": "_k", "config": "c", "arch": "sm_90a", "num_warps": 8, "num_stages": 4,
                 "shared_bytes": 300_000, "cubin": b"", "ptx": "", "seconds": 0.1}]
    report = summarise("sm_90a", compiled, [])
    assert not report["ok"]
    assert "over the sm_90a limit of 232448" in first_error({"sm_90a": report})


def test_first_error_names_arch_kernel_and_line() -> None:
    reports = {"sm_100a": {"errors": [{"kernel": "_k", "config": "c1", "line": 42, "error": "boom"}]}}
    assert first_error(reports) == "sm_100a: kernel _k (config c1): line 42: boom"
    assert first_error({"sm_90a": {"errors": [], "wrapper_errors": []}}) is None


def test_cache_key_depends_on_source_arch_and_shapes() -> None:
    configs = get_suite("smoke").static_configs()
    base = cache_key("src", "sm_90a", configs)
    assert base == cache_key("src", "sm_90a", configs)
    assert len({base, cache_key("src2", "sm_90a", configs), cache_key("src", "sm_100a", configs),
                cache_key("src", "sm_90a", configs[:1])}) == 4


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("EVOAGENT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "static"
