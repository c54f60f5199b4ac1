"""The target view answers device questions for the architecture, only inside its block."""

from __future__ import annotations

import pytest
import torch

from evoagent.result import Status
from evoagent.targets.attention.judge import judge_case, missing_hardware
from evoagent.targets.attention.suites import make_config
from evoagent.targets.attention.target_view import TARGET_DEVICES, arch_capability, target_view

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the view stands in for a GPU this machine lacks")


def test_tensors_look_like_cuda_tensors_and_cuda_allocations_stay_on_the_host() -> None:
    q = torch.zeros(2, 3)
    with target_view("sm_90a"):
        assert q.is_cuda and not q.is_cpu and q.device == torch.device("cuda", 0) and q.get_device() == 0
        out = torch.empty(q.shape, device=q.device, dtype=q.dtype)
        moved = q.to("cuda")
        assert q.cuda() is q
    assert not q.is_cuda and q.device.type == "cpu"
    assert out.device.type == "cpu" and moved.device.type == "cpu"


@pytest.mark.parametrize("arch", sorted(TARGET_DEVICES))
def test_device_queries_answer_for_the_target(arch: str) -> None:
    import triton

    device = TARGET_DEVICES[arch]
    with target_view(arch):
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        props = torch.cuda.get_device_properties(torch.device("cuda", 0))
        assert props.multi_processor_count == device.sm_count
        assert (props.major, props.minor) == torch.cuda.get_device_capability() == device.capability
        with torch.cuda.device(0):
            target = triton.runtime.driver.active.get_current_target()
        assert (target.backend, target.arch, target.warp_size) == ("cuda", arch_capability(arch), 32)
        utils = triton.runtime.driver.active.utils
        assert utils.get_device_properties(0)["multiprocessor_count"] == device.sm_count
    assert not torch.cuda.is_available()


def test_inside_a_launch_the_answers_are_real_again() -> None:
    inside = [False]
    q = torch.zeros(1)
    with target_view("sm_90a", passthrough=lambda: inside[0]):
        inside[0] = True
        assert not q.is_cuda and not torch.cuda.is_available()


def test_an_unknown_arch_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="sm_90a"), target_view("sm_75"):
        pass


def test_errors_of_a_missing_gpu_are_labelled_needs_device_not_crash() -> None:
    assert missing_hardware("AssertionError: Torch not compiled with CUDA enabled")
    assert missing_hardware("NotImplementedError: inline_asm not supported in interpreter mode")
    assert not missing_hardware("IndexError: index 70 is out of bounds")
    config = make_config(1, 2, 2, 16, 64, False, "float16")
    case = {"config": config.to_dict(), "seed": 1}
    verdict = judge_case(case, {"error": "RuntimeError: Found no NVIDIA driver on your system"})
    assert verdict.status is Status.NEEDS_DEVICE and "not at fault" in verdict.reason
    assert judge_case(case, {"error": "ValueError: bad block"}).status is Status.CRASH
