"""The legality scan's reflection rules: names resolved per scope, frames, string annotations, dunders by any path.

Each attack below was missed by the scan before 2026-12-07 (issue 23): an alias table kept for the
whole file, frame attributes without dunders, string annotations evaluated as code, and dunder
names reached through getattr-like paths. Every test states the finding's rule and line.
"""

from __future__ import annotations

import importlib
import textwrap
import types

import pytest

from evoagent.targets.attention.legality import ALLOWED_IMPORTS, FORBIDDEN_MODULE_NAMES, Finding, scan


def findings(source: str) -> list[Finding]:
    return scan(textwrap.dedent(source))


def found(source: str) -> set[tuple[str, int]]:
    """(rule, line) of every finding."""
    return {(f.rule, f.line) for f in findings(source)}


# -- 1. names resolve per scope --------------------------------------------------------------------

@pytest.mark.parametrize("builtin, use, rule", [
    ("getattr", "getattr(torch, 'mat' + 'mul')", "string-lookup"),
    ("__import__", "__import__('sys')", "dynamic-code"),
    ("open", "open('/etc/passwd')", "file-access"),
    ("eval", "eval('q')", "dynamic-code"),
])
def test_a_builtin_shadowed_in_a_function_never_called_stays_a_builtin_everywhere_else(
        builtin: str, use: str, rule: str) -> None:
    source = f"""\
        import torch
        def _never_called():
            {builtin} = torch.nn
        def attention(q, k, v, *, causal, sm_scale):
            return {use}
        """
    assert (rule, 5) in found(source)
    assert ("rebinding", 3) in found(source)


@pytest.mark.parametrize("binding", [
    "getattr = 1",
    "def getattr(x, name):\n    pass",
    "class getattr:\n    pass",
    "import torch as getattr",
    "from torch import nn as eval",
    "for getattr in range(2):\n    pass",
    "with open_ctx() as getattr:\n    pass",
    "try:\n    pass\nexcept Exception as getattr:\n    pass",
    "x = [1 for getattr in range(2)]",
    "f = lambda getattr: 0",
    "def f(q, getattr=None):\n    pass",
    "def f():\n    global getattr\n    getattr = 1",
    "if (getattr := 1):\n    pass",
    "del vars",
    "__builtins__ = {}",
    "__name__ = '__main__'",
])
def test_binding_a_watched_builtin_or_an_interpreter_name_is_itself_a_finding(binding: str) -> None:
    source = "import torch\n" + binding + "\n"
    rebindings = [f for f in scan(source) if f.rule == "rebinding"]
    assert rebindings and rebindings[0].line >= 2, source
    assert "choose another name" in rebindings[0].message


@pytest.mark.parametrize("source, expected", [
    # a class body's names are not visible in its methods
    ("""\
        class C:
            getattr = 1
            def m(self):
                return getattr(self, 'x')
        """, {("rebinding", 2), ("string-lookup", 4)}),
    # a comprehension's variable is its own
    ("""\
        y = [getattr for getattr in [1]]
        z = getattr(1, 'a')
        """, {("rebinding", 1), ("string-lookup", 2)}),
    # a walrus in a comprehension binds in the enclosing function
    ("""\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            [(F := torch.nn.functional) for _ in [1]]
            return F.linear(q, k)
        """, {("library-matmul", 4)}),
    # nonlocal
    ("""\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            F = None
            def inner():
                nonlocal F
                F = torch.nn.functional
            inner()
            return F.linear(q, k)
        """, {("library-matmul", 8)}),
    # global
    ("""\
        import torch
        F = None
        def _setup():
            global F
            F = torch.nn.functional
        def attention(q, k, v, *, causal, sm_scale):
            return F.linear(q, k)
        """, {("library-matmul", 7)}),
    # a name assigned twice may hold either
    ("""\
        import torch
        F = torch.float16
        def attention(q, k, v, *, causal, sm_scale):
            F = torch.float16
            F = torch.nn.functional
            return F.linear(q, k)
        """, {("library-matmul", 6)}),
    # a module name read in a function defined above the assignment
    ("""\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            return F.linear(q, k)
        F = torch.nn.functional
        """, {("library-matmul", 3)}),
    # tuple unpacking
    ("""\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            F, G = torch.nn.functional, 1
            return F.linear(q, k)
        """, {("library-matmul", 4)}),
])
def test_names_resolve_by_python_scoping(source: str, expected: set[tuple[str, int]]) -> None:
    assert found(source) == expected


def test_an_alias_assigned_in_one_function_does_not_leak_into_another() -> None:
    source = """\
        import torch
        def _other():
            F = torch.nn.functional
        def attention(q, k, v, *, causal, sm_scale):
            F = torch.float16
            return F.linear(q, k)
        """
    assert findings(source) == []


# -- 2. frames reachable without dunders ---------------------------------------------------------

