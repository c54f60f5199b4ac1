"""Legality of a CUDA candidate: its CUDA_SOURCE text and how kernel.py builds it, as findings with kernel.py lines.

The Python wrapper gets the Triton candidates' scan (`legality.scan`); this adds the CUDA side
(docs/cuda.md "Legality"). The text is scanned with comments blanked; identifiers are matched
outside string literals, inline-PTX templates inside them:

- includes only from an allowlist of CUDA, libcu++ and C++ standard headers (no quoted includes:
  a candidate is one file; no cuBLAS, cuDNN, CUTLASS/CuTe, CUB/Thrust, torch/ATen/c10 headers);
- no library calls for the math (cublas*, cudnn*, cutlass::, cute::, cub::, thrust::) and no torch
  or ATen on the C++ side (at::, torch::, c10::): torch stays in the Python wrapper, which is traced;
- no host-side streams, events, graphs or device-wide synchronisation, no device memory managed
  behind torch's back (cudaMalloc, cudaMemcpy, ...), no threads, clocks, files, environment or processes;
- no clock reads in kernels (%globaltimer, %clock, clock64()): a finished attention kernel has no
  use for them, and a kernel that reads time can behave differently when it is timed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from .cuda_source import SOURCE_NAME, CudaSource, build_calls, host_declarations, strip_comments
from .legality import Finding

# Headers a CUDA candidate may include (<...> only). Prefixes end in '/'.
ALLOWED_INCLUDES = frozenset({
    "cuda.h", "cuda_runtime.h", "cuda_runtime_api.h", "cudaTypedefs.h", "cuda_fp16.h", "cuda_bf16.h", "cuda_fp8.h",
    "cuda_fp4.h", "mma.h", "cuda_pipeline.h", "cuda_pipeline_primitives.h", "cuda_awbarrier.h",
    "cuda_awbarrier_primitives.h", "cooperative_groups.h", "vector_types.h", "device_launch_parameters.h",
    "cooperative_groups/", "cuda/",
    "cstdint", "stdint.h", "cstddef", "stddef.h", "cmath", "math.h", "cfloat", "float.h", "climits", "limits.h",
    "limits", "type_traits", "utility", "array", "cassert", "assert.h", "initializer_list", "algorithm",
})
_LIBRARY_HEADERS = ("cublas", "cudnn", "cutlass/", "cute/", "cub/", "thrust/", "cusparse", "cufft", "curand",
                    "torch/", "ATen/", "c10/", "nvToolsExt")

# (pattern on code outside strings and comments, rule, what it is)
_CODE_RULES: tuple[tuple[str, str, str], ...] = (
    (r"\b(cublas\w*|cudnn\w*|cusparse\w*|cufft\w*|cutlass::|cute::|cub::|thrust::)", "library-call",
     "a library kernel or library math; the work must be done by kernels written in CUDA_SOURCE"),
    (r"\b((?:at|torch|c10)::)", "torch-in-cuda",
     "torch/ATen on the C++ side; allocate and check in the Python attention(), pass data pointers"),
    (r"\b(cudaEvent\w*|cudaStream(?!_t\b)\w*|cudaGraph\w*|cudaDeviceSynchronize|cudaThreadSynchronize|"
     r"cudaLaunchHostFunc|cuEvent\w*|cuStream\w*|cuGraph\w*|cuCtxSynchronize)\b", "stream-or-timer",
     "host-side streams, events, graphs or synchronisation; launch on the stream attention() passes in"),
    (r"\b(cudaMalloc\w*|cudaFree\w*|cudaMemcpy\w*|cudaMemset\w*|cudaHost\w*|cuMem\w*|malloc|calloc|realloc|"
     r"free)\s*\(", "device-memory",
     "memory managed outside torch; allocate outputs and scratch tensors with torch in attention()"),
    (r"\b(std::thread|std::async|std::jthread|pthread_\w+|std::chrono|clock_gettime|gettimeofday|"
     r"getenv|setenv|fopen|freopen|popen|system|dlopen|dlsym|fork|execv\w*|execl\w*|syscall)\b", "host-facility",
     "threads, clocks, files, environment or processes on the host"),
    (r"\b(clock|clock64|__globaltimer)\s*\(", "device-timer", "reads a clock in a kernel"),
)
_ASM_RULES: tuple[tuple[str, str, str], ...] = (
    (r"%globaltimer|%clock", "device-timer", "reads a clock in inline PTX"),
)
_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include(?:_next)?[ \t]*([<\"])([^>\"\n]*)[>\"]", re.M)


def _blank_strings(code: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\\n])*"', lambda m: " " * len(m.group(0)), code)


def scan_source(cuda: CudaSource) -> list[Finding]:
    """Every legality finding in the CUDA text, with kernel.py lines where the text maps to them."""
    clean = strip_comments(cuda.text)
    first = cuda.line if cuda.line is not None else 1

    def line_of(offset: int) -> int:
        return first + clean.count("\n", 0, offset)

    findings = [*_include_findings(clean, line_of)]
    code = _blank_strings(clean)
    for pattern, rule, what in _CODE_RULES:
        findings += [Finding(rule=rule, line=line_of(m.start()), message=f"CUDA_SOURCE uses {m.group(1)} ({what})")
                     for m in re.finditer(pattern, code)]
    strings = [(m.start(), m.group(0)) for m in re.finditer(r'"(?:\\.|[^"\\\n])*"', clean)]
    for pattern, rule, what in _ASM_RULES:
        findings += [Finding(rule=rule, line=line_of(start), message=f"CUDA_SOURCE {what} ({found.group(0)})")
                     for start, text in strings for found in [re.search(pattern, text)] if found]
    unique = {(f.line, f.rule, f.message): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.line, f.rule, f.message))


def _include_findings(clean: str, line_of: Callable[[int], int]) -> list[Finding]:
    findings = []
    for match in _INCLUDE.finditer(clean):
        quote, header = match.group(1), match.group(2).strip()
        line = line_of(match.start())
        if quote == '"':
            findings.append(Finding(rule="include", line=line, message=f'CUDA_SOURCE includes "{header}"; a '
                                    "candidate is one file: include only CUDA and standard headers, as <...>"))
        elif any(header.startswith(lib) for lib in _LIBRARY_HEADERS):
            findings.append(Finding(rule="library-call", line=line, message=f"CUDA_SOURCE includes <{header}> "
                                    "(library kernels, or torch on the C++ side: keep torch in the Python wrapper)"))
        elif header not in ALLOWED_INCLUDES and not any(
                header.startswith(p) for p in ALLOWED_INCLUDES if p.endswith("/")):
            findings.append(Finding(rule="include", line=line, message=f"CUDA_SOURCE includes <{header}>; allowed: "
                                    "CUDA headers (cuda_fp16.h, cuda_bf16.h, mma.h, cuda/*, cooperative_groups, "
                                    "cuda_pipeline.h ...) and <cstdint>, <cmath>, <type_traits> ..."))
    return findings


def check_build(source: str, cuda: CudaSource) -> str | None:
    """Why kernel.py does not build its CUDA_SOURCE as the contract says, or None.

    Every `load_extension` call must pass the name CUDA_SOURCE itself and `functions=` as a literal
    list of names of host functions defined in it (so the static check compiles what runs).
    """
    calls = build_calls(source)
    if not calls:
        return ("kernel.py defines CUDA_SOURCE but never calls load_extension(CUDA_SOURCE, functions=[...]) "
                "(from evoagent.targets.attention.cuda_build import load_extension)")
    for call in calls:
        where = f"line {call.lineno}: "
        if len(call.args) != 1 or not (isinstance(call.args[0], ast.Name) and call.args[0].id == SOURCE_NAME):
            return f"{where}load_extension must be given the name {SOURCE_NAME} itself, as its one positional argument"
        functions = next((k.value for k in call.keywords if k.arg == "functions"), None)
        if not isinstance(functions, (ast.List, ast.Tuple)) or not functions.elts or not all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in functions.elts):
            return f'{where}load_extension needs functions=["name", ...], a literal list of host function names'
        if [k.arg for k in call.keywords] != ["functions"]:
            return f"{where}load_extension takes only CUDA_SOURCE and functions=[...]"
        names = [str(e.value) for e in functions.elts if isinstance(e, ast.Constant)]
        try:
            host_declarations(cuda.text, names)
        except ValueError as exc:
            return f"{where}{exc}"
    return None
