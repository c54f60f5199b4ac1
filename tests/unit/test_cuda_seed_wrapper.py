"""The CUDA seed's Python side without a GPU: its input checks, and its call of the host function."""

from __future__ import annotations

import ast
import importlib.util

import pytest
import torch

from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source, host_declarations

SEED = seed_path("cuda-fa2")


@pytest.fixture(scope="module")
def seed():
    spec = importlib.util.spec_from_file_location("seed_cuda_fa2_cpu", SEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports torch, triton and load_extension; builds nothing
    return module


def test_the_wrapper_refuses_what_the_kernel_cannot_take_before_building_anything(seed) -> None:
    q = torch.zeros(1, 2, 8, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="must be CUDA tensors on one device"):
        seed.attention(q, q, q, causal=False, sm_scale=0.125)
    with pytest.raises(ValueError, match="sm_scale must be positive"):
        seed.attention(q, q, q, causal=False, sm_scale=-1.0)
    assert seed._module is None


def test_the_wrapper_passes_the_host_functions_parameters_in_order() -> None:
    """A swapped argument would only show on a GPU: match the call's expressions to the C++ parameters."""
    text = SEED.read_text()
    declaration = host_declarations(find_cuda_source(text).text, ["attention_forward"])
    params = [p.split()[-1] for p in declaration.split("(", 1)[1].rstrip(");").split(",")]
    call = next(node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "attention_forward")
    passed = [ast.unparse(arg) for arg in call.args]
    assert list(zip(params, passed)) == [
        ("q", "q.data_ptr()"), ("k", "k.data_ptr()"), ("v", "v.data_ptr()"), ("o", "out.data_ptr()"),
        ("batch", "batch"), ("heads_q", "heads_q"), ("heads_kv", "k.shape[1]"), ("n_ctx", "n_ctx"),
        ("head_dim", "head_dim"), ("is_bf16", "q.dtype == torch.bfloat16"), ("causal", "bool(causal)"),
        ("sm_scale", "float(sm_scale)"), ("stream", "torch.cuda.current_stream(q.device).cuda_stream")]
