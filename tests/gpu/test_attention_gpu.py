"""On a CUDA device: the seed kernels against the torch reference in fp16/bf16, and the evaluator's GPU path."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", params=["fa2", "hopper-tma"])
def seed_module(cuda, request):
    """Each shipped seed kernel, imported as a module."""
    import importlib.util

    from evoagent.targets.attention import seed_path

    spec = importlib.util.spec_from_file_location(f"seed_{request.param.replace('-', '_')}", seed_path(request.param))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(2, 8, 8, 1000, 128), (1, 32, 4, 777, 128), (2, 16, 2, 2048, 64), (1, 4, 4, 1, 64)])
@pytest.mark.parametrize("causal", [False, True])
def test_seed_matches_the_fp32_reference(cuda, seed_module, dtype_name, shape, causal) -> None:
    torch = cuda
    dtype = getattr(torch, dtype_name)
    batch, heads_q, heads_kv, n, d = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(batch, heads_q, n, d, device="cuda", dtype=dtype, generator=gen)
    k = torch.randn(batch, heads_kv, n, d, device="cuda", dtype=dtype, generator=gen)
    v = torch.randn(batch, heads_kv, n, d, device="cuda", dtype=dtype, generator=gen)
    got = seed_module.attention(q, k, v, causal=causal, sm_scale=1 / math.sqrt(d))
    want = seed_module._reference(q.float(), k.float(), v.float(), causal=causal, sm_scale=1 / math.sqrt(d))
    rel = ((got.float() - want).norm() / want.norm()).item()
    assert got.dtype == dtype and got.shape == q.shape
    assert not torch.isnan(got).any()
    assert rel < (1e-2 if dtype_name == "bfloat16" else 2e-3)


def test_the_seed_files_own_check_passes_on_the_gpu(cuda, seed_module) -> None:
    seed_module.test_attention_matches_reference("cuda", cuda.float16)


def test_evaluator_passes_the_seed_on_the_gpu_and_times_it_against_cudnn(cuda, tmp_path) -> None:
    from evoagent.candidate import Candidate
    from evoagent.result import Status
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator, default_seed

    evaluator = AttentionEvaluator("h100-mha", cache_dir=tmp_path / "static", reps=5, warmup=1, seeds=1)
    with Sandbox(evaluator.sandbox_config(), gpus=(0,)) as sandbox:
        result = evaluator.evaluate(Candidate.from_path(default_seed(), entry="kernel.py"), sandbox,
                                    stages=("check", "test", "benchmark"))
    assert result.status is Status.OK, result.reason
    assert result.device == cuda.cuda.get_device_name(0)
    table = result.stage("benchmark").details["table"]
    assert len(table) == 10 and all(row["tflops"]["candidate"] > 1 for row in table)
    assert any("sdpa-cudnn" in row["tflops"] or "sdpa-cudnn" in row["baseline_errors"] for row in table)


def test_profile_stage_reports_per_kernel_gpu_times(cuda, tmp_path) -> None:
    from evoagent.candidate import Candidate
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator, default_seed

    evaluator = AttentionEvaluator("h100-d64", cache_dir=tmp_path / "static")
    with Sandbox(evaluator.sandbox_config(), gpus=(0,)) as sandbox:
        stage = evaluator.profile(Candidate.from_path(default_seed(), entry="kernel.py"), sandbox)
    assert stage.ok, stage.reason
    names = [k["name"] for k in stage.details["kernels"]]
    assert any("_attention_forward" in name for name in names)