@pytest.mark.parametrize("chain, attribute", [
    ("g.gi_frame.f_back.f_globals", "gi_frame"),
    ("g.gi_code.co_consts", "gi_code"),
    ("coro.cr_frame.f_locals", "cr_frame"),
    ("agen.ag_frame.f_builtins", "ag_frame"),
    ("tb.tb_frame.f_back", "tb_frame"),
    ("tb.tb_next", "tb_next"),
    ("frame.f_code.co_names", "f_code"),
    ("cell.cell_contents", "cell_contents"),
])
def test_frame_traceback_generator_and_code_attributes_are_named_on_their_line(chain: str, attribute: str) -> None:
    source = f"""\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            x = {chain}
            return q
        """
    frame = [f for f in findings(source) if f.rule == "frame-access"]
    assert frame and all(f.line == 3 for f in frame)
    assert any(f".{attribute} " in f.message for f in frame), frame


@pytest.mark.parametrize("call, rule, words", [
    ("getattr(exc, '__traceback__')", "string-lookup", "'__traceback__'"),
    ("getattr(g, 'f_' + 'back')", "frame-access", "'f_back'"),
    ("getattr(g, NAME)", "frame-access", "'gi_frame'"),
    ("hasattr(g, name)", "string-lookup", "computed at run time"),
    ("setattr(g, '__class__', object)", "string-lookup", "'__class__'"),
])
def test_getattr_like_builtins_name_the_attribute_they_reach(call: str, rule: str, words: str) -> None:
    source = f"""\
        NAME = "gi_" + "frame"
        def attention(q, k, v, *, causal, sm_scale, name="x", g=None, exc=None):
            return {call}
        """
    assert any(f.rule == rule and f.line == 3 and words in f.message for f in findings(source)), findings(source)


def test_a_string_constant_naming_a_dunder_or_frame_internal_is_named_where_it_is_written() -> None:
    source = """\
        NAME = "__globals__"
        OTHER = "f_back"
        FINE = "__SECRET_PLACEHOLDER__"
        """
    assert found(source) == {("string-lookup", 1), ("frame-access", 2)}


# -- 3. string annotations evaluated as code -----------------------------------------------------

@pytest.mark.parametrize("source, rule, line", [
    ("import typing\ndef attention(q, k, v, *, causal, sm_scale):\n    return typing.get_type_hints(attention)",
     "dynamic-code", 3),
    ("from typing import get_type_hints as hints", "dynamic-code", 1),
    ("import typing\nx = typing.ForwardRef('q')._evaluate(None, None, frozenset())", "dynamic-code", 2),
    ("import functools\nimport torch\n@functools.singledispatch\ndef f(x):\n    return x\n@f.register\n"
     "def _(x: \"[__import__('sys')._getframe(1), int][1]\"):\n    return x", "annotation-code", 7),
    ("import torch\ndef f(x: list[\"__import__('os')\"]) -> None:\n    pass", "annotation-code", 2),
    ("import torch\ndef f() -> \"torch.serialization.os\":\n    pass", "annotation-code", 2),
    ("import torch\nx: 'torch.Tensor.__dict__' = None", "annotation-code", 2),
    ("x = __annotations__", "string-lookup", 1),
    ("def f():\n    pass\nx = f.__annotations__", "string-lookup", 3),
    ("def attention(q: __import__('os'), k, v, *, causal, sm_scale):\n    return q", "dynamic-code", 1),
])
def test_code_in_annotations_and_whatever_evaluates_them_is_named(source: str, rule: str, line: int) -> None:
    assert (rule, line) in found(source), findings(source)


def test_plain_dotted_string_annotations_are_allowed() -> None:
    source = """\
        from __future__ import annotations
        import torch
        import triton
        import triton.language as tl
        from typing import Optional
        @triton.jit
        def _k(X, BLOCK: "tl.constexpr"):
            pass
        def attention(q: "torch.Tensor", k: Optional["torch.Tensor"], v, *, causal: bool, sm_scale) -> torch.Tensor:
            out: "torch.Tensor" = torch.empty_like(q)
            return out
        """
    assert findings(source) == []


# -- 4. dunders and lookups by string through any getattr-like path -----------------------------

@pytest.mark.parametrize("expression, rule", [
    ("vars(q)['__dict__']", "string-lookup"),
    ("q.__dict__", "string-lookup"),
    ("object.__getattribute__(q, 'data')", "string-lookup"),
    ("type.__getattribute__(type(q), 'mro')", "string-lookup"),
    ("functools.reduce(getattr, ['__class__'], q)", "string-lookup"),
    ("functools.partial(getattr, q)", "string-lookup"),
    ("typing.getattr_static(q, 'x')", "string-lookup"),
    ("collections._itemgetter(0)", "module-reach"),
    ("[typing][0].attrgetter('__class__')", "string-lookup"),
])
def test_dunders_and_attribute_lookups_by_string_are_named_through_any_path(expression: str, rule: str) -> None:
    source = f"""\
        import collections
        import functools
        import typing
        def attention(q, k, v, *, causal, sm_scale):
            return {expression}
        """
    assert (rule, 5) in found(source), findings(source)


