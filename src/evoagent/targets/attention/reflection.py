"""What the legality scan counts as reflection: frame internals, dunders, lookups by string, annotation code.

A candidate that reaches a frame (`gen.gi_frame.f_back.f_globals`), a traceback, a code object or
an object's dunders can read and rewrite the harness's variables, so these are findings wherever
they are spelled: as attributes, as the constant names given to getattr-like functions, as names
bound or read, and inside string annotations, which `typing.get_type_hints` and
`functools.singledispatch` evaluate as code.
"""

from __future__ import annotations

import ast
import re
import types

from .scan_names import Binding, ScopeKind

# Attributes of generators, coroutines, frames, tracebacks, code objects and cells (no dunder needed).
_FRAME_ATTRIBUTE = re.compile(
    r"(?:gi|cr|ag)_(?:frame|code|await|yieldfrom|running|suspended|origin)"
    r"|f_(?:back|globals|locals|builtins|code|lasti|lineno|trace|trace_lines|trace_opcodes|generator)"
    r"|tb_(?:frame|next|lasti|lineno)|cell_contents|func_(?:globals|code|closure|defaults)"
    r"|co_(?:argcount|posonlyargcount|kwonlyargcount|nlocals|stacksize|flags|code|consts|names|varnames|filename"
    r"|name|qualname|firstlineno|lnotab|linetable|exceptiontable|freevars|cellvars|lines|positions|branches)")

# Attribute or imported names that evaluate annotations or look attributes up by string, whatever the module.
REFLECTION_NAMES: dict[str, tuple[str, str]] = {
    **{n: ("dynamic-code", "evaluates string annotations as code") for n in (
        "get_type_hints", "ForwardRef", "_evaluate", "_eval_type", "evaluate_forward_ref", "get_annotations",
        "call_annotate_function")},
    "str_to_ty": ("dynamic-code", "evaluates part of a type string as code (triton.language.str_to_ty)"),
    **{n: ("string-lookup", "looks attributes up by string") for n in (
        "attrgetter", "methodcaller", "getattr_static")},
    **{n: ("frame-access", "reaches the caller's frame") for n in (
        "_getframe", "_getframemodulename", "currentframe", "exc_info", "settrace", "setprofile")},
}

# Dunder names a candidate may read, as a name (`__name__`) or an attribute (`fn.__name__`).
ALLOWED_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__", "__init__", "__future__", "__main__"})
_ALLOWED_NAME_DUNDERS = frozenset({"__name__", "__doc__", "__debug__", "__file__", "__qualname__", "__module__"})
# Dunder names a candidate may bind: in a class body, and at module level.
_ALLOWED_CLASS_DUNDERS = frozenset({"__init__", "__post_init__", "__slots__", "__match_args__"})
_ALLOWED_MODULE_DUNDERS = frozenset({"__all__", "__version__"})
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

# Dunder names Python objects have (a string naming one is a lookup key; other dunder-shaped strings are text).
_KNOWN_DUNDERS = frozenset({n for kind in (
    object, type, types.FunctionType, types.ModuleType, types.GeneratorType, types.CoroutineType,
    types.AsyncGeneratorType, types.CodeType, types.FrameType, types.TracebackType, types.MethodType,
    types.BuiltinFunctionType, types.CellType, types.MappingProxyType, BaseException, property, staticmethod,
    classmethod, super, dict, list, tuple, int, float, str, bytes, slice) for n in dir(kind) if n.startswith("__")} | {
    "__wrapped__", "__import__", "__builtins__", "__loader__", "__spec__", "__path__", "__package__", "__file__",
    "__cached__", "__annotations__", "__annotate__", "__torch_function__", "__torch_dispatch__",
    "__cuda_array_interface__", "__array_interface__", "__array__", "__array_function__", "__array_ufunc__",
    "__dlpack__", "__mro_entries__", "__prepare__", "__set_name__", "__class_getitem__", "__instancecheck__",
    "__subclasscheck__", "__getattr__", "__get__", "__set__", "__delete__", "__del__", "__await__", "__aiter__",
    "__anext__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__fspath__", "__index__", "__call__",
    "__self__", "__func__", "__objclass__", "__traceback__", "__context__", "__cause__", "__notes__",
    "__orig_bases__", "__origin__", "__args__", "__parameters__", "__type_params__", "__weakref__",
    "__getitem__", "__setitem__", "__delitem__", "__iter__", "__next__", "__len__", "__contains__", "__bool__",
})


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_frame_attribute(name: str) -> bool:
    return _FRAME_ATTRIBUTE.fullmatch(name) is not None


