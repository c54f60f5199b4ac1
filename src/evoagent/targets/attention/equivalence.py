"""When two attention versions are the same program: identical compiled kernels and the same host code.

A version's equivalence key hashes (1) each compiled kernel's SASS instruction stream (`code`: the
cubin without its line information, which moves when a line is added above the kernel) with its
launch resources, from the check stage's static report (per architecture, shape and autotune
config) and (2) the host code: the module without its
@triton.jit function bodies (their effect is the cubin) and without module-level assignments of
names the host code never reads (a constant only a kernel reads is in the cubin; one nothing reads
is no change). Anything the wrapper does differently (grids, launches, allocation) changes (2), so
a key never claims more than it knows; a report without SASS gives no key.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _is_kernel(node: ast.stmt) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if name == "jit":
            return True
    return False


def _assigned_names(node: ast.stmt) -> list[str] | None:
    """The plain names a module-level assignment binds, or None when it is not a plain assignment."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return None
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    return names if len(names) == len(targets) else None


def host_fingerprint(source: str) -> str | None:
    """The hash of the host code (see the module docstring); None if the source does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    host_reads: set[str] = set()
    for node in tree.body:
        parts: list[ast.AST] = list(node.decorator_list) if _is_kernel(node) else [node]  # type: ignore[attr-defined]
        for part in parts:
            host_reads |= {n.id for n in ast.walk(part) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    kept: list[str] = []
    for node in tree.body:
        if _is_kernel(node):
            assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))  # Check internal correctness.
            kept.append(f"kernel {node.name} " + "".join(ast.dump(d) for d in node.decorator_list))
            continue
        names = _assigned_names(node)
        if names is not None and not set(names) & host_reads:
            continue  # a constant the host never reads
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        kept.append(ast.dump(node))
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:32]


def equivalence_key(source: str, static: Mapping[str, Any]) -> str | None:
    """The key of a version from its source and the check stage's `static` details ({arch: compact report})."""
    host = host_fingerprint(source)
    kernels: list[tuple[Any, ...]] = []
    for arch, report in sorted(static.items()):
        entries = report.get("kernels") if isinstance(report, Mapping) else None
        if not entries or not report.get("ok"):
            return None
        for k in entries:
            if not k.get("code"):
                return None
            kernels.append((arch, k.get("kernel"), k.get("config"), k.get("autotune"), k["code"], k.get("num_warps"),
                            k.get("num_stages"), k.get("shared_bytes")))
    if host is None or not kernels:
        return None
    return hashlib.sha256(json.dumps([host, sorted(kernels, key=repr)]).encode()).hexdigest()[:32]