def _foreign_callables() -> list[tuple[str, str]]:
    """(chain, origin) for functions and classes from forbidden modules that allowed modules hold."""
    chains = []
    for name in ("torch", "torch.cuda", "torch.cuda.memory", "torch.xpu", "torch.autograd", "functools", "typing",
                 "collections", "triton.runtime.autotuner", "triton.runtime.errors", "triton.language"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attribute, value in sorted(vars(module).items()):
            if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)) \
                    and not attribute.startswith("__"):
                origin = vars(value).get("__module__") if isinstance(value, type) else value.__module__
                if isinstance(origin, str) and origin.split(".")[0] in FORBIDDEN_MODULE_NAMES - {"builtins"}:
                    chains.append((f"{name}.{attribute}", origin))
    return chains


def test_functions_and_classes_of_forbidden_modules_held_by_allowed_ones_are_named() -> None:
    chains = _foreign_callables()
    assert chains  # e.g. torch.xpu.cast (ctypes), torch.cuda.memory.signature (inspect)
    for chain, origin in chains:
        top = chain.split(".")[0]
        result = scan(f"import {chain.rpartition('.')[0]}\nx = {chain}\n")
        assert any(f.rule == "module-reach" and origin in f.message and f.line == 2 for f in result), (chain, result)
        assert top in ALLOWED_IMPORTS


def test_a_forbidden_module_reached_through_an_object_the_scan_cannot_follow_is_named() -> None:
    source = """\
        import torch
        def attention(q, k, v, *, causal, sm_scale):
            env = [torch][0].serialization.os.environ
            return (lambda: torch)().cuda.sys.modules
        """
    assert found(source) == {("module-reach", 3), ("module-reach", 4)}


def test_assigning_to_an_attribute_of_a_class_reached_by_type_is_patching() -> None:
    source = """\
        def attention(q, k, v, *, causal, sm_scale):
            type(q).clone = lambda self: self
            T = type(q)
            T.float = None
            return q
        """
    assert found(source) == {("patching", 2), ("patching", 4)}


@pytest.mark.parametrize("source, rule", [
    ("import triton.runtime.build\nm = triton.runtime.build.compile_module_from_src('int x;', 'm')", "native-code"),
    ("import triton\nm = triton.runtime.build.Path('/etc/passwd')", "native-code"),
    ("import triton\nm = triton.backends.nvidia.driver.compile_module_from_src", "raw-operator"),
    ("import triton.runtime.autotuner as a\nm = a.knobs", "raw-operator"),
    ("import triton\nc = triton.runtime.cache.get_cache_manager('key')", "file-access"),
    ("import torch\nm = torch.compiler.disable", "raw-operator"),
    ("import torch\nm = torch.overrides.TorchFunctionMode", "raw-operator"),
])
def test_native_code_compilers_and_settings_reached_through_allowed_modules_are_named(source: str, rule: str) -> None:
    assert (rule, 2) in found(source), findings(source)


@pytest.mark.parametrize("chain, origin", [
    ("torch._tensor._C._set_grad_enabled", "torch._C"),
    ("torch.cuda.memory._C", "torch._C"),
    ("torch.autograd.graph.TorchDispatchMode", "torch.utils._python_dispatch.TorchDispatchMode"),
    ("triton.runtime.autotuner.knobs", "triton.knobs"),
])
def test_a_banned_module_or_its_class_reached_through_one_that_imports_it_is_named(chain: str, origin: str) -> None:
    source = f"import {chain.split('.')[0]}\nx = {chain}\n"
    assert any(f.line == 2 and f"reached as {origin}" in f.message for f in findings(source)), findings(source)


def test_torch_ops_defined_in_c_and_compiler_errors_are_not_banned_by_where_they_are_defined() -> None:
    source = """\
        import torch
        import triton
        def attention(q, k, v, *, causal, sm_scale):
            try:
                x = torch.nn.functional.pad(q, (0, 1))
            except triton.CompilationError:
                pass
            return torch.nn.functional.gelu(q)
        """
    assert findings(source) == []


@pytest.mark.parametrize("source, rule, line", [
    ("import torch\nos = torch._import_dotted_name('os')", "private-internal", 2),
    ("import dataclasses\nf = dataclasses._create_fn('f', [], ['return 1'], globals={})", "private-internal", 2),
    ("from torch import _import_dotted_name as load", "private-internal", 1),
    ("import torch\nclass S(torch._guards.Source):\n    pass", "private-internal", 2),
    ("import triton.language as tl\nt = tl.str_to_ty('tensordesc<fp16[16],print(1)>', None)", "dynamic-code", 2),
])
def test_code_runners_inside_allowed_packages_are_named(source: str, rule: str, line: int) -> None:
    assert (rule, line) in found(source), findings(source)


