"""A candidate's kernel language and its CUDA source, read from kernel.py's AST without running it.

A CUDA candidate keeps its CUDA C++ in one module-level string literal, `CUDA_SOURCE = r\"\"\"...\"\"\"`
(see docs/cuda.md). Both the static check (nvcc here) and `cuda_build.load_extension` (on a GPU)
compile the same text, prefixed with a `#line N "kernel.py"` directive, so that compiler messages
name lines of kernel.py.
"""

from __future__ import annotations

import ast
import enum
import io
import re
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...errors import KernelSourceError

SOURCE_NAME = "CUDA_SOURCE"
BUILD_FUNCTION = "load_extension"
BUILD_MODULE = "evoagent.targets.attention.cuda_build"

# Types a host function may take and return: pybind converts them from Python ints, floats and bools.
# nvcc options of every CUDA candidate, in the static check and in the build on a GPU (fixed: a kernel
# tunes itself with #pragma unroll, __launch_bounds__, __maxnreg__ and inline PTX instead).
NVCC_FLAGS = ("-O3", "-std=c++17", "-lineinfo")
# What torch's extension builder passes to nvcc before them (torch.utils.cpp_extension.COMMON_NVCC_FLAGS):
# no implicit __half/__nv_bfloat16 operators or conversions (use the intrinsics: __hmul, __float2half ...).
# The static check passes them too, so it compiles what the GPU build compiles.
TORCH_NVCC_FLAGS = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr")
# The machine code per architecture; the `a` targets enable wgmma/setmaxnreg (sm_90a) and tcgen05 (sm_100a).
# With nvcc 13 the -arch=sm_90a shorthand also runs a plain sm_90 pass that rejects them; -gencode does not.
GENCODE = {"sm_90a": "-gencode=arch=compute_90a,code=sm_90a", "sm_100a": "-gencode=arch=compute_100a,code=sm_100a"}

HOST_TYPES = frozenset({"void", "int", "int64_t", "int32_t", "uint64_t", "uintptr_t", "long", "bool", "float",
                        "double"})


class Language(str, enum.Enum):
    """The language of a candidate's kernels."""

    TRITON = "triton"
    CUDA = "cuda"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class CudaSource:
    """The CUDA C++ text of a candidate and where it starts in kernel.py.

    Attributes:
        text: the literal's value.
        line: the kernel.py line of the literal's first character of text (its opening quotes' line),
            or None when the text's lines cannot be mapped to the file (not one plain literal).
    """

    text: str
    line: int | None

    def for_compiler(self, filename: str = "kernel.py") -> str:
        """The text as handed to nvcc: a #line directive first, so messages name `filename`'s lines."""
        if self.line is None:
            return self.text
        return f'#line {self.line} "{filename}"\n{self.text}'


def _source_assignment(tree: ast.Module) -> ast.Assign | ast.AnnAssign | None:
    found = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == SOURCE_NAME for t in targets):
            found = node
    return found  # type: ignore[return-value]


def detect_language(source: str) -> Language:
    """CUDA when kernel.py assigns `CUDA_SOURCE` at module level, else Triton. Raises SyntaxError."""
    return Language.CUDA if _source_assignment(ast.parse(source)) is not None else Language.TRITON


def find_cuda_source(source: str) -> CudaSource:
    """The `CUDA_SOURCE` literal of kernel.py; a KernelSourceError says what is wrong with it."""
    assignment = _source_assignment(ast.parse(source))
    if assignment is None:
        raise KernelSourceError(f"kernel.py assigns no module-level {SOURCE_NAME}; a CUDA candidate keeps its CUDA C++ "
                             f'in one string literal: {SOURCE_NAME} = r"""..."""')
    value = assignment.value
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        raise KernelSourceError(f"line {assignment.lineno}: {SOURCE_NAME} must be one string literal "
                             f'({SOURCE_NAME} = r"""...""") so it can be read without running kernel.py')
    text = value.value
    # Only one literal whose value has the newlines it spans maps line for line (not implicit
    # concatenation, not escaped newlines).
    segment = ast.get_source_segment(source, value) or ""
    strings = [t for t in tokenize.generate_tokens(io.StringIO(segment).readline) if t.type == tokenize.STRING]
    plain = (len(strings) == 1 and strings[0].string == segment.strip()
             and value.end_lineno is not None and value.end_lineno - value.lineno == text.count("\n"))
    return CudaSource(text=text, line=value.lineno if plain else None)


