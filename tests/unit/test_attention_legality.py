"""The static legality scan: each rule, aliases, and what it deliberately leaves alone."""

from __future__ import annotations

import collections
import functools
import textwrap
import types
import typing
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl
from cheat_files import CHEATS, HONEST, honest
from hypothesis import given, settings
from hypothesis import strategies as st

import evoagent.targets.attention as target
from evoagent.targets.attention import default_seed
from evoagent.targets.attention.legality import ALLOWED_IMPORTS, check_contract, scan

HEADER = "import torch\nimport triton\nimport triton.language as tl\n"


def rules(source: str) -> set[str]:
    return {f.rule for f in scan(textwrap.dedent(source))}


def body(code: str) -> str:
    """A module whose attention() runs `code`."""
    return HEADER + "def attention(q, k, v, *, causal, sm_scale):\n" + textwrap.indent(textwrap.dedent(code), "    ")


def test_the_seed_kernel_is_legal() -> None:
    assert scan(default_seed().read_text()) == []


@pytest.mark.parametrize("code, rule", [
    ("return torch.nn.functional.scaled_dot_product_attention(q, k, v)", "library-attention"),
    ("F = torch.nn.functional\nreturn F.scaled_dot_product_attention(q, k, v)", "library-attention"),
    ("return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[0]", "raw-operator"),
    ("return torch.matmul(q, k)", "library-matmul"),
    ("return q @ k", "library-matmul"),
    ("return q.bmm(k)", "library-matmul"),
    ("return torch.Tensor.matmul(q, k)", "library-matmul"),
    ("return torch.einsum('bhnd,bhmd->bhnm', q, k)", "library-matmul"),
    ("return q.softmax(-1)", "library-softmax"),
    ("return torch.nn.functional.softmax(q, -1)", "library-softmax"),
    ("return torch.compile(lambda x: x)(q)", "raw-operator"),
    ("return eval('q')", "dynamic-code"),
    ("exec('x = 1')", "dynamic-code"),
    ("return getattr(torch, 'matmul')(q, k)", "string-lookup"),
    ("return torch.__dict__['matmul'](q, k)", "string-lookup"),
    ("return vars(torch)['matmul'](q, k)", "string-lookup"),
    ("return q.__class__", "string-lookup"),
    ("open('/etc/passwd')", "file-access"),
    ("torch.save(q, 'x.pt')", "file-access"),
    ("return torch.from_numpy(q.cpu().numpy())", "file-access"),
    ("s = torch.cuda.Stream()", "stream-or-timer"),
    ("g = torch.cuda.CUDAGraph()", "stream-or-timer"),
    ("e = torch.cuda.Event(enable_timing=True)", "stream-or-timer"),
    ("torch.cuda.synchronize = lambda: None", "patching"),
    ("torch.Tensor.add = None", "patching"),
    ("return q.cpu()", "host-copy"),
])
def test_each_rule_names_its_finding(code: str, rule: str) -> None:
    assert rule in rules(body(code))


@pytest.mark.parametrize("module", ["os", "sys", "subprocess", "threading", "multiprocessing", "ctypes", "gc",
                                    "time", "importlib", "inspect", "pickle", "socket", "numpy", "builtins"])
def test_imports_outside_the_allowlist_are_illegal(module: str) -> None:
    findings = scan(f"import {module}\n" + body("return q"))
    assert [f.rule for f in findings] == ["import"]
    assert module in findings[0].message and findings[0].line == 1


def test_aliases_from_imports_and_chained_assignments_resolve() -> None:
    source = """\
        import torch
        import torch.nn.functional as F
        from torch import nn
        from torch.nn.functional import scaled_dot_product_attention as fast
        mm = torch.bmm
        def attention(q, k, v, *, causal, sm_scale):
            a = nn.functional.softmax
            return fast(q, k, v)
        """
    messages = [f.message for f in scan(textwrap.dedent(source))]
    assert any("torch.nn.functional.scaled_dot_product_attention" in m for m in messages)
    assert any("torch.nn.functional.softmax" in m for m in messages)
    assert any("torch.bmm" in m for m in messages)


def test_findings_carry_line_numbers_in_order() -> None:
    findings = scan(body("x = 1\nreturn eval('q')"))
    assert findings[0].line == 6 and str(findings[0]).startswith("line 6: uses eval()")


def test_library_compute_in_unreachable_test_helpers_and_main_is_allowed() -> None:
    source = body("return q") + textwrap.dedent("""\

        def _reference(q, k, v):
            return torch.softmax(q @ k.transpose(-1, -2), -1) @ v

        if __name__ == "__main__":
            print(torch.matmul(torch.ones(2, 2), torch.ones(2, 2)))
        """)
    assert scan(source) == []


def test_a_helper_reachable_from_attention_is_scanned() -> None:
    source = HEADER + textwrap.dedent("""\
        def _helper(q, k):
            return q @ k
        def attention(q, k, v, *, causal, sm_scale):
            return _helper(q, k)
        """)
    assert rules(source) == {"library-matmul"}


def test_capability_rules_apply_even_in_unreachable_code() -> None:
    source = body("return q") + "\ndef _unused():\n    return eval('1')\n"
    assert rules(source) == {"dynamic-code"}


def test_triton_kernel_bodies_may_use_dot_and_matmul_like_names() -> None:
    source = HEADER + textwrap.dedent("""\
        @triton.jit
        def _k(X, BLOCK: tl.constexpr):
            x = tl.load(X + tl.arange(0, BLOCK)[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :])
            y = tl.dot(x, x)
            z = tl.softmax(y)
            tl.store(X + tl.arange(0, BLOCK)[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :], z)
        def attention(q, k, v, *, causal, sm_scale):
            _k[(1,)](q, BLOCK=16)
            return q
        """)
    assert scan(source) == []


