"""Static legality scan of a candidate's source: named findings, each with a line and a reason.

Fast feedback for the agent, not the trust boundary: scores come from the trusted side's checks,
and no score may depend on this scan. It resolves import and assignment aliases per scope
(`F = torch.nn.functional`; `scan_names.py`) to qualified names and flags: library attention,
matmul or softmax used on the data outside Triton kernels; dynamic code and attribute lookup by
string (eval/exec/compile/getattr/__import__/__dict__...), and binding those names at all;
reflection (`reflection.py`): frame, traceback, generator and code attributes (`gi_frame`,
`f_back`, `tb_frame`, `co_consts`...), dunders reached through any getattr-like path, and code in
string annotations, which `typing.get_type_hints` evaluates; imports outside a small allowlist
(threads, subprocesses, ctypes, os, files, gc, timers...), also when an attribute chain reaches
such a module, or a function or class defined in one, through an allowed one
(`torch.serialization.os`, `typing.sys`, `triton.runtime.build.Path`); file and shared-memory
loaders (`from_file`, `mmap`...); side streams, CUDA graphs and events; and patching any
attribute of an imported module (timers, synchronize, ...).

Library-compute rules apply to the code that runs: module-level statements and the functions
reachable from `attention` (a test helper with a torch reference below the kernel is fine).
The capability rules apply to the whole file.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import types
from dataclasses import dataclass

from . import reflection
from .scan_names import Names

ENTRY_FUNCTION = "attention"

ALLOWED_IMPORTS = frozenset({
    "__future__", "collections", "dataclasses", "enum", "functools", "itertools", "math", "numbers",
    "torch", "triton", "typing",
})

# (qualified-name prefix, rule, what it is). A load of the name, or of anything under it, is a finding.
# The one evoagent import a candidate may make: the CUDA build helper (a CUDA candidate, docs/cuda.md).
BUILD_IMPORT = ("evoagent.targets.attention.cuda_build", "load_extension")

_BANNED_NAMES: tuple[tuple[str, str, str], ...] = (
    ("torch.nn.functional.scaled_dot_product_attention", "library-attention", "library attention"),
    ("torch.nn.functional.multi_head_attention_forward", "library-attention", "library attention"),
    ("torch.nn.MultiheadAttention", "library-attention", "library attention"),
    ("torch.nn.attention", "library-attention", "library attention"),
    ("torch._scaled_dot_product", "library-attention", "library attention"),
    ("torch._fused_sdp", "library-attention", "library attention"),
    ("torch._flash_attention", "library-attention", "library attention"),
    ("torch._efficient_attention", "library-attention", "library attention"),
    ("torch._cudnn_attention", "library-attention", "library attention"),
    *((f"torch.{name}", "library-matmul", "library matmul") for name in (
        "matmul", "mm", "bmm", "baddbmm", "addmm", "addbmm", "addmv", "einsum", "tensordot", "dot", "vdot",
        "mv", "inner", "outer", "chain_matmul", "linalg", "nn.functional.linear", "nn.functional.bilinear",
        "nn.Linear", "nn.Bilinear", "sparse", "_addmm_activation", "_scaled_mm", "_grouped_mm",
    )),
    *((f"torch.{name}", "library-softmax", "library softmax") for name in (
        "softmax", "log_softmax", "_softmax", "nn.functional.softmax", "nn.functional.log_softmax",
        "nn.functional.softmin", "special.softmax", "special.log_softmax", "nn.Softmax", "nn.LogSoftmax",
    )),
    *((f"torch.{name}", "raw-operator", "raw operator or compiler entry point") for name in (
        "ops", "_ops", "_C", "library", "compile", "_dynamo", "_inductor", "jit", "fx", "export",
        "utils", "hub", "_higher_order_ops", "_prims", "_refs", "_decomp", "func", "vmap", "compiler",
        "overrides", "_functorch", "_library", "_subclasses", "_jit_internal", "_export", "profiler",
        "autograd.profiler",
    )),
    *((f"torch.cuda.{name}", "stream-or-timer", "side stream, CUDA graph or timing event") for name in (
        "Stream", "stream", "ExternalStream", "set_stream", "graph", "graphs", "CUDAGraph",
        "make_graphed_callables", "Event", "_sleep", "_set_stream_by_id",
    )),
    *((f"torch.{name}", "stream-or-timer", "side stream or timing event") for name in (
        "Stream", "Event", "Generator",
    )),
    *((f"torch.{name}", "file-access", "file or host-memory access") for name in (
        "load", "save", "from_file", "from_numpy", "frombuffer", "multiprocessing", "distributed",
        "serialization", "storage", "package",
    )),
    ("triton.runtime.jit", "raw-operator", "Triton's launcher internals"),
    ("triton.compiler", "raw-operator", "Triton's compiler internals"),
    ("triton.knobs", "raw-operator", "Triton's global settings"),
    ("triton.backends", "raw-operator", "Triton's backend compilers and drivers"),
    ("triton.runtime.build", "native-code", "compiles and loads C code into the process"),
    ("triton.runtime.cache", "file-access", "Triton's cache files"),
)
# Functions and classes defined under these are banned wherever an allowed module re-exports them
# (`triton.backends.nvidia.driver.compile_module_from_src`); triton.runtime.jit defines `triton.jit` itself.
_BANNED_ORIGINS = tuple((prefix, rule, what) for prefix, rule, what in _BANNED_NAMES
                        if rule in ("raw-operator", "native-code") and prefix != "triton.runtime.jit")

# Methods that compute on tensors with a library kernel, whatever the receiver.
_BANNED_METHODS: dict[str, tuple[str, str]] = {
    **{m: ("library-matmul", "library matmul") for m in (
        "matmul", "mm", "bmm", "baddbmm", "addmm", "addbmm", "addmv", "mv", "__matmul__", "__rmatmul__")},
    **{m: ("library-softmax", "library softmax") for m in ("softmax", "log_softmax", "softmin")},
    "scaled_dot_product_attention": ("library-attention", "library attention"),
    **{m: ("host-copy", "copies tensor data to the host") for m in ("numpy", "cpu", "tolist")},
    **{m: ("stream-or-timer", "side stream or timing event") for m in ("record_stream", "elapsed_time")},
    **{m: ("file-access", "maps a file or shared memory into tensors") for m in (
        "from_file", "fromfile", "from_buffer", "frombuffer", "memmap", "mmap", "_new_shared_filename_cpu",
        "_new_using_filename_cpu", "_share_filename_cpu_", "_new_shared_fd_cpu", "_share_fd_cpu_")},
}

# Modules a candidate may not reach, whatever the path: the imports outside ALLOWED_IMPORTS that give
# the process, files, frames or dynamic code. An attribute chain through an allowed module that has
# one of these names (`typing.sys`, `torch.serialization.os`) is a finding even where the chain
# cannot be followed through the real modules (see `_reached_module`).
FORBIDDEN_MODULE_NAMES = frozenset({
    "os", "posix", "sys", "importlib", "builtins", "subprocess", "_posixsubprocess", "ctypes", "gc", "threading",
    "_thread", "multiprocessing", "concurrent", "asyncio", "socket", "signal", "select", "selectors", "inspect",
    "traceback", "types", "code", "codeop", "dis", "pickle", "marshal", "shelve", "mmap", "io", "_io", "pathlib",
    "shutil", "tempfile", "glob", "runpy", "site", "sysconfig", "time", "resource", "fcntl", "operator",
    "weakref", "numpy", "urllib", "http",
})

# Forbidden module names no honest attribute has: `.os` on anything is a finding (not `.time`, `.select`, `.io`).
_MODULE_ATTRIBUTES = FORBIDDEN_MODULE_NAMES - {
    "types", "code", "dis", "io", "time", "select", "signal", "resource", "site", "glob", "operator", "numpy",
    "urllib", "http", "concurrent"}

_BANNED_BUILTINS: dict[str, tuple[str, str]] = {
    **{b: ("dynamic-code", "runs code built at run time") for b in ("eval", "exec", "compile", "__import__")},
    **{b: ("string-lookup", "looks up attributes or names by string") for b in (
        "getattr", "setattr", "delattr", "hasattr", "vars", "globals", "locals", "dir", "__builtins__")},
    "open": ("file-access", "opens a file"),
    "input": ("file-access", "reads standard input"),
    "breakpoint": ("dynamic-code", "enters the debugger"),
    "memoryview": ("file-access", "reads raw memory"),
}

# aten operations a wrapper may run around its launches: allocation, views and plain copies.
ALLOWED_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "fill_", "zero_",
    "arange", "scalar_tensor", "lift_fresh", "lift_fresh_copy", "view", "_unsafe_view", "reshape",
    "_reshape_alias", "as_strided", "transpose", "t", "permute", "expand", "unsqueeze", "squeeze",
    "select", "slice", "alias", "detach", "unbind", "split", "split_with_sizes", "chunk", "narrow",
    "unflatten", "flatten", "movedim", "view_as", "clone", "copy_", "_to_copy", "contiguous",
    "_local_scalar_dense", "set_", "resize_",
})

# The builtins that take an attribute name as their second argument.
_ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One legality problem: a rule name, the line, and a reason a person or agent can act on."""

    rule: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} [{self.rule}]"