def build_calls(source: str) -> list[ast.Call]:
    """The calls of `load_extension` (by that name or an attribute of that name) in kernel.py."""
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == BUILD_FUNCTION)
        or (isinstance(node.func, ast.Attribute) and node.func.attr == BUILD_FUNCTION))]


def strip_comments(text: str) -> str:
    """C++ text with comments and string literals blanked (newlines kept, so line numbers still hold)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)

    def blank(match: re.Match[str]) -> str:
        kept = match.group(0)
        if kept.startswith('"'):  # keep the string (an #include "x" or an asm template) minus its newlines
            return kept
        return re.sub(r"[^\n]", " ", kept)

    return pattern.sub(blank, text)


def host_declarations(text: str, functions: Sequence[str]) -> str:
    """C++ declarations of the named host functions, read from their definitions in the CUDA text.

    Raises KernelSourceError when a function is not defined at the start of a line, or takes or returns a
    type pybind cannot pass from Python (see HOST_TYPES).
    """
    clean = strip_comments(text)
    lines = []
    for name in functions:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise KernelSourceError(f"load_extension functions must be C++ identifiers (got {name!r})")
        match = re.search(rf"^[ \t]*((?:[A-Za-z_][\w:]*[ \t]+)+){name}[ \t]*\(([^;{{}}]*)\)\s*\{{", clean, re.M)
        if match is None:
            raise KernelSourceError(f"CUDA_SOURCE defines no host function {name!r} at the start of a line "
                                 f"(expected e.g. `void {name}(int64_t q, int64_t out, int n, int64_t stream) {{`)")
        ret, params = " ".join(match.group(1).split()), " ".join(match.group(2).split())
        _check_host_types(name, ret, params)
        lines.append(f"{ret} {name}({params});")
    return "\n".join(lines)


def _check_host_types(name: str, ret: str, params: str) -> None:
    words = ret.split()
    if "static" in words or "__global__" in words or "__device__" in words:
        raise KernelSourceError(f"host function {name!r} is declared `{ret}`; it must be a plain (non-static, "
                             "host) function so the Python binding can call it")
    types = [words[-1]] + [" ".join(p.split()[:-1]) for p in params.split(",") if p.strip()]
    bad = [t for t in types if t.replace("const ", "").strip() not in HOST_TYPES]
    if bad:
        raise KernelSourceError(f"host function {name!r} uses type(s) {bad}; its parameters and result must be among "
                             f"{sorted(HOST_TYPES)} (pass tensors as int64_t data pointers, the stream as int64_t)")


_CONSTEXPR = re.compile(r"^[ \t]*(?:static[ \t]+)?constexpr[ \t]+(?:int|unsigned|int32_t|uint32_t|int64_t|size_t|long)"
                        r"[ \t]+([A-Za-z_]\w*)[ \t]*=[ \t]*([^;]+);", re.M)
_INT_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: int(a / b), ast.Mod: lambda a, b: a % b, ast.LShift: lambda a, b: a << b,
    ast.RShift: lambda a, b: a >> b}


def constexpr_ints(text: str) -> dict[str, int]:
    """Integer `constexpr` constants at the start of a line, evaluated when they are arithmetic on literals
    and earlier constants (`constexpr int NUM_WARPS = BLOCK_M / 16;`); the rest are left out."""
    values: dict[str, int] = {}
    for name, expr in _CONSTEXPR.findall(strip_comments(text)):
        try:
            values[name] = _int_value(ast.parse(expr.strip(), mode="eval").body, values)
        except (SyntaxError, ValueError, KeyError, ZeroDivisionError):
            continue
    return values


def _int_value(node: ast.expr, known: dict[str, int]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return known[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_int_value(node.operand, known)
    if isinstance(node, ast.BinOp) and type(node.op) in _INT_OPS:
        return int(_INT_OPS[type(node.op)](_int_value(node.left, known), _int_value(node.right, known)))
    raise ValueError("not an integer expression of literals and constants")
