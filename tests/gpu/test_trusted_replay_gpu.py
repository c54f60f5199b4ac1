"""On a CUDA device: the trusted replay of launch plans (run these first when a GPU is lent).

The replay process loads the candidate's compiled kernels from the capture's report and never imports
the candidate; these tests check that an honest seed replays to the output its own wrapper computes,
that the replayed time is within noise of the in-process time of the same kernels, and that attacks
that won against in-process timing (a lazy output tensor, phase switching) gain nothing on the GPU.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

ATTACKS = Path(__file__).resolve().parents[1] / "integration" / "measure_attacks"


@pytest.fixture(scope="module")
def evaluator(cuda, tmp_path_factory):
    from evoagent.targets.attention import AttentionEvaluator

    full = AttentionEvaluator("h100-mha", cache_dir=tmp_path_factory.mktemp("replay") / "static", reps=10, warmup=2,
                              seeds=1, extra_shapes=2, seed=3)
    return full.restricted([full.suite.configs[0].name, full.suite.configs[1].name])


@pytest.fixture(scope="module")
def sandbox(evaluator):
    from evoagent.sandbox import Sandbox

    with Sandbox(evaluator.sandbox_config(), gpus=(0,)) as sb:
        yield sb


def test_a_seed_plan_replays_to_the_output_of_its_own_wrapper(cuda, evaluator, sandbox) -> None:
    """The capture runs in the sandbox (its launch hooks never touch this process); the replay runs here."""
    import importlib.util

    torch = cuda
    from evoagent.candidate import Candidate
    from evoagent.targets.attention import default_seed, stages
    from evoagent.targets.attention.suites import make_config
    from evoagent.trusted.gpu_launch import LoadedKernels, PlanBuffers, launch_plan, use_torch_allocator

    config = make_config(1, 8, 2, 1000, 128, True, "bfloat16")
    candidate = Candidate.from_path(default_seed(), entry="kernel.py")
    captured = stages.capture(evaluator, candidate, sandbox, [{"config": config.to_dict(), "seed": 1,
                                                              "sm_scale": 0.09}])
    assert isinstance(captured, stages.Captured), captured.reason
    use_torch_allocator()
    kernels = LoadedKernels(captured.binaries)
    gen = torch.Generator(device="cuda").manual_seed(7)
    q = torch.randn(config.q_shape, device="cuda", dtype=torch.bfloat16, generator=gen)
    k, v = (torch.randn(config.kv_shape, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(2))
    buffers = PlanBuffers(captured.plans[0], {"q": q, "k": k, "v": v})
    buffers.reset()
    launch_plan(kernels, buffers)
    torch.cuda.synchronize()
    spec = importlib.util.spec_from_file_location("seed_for_replay_check", default_seed())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    want = module.attention(q, k, v, causal=True, sm_scale=0.09)
    assert torch.equal(buffers.output(), want)


def test_the_evaluator_scores_the_seed_from_the_replay_within_noise_of_in_process_timing(evaluator, sandbox) -> None:
    from evoagent.candidate import Candidate
    from evoagent.result import Status
    from evoagent.targets.attention import default_seed, timing

    candidate = Candidate.from_path(default_seed(), entry="kernel.py")
    result = evaluator.evaluate(candidate, sandbox, stages=("check", "test", "benchmark"))
    assert result.status is Status.OK, result.reason
    bench = result.stage("benchmark").details
    assert "trusted replay" in bench["timing"] and bench["table"][0]["tflops"].get("sdpa-cudnn")
    with evaluator._draws_lock:
        cases = [evaluator._case(c, max_rows=256, max_heads=2) | {"rep_seeds": list(range(10)), "refresh_seed": 1}
                 for c in evaluator.suite.configs]
    old = evaluator._call(sandbox, timing.benchmark, "kernel.py", cases, 2, False, evaluator._triton_cache(candidate),
                          False, candidate=candidate)
    assert old.ok, old.reason
    for row, in_process in zip(bench["table"], old.value["results"]):
        times = sorted(in_process["times_ms"]["candidate"])
        in_process_ms = times[len(times) // 2]
        assert 0.75 < row["median_ms"]["candidate"] / in_process_ms < 1.25, (row, in_process_ms)


@pytest.mark.parametrize("name", ["lazy_output.py", "phase_by_pointer.py", "phase_by_call_count.py"])
def test_attacks_that_beat_in_process_timing_gain_nothing_on_the_gpu(evaluator, sandbox, name) -> None:
    sys.path.insert(0, str(ATTACKS.parent))
    from cheat_files import _load

    from evoagent.result import Status

    result = evaluator.evaluate(_load(ATTACKS / name), sandbox, stages=("test", "benchmark"))
    assert result.status in (Status.ILLEGAL, Status.INCORRECT), result.reason


def test_replay_math_matches_sdpa_on_the_gpu(cuda) -> None:
    """The host-side fp64 check of sampled rows agrees with the library on a device (tolerance sanity)."""
    torch = cuda
    from evoagent.targets.attention.reference import compare

    q, k, v = (torch.randn(1, 2, 300, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    got = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(128))
    scores = (q[0, 0].double() @ k[0, 0].double().T) / math.sqrt(128)
    scores = scores.masked_fill(torch.ones(300, 300, device="cuda", dtype=torch.bool).triu(1), float("-inf"))
    want = torch.softmax(scores, -1) @ v[0, 0].double()
    assert compare(got[0, 0].float().cpu().numpy(), want.cpu().numpy(), "bfloat16").ok