def _is_jit_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, (ast.Attribute, ast.Name)) and (
        (isinstance(target, ast.Attribute) and target.attr in ("jit", "autotune", "heuristics"))
        or (isinstance(target, ast.Name) and target.id == "jit")
    )


def _banned_name(qualname: str) -> tuple[str, str] | None:
    for prefix, rule, what in _BANNED_NAMES:
        if qualname == prefix or qualname.startswith(prefix + "."):
            return rule, what
    if (last := qualname.rpartition(".")[2]) in reflection.REFLECTION_NAMES:
        return reflection.REFLECTION_NAMES[last]
    reached = _reached_module(qualname)
    if reached is None:
        private = next((part for part in qualname.split(".")[1:] if part.startswith("_")
                        and not reflection.is_dunder(part)), None)
        return None if private is None else ("private-internal", (
            f"a private name ({private}) of an allowed package: internals, not an API, among them code runners "
            "(torch._import_dotted_name, dataclasses._create_fn); use the public API"))
    for prefix, rule, what in _BANNED_ORIGINS:
        if reached == prefix or reached.startswith(prefix + "."):
            return rule, f"{what}; reached as {reached}"
    allowed = ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))
    return "module-reach", (f"reaches {reached!r}, outside the allowed modules, through another module; a "
                           f"candidate may use only {allowed}")