# -- where the scan looks, and what it leaves alone ----------------------------------------------

def test_class_bases_keywords_and_top_level_annotations_are_scanned() -> None:
    assert ("dynamic-code", 1) in found("class C(eval('object')):\n    pass\n")
    assert ("dynamic-code", 1) in found("class C(metaclass=eval('type')):\n    pass\n")
    assert ("dynamic-code", 1) in found("def f() -> eval('int'):\n    pass\n")


def test_only_an_exact_main_guard_turns_library_rules_off() -> None:
    matmul = "    x = torch.matmul(torch.ones(2, 2), torch.ones(2, 2))\n"
    assert found("import torch\nif __name__ == '__main__':\n" + matmul) == set()
    assert found("import torch\nif __name__ != '__main__':\n" + matmul) == {("library-matmul", 3)}


def test_a_class_may_define_ordinary_methods_but_not_implicit_hooks() -> None:
    source = """\
        import torch
        class _Attention(torch.autograd.Function):
            __slots__ = ()
            def __init__(self):
                pass
            @staticmethod
            def forward(ctx, q, k, v):
                return q
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return func(*args)
            def __del__(self):
                pass
        """
    assert found(source) == {("rebinding", 10), ("rebinding", 12)}



def test_the_idioms_of_published_triton_attention_kernels_scan_clean() -> None:
    """What the Triton tutorial, FlashAttention's Triton kernel and FlagAttention write around their kernels."""
    source = """\
        import math
        import torch
        import triton
        import triton.language as tl
        try:
            from triton.tools.tensor_descriptor import TensorDescriptor
            HAS_TENSOR_DESC = True
        except ModuleNotFoundError:
            HAS_TENSOR_DESC = False

        DEVICE = triton.runtime.driver.active.get_active_torch_device()

        def is_hip():
            return triton.runtime.driver.active.get_current_target().backend == "hip"

        def _tma_pre_hook(nargs):
            nargs["desc_q"].block_shape = [nargs["BLOCK_M"], nargs["HEAD_DIM"]]

        configs = [triton.Config({"BLOCK_M": bm}, num_stages=s, num_warps=4, pre_hook=_tma_pre_hook)
                   for bm in [64, 128] for s in ([1] if is_hip() else [3, 4])]

        @triton.heuristics({"EVEN_M": lambda args: args["seqlen_q"] % args["BLOCK_M"] == 0})
        @triton.jit
        def _fwd(Q, Out, seqlen_q, BLOCK_M: tl.constexpr, EVEN_M: tl.constexpr, BIAS_TYPE: tl.constexpr):
            LN2: tl.constexpr = 0.6931471824645996
            order: tl.constexpr = (0, 1) if BIAS_TYPE == "matrix" else (1, 0)
            tl.static_assert(BLOCK_M >= 16)
            offs = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
            tl.store(Out + offs, tl.load(Q + offs) * LN2)

        class _attention(torch.autograd.Function):
            @staticmethod
            def forward(ctx, q, k, v, causal, sm_scale):
                o = torch.empty_like(q)
                extra = {"waves_per_eu": 3} if is_hip() else {}
                grid = lambda args: (triton.cdiv(q.shape[2], args["BLOCK_M"]), q.shape[0] * q.shape[1], 1)
                with torch.cuda.device(q.device.index):
                    _fwd[grid](q, o, q.shape[2], BIAS_TYPE="none", **extra)
                ctx.save_for_backward(q, k, v, o)
                ctx.sm_scale = sm_scale
                ctx.grid = grid
                return o

            @staticmethod
            def backward(ctx, do):
                q, k, v, o = ctx.saved_tensors
                return do, None, None, None, None

        def attention(q, k, v, *, causal, sm_scale):
            return _attention.apply(q, k, v, causal, sm_scale)

        if __name__ == "__main__":
            print(torch.matmul(torch.ones(2, 2), torch.ones(2, 2)), math.pi)
        """
    assert findings(source) == []


def test_a_file_built_to_multiply_alias_values_is_scanned_quickly() -> None:
    """The scan runs in the trusted process: alias and string resolution are bounded, not exponential."""
    chain = "".join(f"    x = x.a{i}\n    s = s + s + '{i}'\n" for i in range(30))
    source = "import torch\ndef f(x, s):\n    x = torch\n    s = ''\n" + chain + "    return getattr(x, s)\n"
    result = scan(source)  # finishes: with 30 reassignments unbounded sets would hold 30**6 names
    assert ("string-lookup", source.count("\n")) in {(f.rule, f.line) for f in result}
