"""What a kernel body may contain before a replay defines it: Triton language, not general Python.

Without a GPU, Triton's interpreter runs a `@triton.jit` body as Python, and a branch on a constexpr
that the GPU compile never visits is never checked by Triton. So before the interpreter replay defines
any kernel, its source is read here (data, never run): no imports, no dunder names, no frame or code
internals, no builtins that reach objects by name, no nested functions or classes. The replay child
applies the same rules and gives kernels only a small set of builtins.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Builtins a kernel body may name (Triton's own builtin namespace is smaller still).
SAFE_BUILTINS = frozenset({
    "range", "len", "min", "max", "abs", "int", "float", "bool", "isinstance", "print", "tuple", "list", "zip",
    "enumerate", "reversed", "sum", "any", "all", "round", "divmod", "pow", "None", "True", "False",
    "ValueError", "AssertionError", "TypeError", "RuntimeError", "NotImplementedError",
})
_UNSAFE_BUILTINS = frozenset({
    "__import__", "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "dir", "breakpoint", "input", "type", "object", "super", "memoryview", "id", "exit",
    "quit", "help", "classmethod", "staticmethod", "property", "__builtins__", "__loader__", "__spec__",
})
_INTERNALS = frozenset({
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "f_back",
    "f_globals", "f_locals", "f_builtins", "f_code", "co_consts", "co_code", "func_globals", "ctypes", "modules",
})
_FORBIDDEN_NODES = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.ClassDef, ast.Lambda, ast.Try,
                    ast.With, ast.AsyncWith, ast.AsyncFunctionDef, ast.FunctionDef, ast.Yield, ast.YieldFrom,
                    ast.Await, ast.Delete)


@dataclass(frozen=True, slots=True)
class BodyProblem:
    """Something in a kernel body that is not Triton language (kernel, line, what)."""

    kernel: str
    line: int
    what: str

    def __str__(self) -> str:
        return (f"line {self.line}: kernel {self.kernel} contains {self.what}; a @triton.jit body may hold Triton "
                "language only (tl operations, arithmetic, constexpr branches, loops)")


def is_jit(decorator: ast.expr) -> bool:
    """Whether a decorator is `triton.jit`, `jit`, or a call of either."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "jit") or (isinstance(target, ast.Name)
                                                                            and target.id == "jit")


def jit_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """The module-level functions decorated with `jit`."""
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(is_jit(d) for d in node.decorator_list)]


def body_problems(source: str, filename: str = "kernel.py") -> list[BodyProblem]:
    """Everything in the file's `@triton.jit` bodies that is not Triton language, in line order."""
    problems = []
    for function in jit_functions(ast.parse(source, filename)):
        for statement in function.body:
            for node in ast.walk(statement):
                what = _problem(node)
                if what:
                    problems.append(BodyProblem(function.name, getattr(node, "lineno", function.lineno), what))
    return sorted(problems, key=lambda p: p.line)


def _problem(node: ast.AST) -> str | None:
    if isinstance(node, _FORBIDDEN_NODES):
        return f"a {type(node).__name__} statement or expression"
    if isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in _UNSAFE_BUILTINS):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute) and (node.attr.startswith("__") or node.attr in _INTERNALS):
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("__"):
        return f"the string {node.value!r}"
    return None
