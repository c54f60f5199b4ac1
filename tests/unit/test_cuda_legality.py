"""Legality of CUDA candidates: each rule of docs/cuda.md caught by a cheating kernel.py, before nvcc runs."""

from __future__ import annotations

import textwrap

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.targets.attention import AttentionEvaluator
from evoagent.targets.attention.cuda_legality import scan_source
from evoagent.targets.attention.cuda_source import find_cuda_source

TEMPLATE = '''import torch

from evoagent.targets.attention.cuda_build import load_extension

CUDA_SOURCE = r"""
#include <cuda_fp16.h>
#include <cstdint>
{includes}
__global__ void attn(const half* q, half* o, int n) {{
  // cublasHgemm would be a cheat, but this is a comment
  {device}
  o[threadIdx.x] = q[threadIdx.x];
}}

void launch(int64_t q, int64_t o, int64_t n, int64_t stream) {{
  {host}
  attn<<<1, 32, 0, reinterpret_cast<cudaStream_t>(stream)>>>(reinterpret_cast<const half*>(q),
                                                            reinterpret_cast<half*>(o), int(n));
}}
"""

_ext = None


def attention(q, k, v, *, causal, sm_scale):
    global _ext
    if _ext is None:
        _ext = {build}
    o = torch.empty_like(q)
    {python}
    _ext.launch(q.data_ptr(), o.data_ptr(), q.numel(), torch.cuda.current_stream().cuda_stream)
    return o
'''
BUILD = 'load_extension(CUDA_SOURCE, functions=["launch"])'


def candidate(includes: str = "", device: str = "", host: str = "", build: str = BUILD, python: str = "pass") -> str:
    return TEMPLATE.format(includes=includes, device=device, host=host, build=build, python=python)


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> AttentionEvaluator:
    return AttentionEvaluator("smoke", cache_dir=tmp_path_factory.mktemp("cuda-legality") / "static")


def check(evaluator: AttentionEvaluator, source: str):
    return evaluator.check(Candidate.from_source(source, entry="kernel.py"), None)  # type: ignore[arg-type]


def test_the_template_itself_is_legal() -> None:
    assert scan_source(find_cuda_source(candidate())) == []


@pytest.mark.parametrize("parts, rule, words", [
    ({"includes": "#include <cublas_v2.h>", "host": "cublasHgemm(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);"},
     "library-call", "cublas"),
    ({"includes": "#include <cudnn.h>"}, "library-call", "cudnn"),
    ({"includes": "#include <cutlass/gemm/device/gemm.h>"}, "library-call", "cutlass"),
    ({"device": "cute::Tensor t;"}, "library-call", "cute::"),
    ({"includes": "#include <torch/extension.h>", "host": "at::matmul(at::Tensor(), at::Tensor());"},
     "library-call", "torch"),
    ({"host": "torch::Tensor t = torch::empty({1});"}, "torch-in-cuda", "torch::"),
    ({"host": "cudaEvent_t e; cudaEventCreate(&e); cudaEventRecord(e, 0);"}, "stream-or-timer", "cudaEvent"),
    ({"host": "cudaStream_t side; cudaStreamCreate(&side);"}, "stream-or-timer", "cudaStreamCreate"),
    ({"host": "cudaGraphExec_t g; cudaGraphLaunch(g, 0);"}, "stream-or-timer", "cudaGraph"),
    ({"host": "cudaDeviceSynchronize();"}, "stream-or-timer", "cudaDeviceSynchronize"),
    ({"host": "static void* cache; cudaMalloc(&cache, 1024);"}, "device-memory", "cudaMalloc"),
    ({"host": "cudaMemcpy((void*)o, (void*)q, 2, cudaMemcpyDeviceToDevice);"}, "device-memory", "cudaMemcpy"),
    ({"host": 'const char* s = getenv("ANTHROPIC_API_KEY");'}, "host-facility", "getenv"),
    ({"host": "std::thread t([] {});"}, "host-facility", "std::thread"),
    ({"device": 'unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));'},
     "device-timer", "%globaltimer"),
    ({"device": "long long t = clock64();"}, "device-timer", "clock64"),
    ({"includes": '#include "/etc/passwd"'}, "include", "/etc/passwd"),
    ({"includes": "#include <fstream>"}, "include", "fstream"),
])
def test_a_cuda_cheat_is_illegal_with_its_kernel_py_line(evaluator, parts: dict[str, str], rule: str,
                                                         words: str) -> None:
    source = candidate(**parts)
    stage = check(evaluator, source)
    assert stage.status is Status.ILLEGAL, stage.reason
    assert f"[{rule}]" in stage.reason and words in stage.reason
    line = int(stage.reason.split(":")[0].removeprefix("line "))
    assert words.split("::")[0].lstrip("%").split()[0].strip('"/').split("/")[0] in source.splitlines()[line - 1]


@pytest.mark.parametrize("parts, status, words", [
    ({"build": 'load_extension(CUDA_SOURCE + "int x;", functions=["launch"])'}, Status.COMPILE_ERROR,
     "the name CUDA_SOURCE itself"),
    ({"build": "load_extension(CUDA_SOURCE, functions=NAMES)"}, Status.COMPILE_ERROR, "literal list"),
    ({"build": 'load_extension(CUDA_SOURCE, functions=["launch", "hidden"])'}, Status.COMPILE_ERROR,
     "no host function 'hidden'"),
    ({"build": "torch.utils.cpp_extension.load_inline('x', '')"}, Status.COMPILE_ERROR, "never calls load_extension"),
    ({"python": "o = torch.matmul(q, k)"}, Status.ILLEGAL, "torch.matmul"),
])
def test_the_python_side_must_build_cuda_source_as_it_is(evaluator, parts: dict[str, str], status: Status,
                                                         words: str) -> None:
    stage = check(evaluator, candidate(**parts))
    assert stage.status is status and words in stage.reason, stage.reason


def test_load_inline_called_directly_is_illegal(evaluator) -> None:
    source = candidate(python="torch.utils.cpp_extension.load_inline('x', '')")
    stage = check(evaluator, source)
    assert stage.status is Status.ILLEGAL and "torch.utils" in stage.reason


def test_a_computed_cuda_source_is_a_compile_error_naming_the_line(evaluator) -> None:
    source = textwrap.dedent('''
        import torch
        PARTS = ["__global__ void k() {}"]
        CUDA_SOURCE = "\\n".join(PARTS)
        def attention(q, k, v, *, causal, sm_scale):
            return q
    ''')
    stage = check(evaluator, source)
    assert stage.status is Status.COMPILE_ERROR and "line 4: CUDA_SOURCE must be one string literal" in stage.reason