def _reached_module(qualname: str) -> str | None:
    """The first module outside the allowed packages that the dotted chain passes through, or None.

    The chain is followed through the real modules' namespaces (`vars`, so no `__getattr__` hook
    runs and nothing new is imported beyond the allowed top-level packages): `torch.serialization._os`
    reaches 'os' whatever the attribute is called. Where the chain leaves what can be followed, a
    component named like a forbidden module (FORBIDDEN_MODULE_NAMES) still counts.
    """
    parts = qualname.split(".")
    obj: object = _allowed_root(parts[0])
    followed = 1
    while followed < len(parts) and isinstance(obj, (types.ModuleType, type)):
        value = vars(obj).get(parts[followed], _MISSING)
        if value is _MISSING:
            break
        if isinstance(value, types.ModuleType) and (value.__name__.split(".")[0] not in ALLOWED_IMPORTS
                                                     or _banned_origin(value.__name__)):
            return value.__name__
        if (source := _forbidden_origin(value)) is not None:
            return source
        obj, followed = value, followed + 1
    return next((name for name in parts[followed:] if name in FORBIDDEN_MODULE_NAMES), None)


_MISSING = object()

# C modules behind forbidden ones (`from _operator import attrgetter`), and what `builtins` holds that
# builds or reaches code: a function, class or type imported into an allowed module from one of them
# (`triton.runtime.build.Path`, `torch.xpu.cast` from ctypes) is as good as the module.
_FORBIDDEN_C_MODULES = frozenset({"_operator", "_ctypes", "_pickle", "_weakref", "_signal", "_socket", "_imp",
                                  "_frozen_importlib", "_frozen_importlib_external", "_io", "posix", "_thread"})
_FORBIDDEN_BUILTINS = (types.CodeType, types.FunctionType, types.FrameType, types.TracebackType, types.CellType,
                       types.ModuleType, *(getattr(builtins, name) for name in _BANNED_BUILTINS
                                           if name != "__builtins__"))


def _banned_origin(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix, _, _ in _BANNED_ORIGINS)


def _forbidden_origin(value: object) -> str | None:
    """'module.name' when `value` is a function or class defined in a forbidden module, else None."""
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return None
    module = vars(value).get("__module__") if isinstance(value, type) else value.__module__
    if not isinstance(module, str):
        return None
    top = module.split(".")[0]
    if _banned_origin(module) and not module.startswith("torch._C") \
            and not (isinstance(value, type) and issubclass(value, BaseException)):  # torch ops; CompilationError
        return f"{module}.{value.__qualname__}"
    if top == "builtins":
        return f"builtins.{value.__name__}" if any(value is b for b in _FORBIDDEN_BUILTINS) else None
    return f"{module}.{value.__qualname__}" if top in FORBIDDEN_MODULE_NAMES | _FORBIDDEN_C_MODULES else None


