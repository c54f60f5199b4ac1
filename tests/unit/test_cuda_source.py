"""Reading a CUDA candidate without running it: language detection, the source literal, #line, host declarations."""

from __future__ import annotations

import pytest

from evoagent.errors import KernelSourceError
from evoagent.targets.attention.cuda_build import _as_compiled, gencode, load_extension, nvcc_flags
from evoagent.targets.attention.cuda_source import (
    Language,
    detect_language,
    find_cuda_source,
    host_declarations,
    strip_comments,
)

CANDIDATE = '''"""doc"""
import torch

CUDA_SOURCE = r"""
#include <cuda_fp16.h>
__global__ void k(half* o) { o[threadIdx.x] = __float2half(1.0f); }
// void not_this(int64_t x) {
void launch(int64_t o, int64_t n, double scale, int64_t stream) {
  k<<<1, 32, 0, reinterpret_cast<cudaStream_t>(stream)>>>(reinterpret_cast<half*>(o));
}
"""


def attention(q, k, v, *, causal, sm_scale):
    return q
'''


def test_a_module_level_cuda_source_makes_a_cuda_candidate() -> None:
    assert detect_language(CANDIDATE) is Language.CUDA
    assert detect_language("import triton\n\ndef attention(q, k, v, *, causal, sm_scale):\n    pass\n") \
        is Language.TRITON
    assert detect_language("def f():\n    CUDA_SOURCE = 'x'\n") is Language.TRITON  # not module level


def test_the_line_directive_names_the_literal_line_so_lines_map_to_kernel_py() -> None:
    found = find_cuda_source(CANDIDATE)
    assert found.line == 4
    compiled = found.for_compiler()
    assert compiled.startswith('#line 4 "kernel.py"\n')
    # The directive numbers the next line 4: the text's line i is kernel.py's line 4 + i.
    text_lines, file_lines = compiled.splitlines()[1:], CANDIDATE.splitlines()
    assert text_lines[2] == file_lines[4 + 2 - 1] == "__global__ void k(half* o) { o[threadIdx.x] = __float2half(1.0f); }"


def test_a_concatenated_source_is_read_but_not_line_mapped() -> None:
    found = find_cuda_source('CUDA_SOURCE = ("a\\n"\n "b")\n')
    assert found.text == "a\nb" and found.line is None and found.for_compiler() == "a\nb"


def test_a_computed_cuda_source_is_refused_with_the_line() -> None:
    with pytest.raises(KernelSourceError, match="line 2: CUDA_SOURCE must be one string literal"):
        find_cuda_source("import x\nCUDA_SOURCE = x.read()\n")


def test_host_declarations_come_from_the_definitions() -> None:
    text = find_cuda_source(CANDIDATE).text
    assert host_declarations(text, ["launch"]) == \
        "void launch(int64_t o, int64_t n, double scale, int64_t stream);"
    with pytest.raises(KernelSourceError, match="defines no host function 'not_this'"):
        host_declarations(text, ["not_this"])  # only in a comment


@pytest.mark.parametrize("definition, words", [
    ("void f(torch::Tensor q) {}", "torch::Tensor"),
    ("static void f(int64_t q) {}", "static"),
    ("float* f(int64_t q) {}", "defines no host function"),
])
def test_host_functions_take_and_return_plain_numbers(definition: str, words: str) -> None:
    with pytest.raises(KernelSourceError, match=words.replace("*", r"\*")):
        host_declarations(definition, ["f"])


def test_comments_are_blanked_but_lines_and_strings_kept() -> None:
    text = 'a /* x\ny */ b // z\nasm("mov.u32 %0, %%clock;");'
    clean = strip_comments(text)
    assert clean.count("\n") == text.count("\n") and "x" not in clean and "z" not in clean
    assert '"mov.u32 %0, %%clock;"' in clean


def test_load_extension_rejects_bad_functions_before_building() -> None:
    with pytest.raises(KernelSourceError, match="non-empty list"):
        load_extension("void f() {}", functions="f")
    with pytest.raises(KernelSourceError, match="defines no host function 'g'"):
        load_extension("void f() {}", functions=["g"])


def test_the_build_compiles_the_same_text_as_the_static_check(tmp_path) -> None:
    kernel = tmp_path / "kernel.py"
    kernel.write_text(CANDIDATE)
    literal = find_cuda_source(CANDIDATE)
    assert _as_compiled(literal.text, str(kernel)) == literal.for_compiler("kernel.py")
    assert _as_compiled("other text", str(kernel)) == "other text"


def test_nvcc_targets_use_gencode_for_the_arch_specific_features() -> None:
    assert nvcc_flags("sm_90a")[-1] == "-gencode=arch=compute_90a,code=sm_90a"
    assert gencode("sm_89") == "-gencode=arch=compute_89,code=sm_89"
    with pytest.raises(KernelSourceError, match="unknown CUDA architecture"):
        gencode("hopper")


def test_each_host_function_call_counts_as_a_launch_in_the_child() -> None:
    import types

    from evoagent.targets.attention import child
    from evoagent.targets.attention.cuda_build import Extension

    extension = Extension(types.SimpleNamespace(launch=lambda *args: sum(args), other=print), ["launch"])
    before = child._Launches.count
    assert extension.launch(1, 2, 3) == 6
    assert child._Launches.count == before + 1 and child._Launches.host_calls["launch"] >= 1
    with pytest.raises(AttributeError, match="no host function 'other'; list it in load_extension"):
        extension.other  # noqa: B018 -- not listed in functions, so not reachable


def test_constexpr_tile_sizes_are_read_from_the_text() -> None:
    from evoagent.targets.attention.cuda_source import constexpr_ints

    text = ("constexpr int BLOCK_M = 128;  // evo: choices 64 128\n"
            "static constexpr int NUM_WARPS = BLOCK_M / 16;\n"
            "  constexpr int NUM_STAGES = 1 << 1;\n"
            "// constexpr int BLOCK_N = 999;\n"
            "constexpr int BLOCK_N = 64;\n"
            "constexpr int ODD = sizeof(float) * 2;\n"
            "constexpr float LOG2E = 1.44f;\n")
    assert constexpr_ints(text) == {"BLOCK_M": 128, "NUM_WARPS": 8, "NUM_STAGES": 2, "BLOCK_N": 64}


def test_the_static_check_passes_the_nvcc_flags_torch_builds_with() -> None:
    from torch.utils import cpp_extension

    from evoagent.targets.attention.cuda_source import TORCH_NVCC_FLAGS

    assert list(TORCH_NVCC_FLAGS) == list(cpp_extension.COMMON_NVCC_FLAGS)