def attribute_finding(name: str) -> tuple[str, str] | None:
    """(rule, message) when reading the attribute `name` of anything is reflection, else None."""
    if is_dunder(name) and name not in ALLOWED_DUNDERS:
        return "string-lookup", f"accesses {name} (reflection on objects or modules)"
    if is_frame_attribute(name):
        return "frame-access", (f"accesses .{name} (frame, traceback, generator and code internals reach the "
                                "harness's variables)")
    if name in REFLECTION_NAMES:
        rule, what = REFLECTION_NAMES[name]
        return rule, f"uses {name} ({what})"
    return None


def string_finding(value: str) -> tuple[str, str] | None:
    """(rule, message) when a string constant names a dunder or frame internal (a lookup's key), else None."""
    if value in _KNOWN_DUNDERS and value not in ALLOWED_DUNDERS:
        return "string-lookup", f"names {value!r} in a string (dunder names reached by string are reflection)"
    if is_frame_attribute(value):
        return "frame-access", f"names {value!r} in a string (frame and code internals reached by string)"
    return None


def name_finding(name: str) -> tuple[str, str] | None:
    """(rule, message) when reading the bare name `name` is reflection (`__annotations__`, `__spec__`, ...)."""
    if is_dunder(name) and name not in _ALLOWED_NAME_DUNDERS and name != "__builtins__":
        return "string-lookup", f"reads {name} (module and class internals are reflection)"
    return None


def binding_finding(binding: Binding, watched: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(rule, message) when binding this name hides a builtin the scan watches or sets a Python hook."""
    name = binding.name
    if name in watched:
        return "rebinding", (f"binds {name}, the name of a builtin the scan watches ({watched[name][1]}); "
                             "choose another name")
    if not is_dunder(name):
        return None
    if binding.scope is ScopeKind.CLASS and name not in _ALLOWED_CLASS_DUNDERS:
        return "rebinding", (f"defines {name} in a class (a hook Python calls implicitly, possibly inside the "
                             f"harness); only {', '.join(sorted(_ALLOWED_CLASS_DUNDERS))} may be defined")
    if binding.scope is not ScopeKind.CLASS and name not in _ALLOWED_MODULE_DUNDERS:
        return "rebinding", f"binds {name} (a name the interpreter gives meaning to); choose another name"
    return None


def annotation_findings(annotation: ast.expr, forbidden_modules: frozenset[str]) -> list[tuple[int, str, str]]:
    """(line, rule, message) for each string in an annotation that is code rather than a plain dotted name."""
    found = []
    for node, value in _annotation_strings(annotation):
        text = value.strip()
        parts = text.split(".")
        if _DOTTED_NAME.fullmatch(text) is None:
            found.append((node.lineno, "annotation-code", f"string annotation {node.value!r} is code, not a dotted "
                          "name (typing.get_type_hints and functools.singledispatch evaluate it); write the "
                          "annotation without quotes or as a dotted name such as 'torch.Tensor'"))
        elif any(is_dunder(p) or is_frame_attribute(p) or p in forbidden_modules or p in REFLECTION_NAMES
                 for p in parts):
            found.append((node.lineno, "annotation-code", f"string annotation {node.value!r} names a module or "
                          "internal a candidate may not reach (annotations can be evaluated)"))
    return found


def _annotation_strings(node: ast.expr) -> list[tuple[ast.Constant, str]]:
    """The strings in the places of an annotation that typing evaluates: itself, subscripts, unions, lists."""
    if isinstance(node, ast.Constant):
        return [(node, node.value)] if isinstance(node.value, str) else []
    if isinstance(node, ast.Subscript):
        return _annotation_strings(node.value) + _annotation_strings(node.slice)
    if isinstance(node, ast.BinOp):
        return _annotation_strings(node.left) + _annotation_strings(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [s for element in node.elts for s in _annotation_strings(element)]
    return []