@functools.cache
def _allowed_root(name: str) -> object:
    """The allowed top-level module `name`, imported (None when it is not allowed or cannot be imported)."""
    if name not in ALLOWED_IMPORTS or name == "__future__":
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _reachable_functions(tree: ast.Module, entry: str) -> set[str]:
    """Module-level function/class names reachable by name from `entry` and module-level code."""
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    seeds: set[str] = {entry}
    for stmt in tree.body:
        if stmt.__class__ in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef) or _is_main_guard(stmt):
            continue
        seeds |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
    reached: set[str] = set()
    todo = [name for name in seeds if name in defs]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo.extend(n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs)
    return reached


def _is_main_guard(stmt: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (with no else): code that runs only when the file is run as a script."""
    test = stmt.test if isinstance(stmt, ast.If) and not stmt.orelse else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


class _Scanner(ast.NodeVisitor):
    def __init__(self, names: Names, reachable: set[str]) -> None:
        self.names = names
        self.reachable = reachable
        self.findings: list[Finding] = []
        self.library_rules = True  # off inside Triton kernels and in code that never runs
        self.named_keys: set[ast.AST] = set()  # getattr(x, KEY) keys already named with their call

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        self.findings.append(Finding(rule=rule, line=getattr(node, "lineno", 0), message=message))

    def scan_module(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.scan_definition(stmt, runs=stmt.name in self.reachable)
            else:
                self.scan_with(stmt, library_rules=not _is_main_guard(stmt))

    def scan_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, *, runs: bool) -> None:
        """Decorators, defaults, annotations and bases run where the definition is; the body when it is called."""
        if isinstance(node, ast.ClassDef):
            outside: list[ast.AST] = [*node.decorator_list, *node.bases, *node.keywords]
        else:
            outside = [*node.decorator_list, node.args, *([node.returns] if node.returns else [])]
            self.check_annotation(node.returns)
        for part in outside:
            self.scan_with(part, library_rules=self.library_rules)
        is_kernel = any(_is_jit_decorator(d) for d in node.decorator_list)
        for stmt in node.body:
            self.scan_with(stmt, library_rules=runs and not is_kernel)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scan_definition(node, runs=self.library_rules)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scan_definition(node, runs=self.library_rules)

    def check_annotation(self, annotation: ast.expr | None) -> None:
        """Strings in annotations are code for typing.get_type_hints: only dotted names that reach nothing banned."""
        if annotation is None:
            return
        for line, rule, message in reflection.annotation_findings(annotation, FORBIDDEN_MODULE_NAMES):
            self.findings.append(Finding(rule=rule, line=line, message=message))
        for node in ast.walk(annotation):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and (banned := _banned_name(node.value.strip())) is not None:
                self.add(node, "annotation-code", f"string annotation {node.value!r} names {banned[1]} [{banned[0]}]")

    def visit_arg(self, node: ast.arg) -> None:
        self.check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.check_annotation(node.annotation)
        self.generic_visit(node)

    def scan_bindings(self) -> None:
        for binding in self.names.bindings:
            found = reflection.binding_finding(binding, _BANNED_BUILTINS)
            if found is not None:
                self.findings.append(Finding(rule=found[0], line=binding.line, message=found[1]))

    def scan_with(self, node: ast.AST, *, library_rules: bool) -> None:
        saved, self.library_rules = self.library_rules, library_rules
        self.visit(node)
        self.library_rules = saved

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "import", "relative import (a candidate is a single file)")
            return
        module = node.module or ""
        if module == BUILD_IMPORT[0]:
            if [a.name for a in node.names] != [BUILD_IMPORT[1]]:
                self.add(node, "import", f"imports {[a.name for a in node.names]} from {module}; only "
                                         f"`from {module} import {BUILD_IMPORT[1]}` is allowed")
            return
        self.check_import(node, module)
        for alias in node.names:
            if alias.name == "*":
                self.add(node, "import", f"'from {module} import *' hides which names are used; import them by name")
            else:
                self.check_name(node, f"{module}.{alias.name}")

    def check_import(self, node: ast.AST, module: str) -> None:
        if module.split(".")[0] not in ALLOWED_IMPORTS:
            allowed = ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))
            self.add(node, "import", f"imports {module!r}; a candidate may import only {allowed} (and a CUDA "
                                     f"candidate `from {BUILD_IMPORT[0]} import {BUILD_IMPORT[1]}`)")
        else:
            self.check_name(node, module)

    def check_name(self, node: ast.AST, qualname: str) -> bool:
        banned = _banned_name(qualname)
        if banned is None:
            return False
        rule, what = banned
        if rule.startswith("library-") and not self.library_rules:
            return False
        self.add(node, rule, f"uses {qualname} ({what})")
        return True

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return  # a binding: scan_bindings names the ones that hide a builtin or set a hook
        if node.id in _BANNED_BUILTINS and self.names.is_builtin(node):
            rule, what = _BANNED_BUILTINS[node.id]
            self.add(node, rule, f"uses {node.id}() ({what})")
        elif (found := reflection.name_finding(node.id)) is not None:
            self.add(node, *found)

    def visit_Constant(self, node: ast.Constant) -> None:
        if node in self.named_keys:
            return
        if isinstance(node.value, str) and (found := reflection.string_finding(node.value)) is not None:
            self.add(node, *found)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _ATTRIBUTE_BUILTINS and self.names.is_builtin(func) \
                and len(node.args) >= 2:
            keys = self.names.strings(node.args[1])
            self.named_keys.add(node.args[1])
            if not keys:
                self.add(node, "string-lookup", f"{func.id}() with an attribute name computed at run time")
            for key in sorted(keys):
                found = reflection.attribute_finding(key)
                if found is not None:
                    self.add(node, found[0], f"{func.id}(..., {key!r}): {found[1]}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        qualnames = sorted(self.names.qualnames(node))
        found = reflection.attribute_finding(node.attr)
        if found is not None and not (qualnames and node.attr in reflection.REFLECTION_NAMES):  # else check_name
            self.add(node, *found)
        if not qualnames and node.attr in _MODULE_ATTRIBUTES:  # `[torch][0].serialization.os`
            self.add(node, "module-reach", f"accesses .{node.attr} (the module {node.attr!r} is outside the allowed "
                                           "ones, whatever object holds it)")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            roots = qualnames or sorted(self.names.qualnames(_root(node)))
            if roots:
                self.add(node, "patching", f"assigns to {qualnames[0] if qualnames else 'an attribute of ' + roots[0]} "
                                           "(patching a module or class at run time)")
        elif qualnames and [q for q in qualnames if self.check_name(node, q)]:
            return
        elif node.attr in _BANNED_METHODS and qualnames != ["torch.cpu"]:
            rule, what = _BANNED_METHODS[node.attr]
            if self.library_rules or not rule.startswith("library-"):
                self.add(node, rule, f"calls .{node.attr}() ({what})")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        for key in sorted(self.names.strings(node) if node not in self.named_keys else ()):  # "f_" + "back"
            if (found := reflection.string_finding(key)) is not None:
                self.add(node, *found)
        if isinstance(node.op, ast.MatMult) and self.library_rules:
            self.add(node, "library-matmul", "uses the @ operator outside a Triton kernel (library matmul)")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, ast.MatMult) and self.library_rules:
            self.add(node, "library-matmul", "uses the @= operator outside a Triton kernel (library matmul)")
        self.generic_visit(node)


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node


def scan(source: str, *, entry: str = ENTRY_FUNCTION) -> list[Finding]:
    """Every legality finding in `source`, in line order. Raises SyntaxError if it does not parse."""
    tree = ast.parse(source)
    scanner = _Scanner(Names(tree), _reachable_functions(tree, entry))
    scanner.scan_module(tree)
    scanner.scan_bindings()
    unique = {(f.line, f.rule, f.message): f for f in scanner.findings}
    return sorted(unique.values(), key=lambda f: (f.line, f.rule, f.message))


def check_contract(source: str, *, entry: str = ENTRY_FUNCTION) -> str | None:
    """Why `source` does not define `attention(q, k, v, *, causal, sm_scale)`, or None if it does."""
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
    if not found:
        kernels = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        return (f"no module-level function {entry!r}; define `def {entry}(q, k, v, *, causal, sm_scale)` "
                f"(functions found: {kernels or 'none'})")
    args = found[-1].args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]]
    keywords = [a.arg for a in args.kwonlyargs]
    names = set(positional) | set(keywords)
    if len(positional) < 3 or not {"causal", "sm_scale"} <= names:
        return (f"line {found[-1].lineno}: {entry}() takes ({', '.join(positional + keywords)}); it must accept "
                f"(q, k, v, *, causal, sm_scale)")
    return None
