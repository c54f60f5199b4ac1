"""On a CUDA device: the CUDA seed (cuda_fa2.py) against the fp32 reference, its input checks, its stream.

The extension is built once per session (load_extension caches it under the session's cache dir);
the build takes about a minute on a GPU machine, which is why the module fixture is shared.
"""

from __future__ import annotations

import math
import re

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def seed(cuda):
    """The CUDA seed imported as a module, its extension built by a first small call."""
    import importlib.util

    from evoagent.targets.attention import seed_path

    spec = importlib.util.spec_from_file_location("seed_cuda_fa2", seed_path("cuda-fa2"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    q = cuda.randn(1, 1, 16, 64, device="cuda", dtype=cuda.float16)
    module.attention(q, q, q, causal=False, sm_scale=0.125)
    return module


def _inputs(torch, batch, heads_q, heads_kv, n, d, dtype, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return tuple(torch.randn(batch, h, n, d, device="cuda", dtype=dtype, generator=gen)
                 for h in (heads_q, heads_kv, heads_kv))


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(2, 8, 8, 1000, 128), (1, 32, 4, 777, 128), (2, 16, 2, 2048, 64),
                                   (1, 4, 4, 1, 64), (1, 6, 3, 130, 64), (2, 2, 1, 64, 128)])
@pytest.mark.parametrize("causal", [False, True])
def test_cuda_seed_matches_the_fp32_reference(cuda, seed, dtype_name, shape, causal) -> None:
    torch = cuda
    dtype = getattr(torch, dtype_name)
    batch, heads_q, heads_kv, n, d = shape
    q, k, v = _inputs(torch, batch, heads_q, heads_kv, n, d, dtype)
    got = seed.attention(q, k, v, causal=causal, sm_scale=1 / math.sqrt(d))
    want = seed._reference(q.float(), k.float(), v.float(), causal=causal, sm_scale=1 / math.sqrt(d))
    rel = ((got.float() - want).norm() / want.norm()).item()
    assert got.dtype == dtype and got.shape == q.shape
    assert not torch.isnan(got).any()
    assert rel < (1e-2 if dtype_name == "bfloat16" else 2e-3)


def test_cuda_seed_launches_on_the_current_stream(cuda, seed) -> None:
    torch = cuda
    q, k, v = _inputs(torch, 1, 4, 2, 300, 128, torch.bfloat16, seed=1)
    want = seed.attention(q, k, v, causal=True, sm_scale=0.1)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        got = seed.attention(q, k, v, causal=True, sm_scale=0.1)
    side.synchronize()
    assert torch.equal(got, want)  # the same kernel on the same inputs: bit for bit


@pytest.mark.parametrize(("change", "message"), [
    (lambda t, q, k, v: (q.float(), k.float(), v.float()), "float16 or bfloat16"),
    (lambda t, q, k, v: (q[..., :32].contiguous(), k[..., :32].contiguous(), v[..., :32].contiguous()),
     "head dim must be 64 or 128"),
    (lambda t, q, k, v: (q.transpose(1, 2), k, v), "k and v must be (B, H_KV, N, D)"),
    (lambda t, q, k, v: (q, k.transpose(2, 3).contiguous().transpose(2, 3), v), "contiguous"),
    (lambda t, q, k, v: (q[:, :3], k, v), "H_Q a multiple of H_KV"),
])
def test_cuda_seed_rejects_what_it_does_not_handle(cuda, seed, change, message) -> None:
    q, k, v = _inputs(cuda, 1, 4, 2, 64, 64, cuda.float16)
    with pytest.raises(ValueError, match=re.escape(message)):
        seed.attention(*change(cuda, q, k, v), causal=False, sm_scale=0.125)
    with pytest.raises(ValueError, match="sm_scale must be positive"):
        seed.attention(q, k, v, causal=False, sm_scale=0.0)


def test_evaluator_passes_the_cuda_seed_on_the_gpu(cuda, tmp_path) -> None:
    from evoagent.candidate import Candidate
    from evoagent.result import Status
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator, seed_path

    evaluator = AttentionEvaluator("h100-d64", cache_dir=tmp_path / "static", reps=3, warmup=1, seeds=1)
    with Sandbox(evaluator.sandbox_config(), gpus=(0,)) as sandbox:
        result = evaluator.evaluate(Candidate.from_path(seed_path("cuda-fa2"), entry="kernel.py"), sandbox,
                                    stages=("check", "test", "benchmark"))
    assert result.status is Status.OK, result.reason
    assert result.score is not None and result.score > 0