def test_syntax_errors_raise_for_the_caller_to_report() -> None:
    with pytest.raises(SyntaxError):
        scan("def attention(:\n")


def test_contract_requires_the_attention_signature() -> None:
    assert check_contract(body("return q")) is None
    assert "no module-level function 'attention'" in check_contract("def attn(q, k, v):\n    pass\n")
    assert "must accept (q, k, v, *, causal, sm_scale)" in check_contract("def attention(q, k):\n    pass\n")


def test_a_cuda_candidate_may_import_only_the_build_helper_from_evoagent() -> None:
    allowed = "from evoagent.targets.attention.cuda_build import load_extension\n"
    assert rules(allowed) == set()
    assert rules("from evoagent.targets.attention.cuda_build import load_extension, build_key\n") == {"import"}
    assert rules("from evoagent.targets.attention import cuda_build\n") == {"import"}
    assert rules("import evoagent.targets.attention.cuda_build\n") == {"import"}


# -- modules reached through other modules, and file loaders -----------------------------------------

@pytest.mark.parametrize("source, reached", [
    ("import torch\nx = torch.serialization.os.environ", "torch.serialization"),
    ("import torch\ns = torch.UntypedStorage.from_file('/tmp/x', True, 16)", ".from_file()"),
    ("import typing\nm = typing.sys.modules['socket']", "'sys'"),
    ("from typing import sys", "'sys'"),
    ("import torch\nx = torch.cuda.os.kill", "'os'"),
    ("import torch\nser = torch.cuda\nx = ser.os.kill", "'os'"),
    ("import torch.cuda as c\nx = c.os.kill", "'os'"),
    ("import torch\nx = torch.not_loaded_here.subprocess.run", "'subprocess'"),
    ("import torch\nx = torch.serialization._open_file('/etc/passwd', 'rb')", "torch.serialization"),
    ("import torch\nx = type(torch.empty(1).untyped_storage()).from_file('/tmp/x')", ".from_file()"),
    ("import torch\nx = torch.empty(1).untyped_storage()._share_filename_cpu_()", "._share_filename_cpu_()"),
])
def test_chains_through_allowed_modules_and_file_loaders_are_named(source: str, reached: str) -> None:
    findings = scan(source + "\n")
    assert findings, source
    assert any(reached in f.message for f in findings), [str(f) for f in findings]
    assert {f.rule for f in findings} <= {"module-reach", "file-access"}


def _module_chains() -> list[tuple[str, str]]:
    """(chain, module) for every attribute of an allowed package's modules that is a module outside them."""
    chains = []
    for root, module in (("torch", torch), ("torch.cuda", torch.cuda), ("torch.nn.functional", torch.nn.functional),
                         ("typing", typing), ("functools", functools), ("triton", triton), ("triton.language", tl),
                         ("collections", collections)):
        for name, value in sorted(vars(module).items()):
            if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] not in ALLOWED_IMPORTS:
                chains.append((f"{root}.{name}", value.__name__))
    return chains


MODULE_CHAINS = _module_chains()


def _spell(chain: str, how: int, tail: str) -> str:
    """The chain spelled four ways: in full, through `import a.b as m`, `from a import b`, an assignment alias."""
    head, _, last = chain.rpartition(".")
    top = head.split(".")[0]
    if how == 0:
        return f"import {top}\nx = {chain}{tail}\n"
    if how == 1:
        return f"import {head} as m\nx = m.{last}{tail}\n"
    if how == 2:
        return f"from {head} import {last} as name\nx = name{tail}\n"
    return f"import {top}\nalias = {head}\nx = alias.{last}{tail}\n"


def test_the_allowed_packages_expose_modules_outside_them() -> None:
    reached = {module for _, module in MODULE_CHAINS}
    assert {"os", "sys"} <= reached, MODULE_CHAINS  # so the property below covers the gap it is about


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MODULE_CHAINS), st.integers(0, 3), st.sampled_from(["", ".anything", ".x.y", "['k']"]))
def test_every_chain_to_a_module_outside_the_allowlist_is_named(chain: tuple[str, str], how: int, tail: str) -> None:
    path, module = chain
    source = _spell(path, how, tail)
    findings = scan(source)
    assert any(module in f.message and f.rule == "module-reach" for f in findings), (source, findings)


@pytest.mark.parametrize("source", [
    "import torch\nx = torch.nn.functional.math.sqrt(2.0)",
    "import triton.language as tl\nx = tl.math.exp",
    "import collections.abc\nx = collections.abc.Sequence",
    "import torch\nx = torch.cuda.get_device_capability()",
    "import torch\nx = torch.float16",
    "import triton\nx = triton.runtime.driver.active.get_current_target()",
])
def test_chains_within_the_allowed_packages_are_not_findings(source: str) -> None:
    assert scan(source + "\n") == []


def test_every_seed_and_every_legitimate_test_candidate_passes_the_scan() -> None:
    seeds = sorted((Path(target.__file__).parent / "kernels").glob("*.py"))
    sources = {p.name: p.read_text() for p in seeds} | {"_honest_kernel.py": (CHEATS / "_honest_kernel.py").read_text()}
    sources |= {p.name: honest(p.name).files["kernel.py"] for p in sorted(HONEST.glob("*.py"))}
    assert len(seeds) >= 2 and len(sources) >= 6
    for name, source in sources.items():
        assert scan(source) == [], name
