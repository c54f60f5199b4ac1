"""The target's view: what a candidate sees of the GPU while it runs in a sandbox child that has none.

Real Triton wrappers ask about the device: `assert q.is_cuda`, an SM count for a persistent grid
(`torch.cuda.get_device_properties(q.device).multi_processor_count`), the capability, or Triton's
active target at import (`triton.runtime.driver.active.get_current_target()`) to pick a code path.
Without a GPU those questions fail, and the failure is the machine's, not the kernel's. While the
view is entered (around the candidate's import and each call of its wrapper, never around the
harness's own code) it answers them for the architecture being compiled or tested:

* tensors report `is_cuda` True and device `cuda:0` (a torch function mode); allocations and copies
  asked for on `cuda` stay on the host, where the interpreter or the capture needs them;
* `torch.cuda` device queries (availability, count, properties, capability, name, `device(...)`)
  answer with the target's data-sheet values;
* Triton's active driver is a stand-in whose target is the architecture (`GPUTarget("cuda", 90, 32)`
  for sm_90a) and whose device properties match; it launches nothing and benchmarks nothing.

Inside a Triton launch (the interpreter's own code) every answer is the real one again. Nothing here
changes what is judged: outputs, inputs and the operation trace are read outside the view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["TARGET_ARCH_ENV", "TARGET_DEVICES", "TargetDevice", "arch_capability", "target_view"]

# The environment variable naming the arch a sandbox child without a GPU presents.
TARGET_ARCH_ENV = "EVOAGENT_TARGET_ARCH"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetDevice:
    """The data-sheet facts a wrapper may ask about, for one architecture.

    Attributes:
        name: the device name torch reports.
        capability: (major, minor) compute capability.
        sm_count: streaming multiprocessors.
        total_memory_bytes: device memory.
        shared_per_block_optin_bytes: the most dynamic shared memory one block may opt into.
        shared_per_sm_bytes: shared memory per multiprocessor.
        l2_cache_bytes: L2 cache size.
        sm_clock_khz: boost SM clock.
        mem_clock_khz: memory clock.
        mem_bus_width_bits: memory bus width.
    """

    name: str
    capability: tuple[int, int]
    sm_count: int
    total_memory_bytes: int
    shared_per_block_optin_bytes: int
    shared_per_sm_bytes: int
    l2_cache_bytes: int
    sm_clock_khz: int
    mem_clock_khz: int
    mem_bus_width_bits: int


# NVIDIA's data sheets and the CUDA programming guide's compute-capability table.
TARGET_DEVICES: dict[str, TargetDevice] = {
    "sm_90a": TargetDevice(name="NVIDIA H100 80GB HBM3", capability=(9, 0), sm_count=132,
                           total_memory_bytes=85_520_809_984, shared_per_block_optin_bytes=232_448,
                           shared_per_sm_bytes=233_472, l2_cache_bytes=52_428_800, sm_clock_khz=1_980_000,
                           mem_clock_khz=2_619_000, mem_bus_width_bits=5120),
    "sm_100a": TargetDevice(name="NVIDIA B200", capability=(10, 0), sm_count=148,
                            total_memory_bytes=191_528_992_768, shared_per_block_optin_bytes=232_448,
                            shared_per_sm_bytes=233_472, l2_cache_bytes=132_120_576, sm_clock_khz=1_965_000,
                            mem_clock_khz=3_996_000, mem_bus_width_bits=8192),
}


def arch_capability(arch: str) -> int:
    """'sm_90a' -> 90: the number Triton's GPUTarget takes."""
    digits = arch.removeprefix("sm_").rstrip("af")
    if not digits.isdigit():
        raise ValueError(f"unknown architecture {arch!r}; expected a name like 'sm_90a' or 'sm_100a'")
    return int(digits)


def target_device(arch: str) -> TargetDevice:
    """The target device for `arch` ('sm_90a', 'sm_100a'); a clear error for any other name."""
    try:
        return TARGET_DEVICES[arch]
    except KeyError:
        raise ValueError(f"no target device for architecture {arch!r}; expected one of "
                         f"{sorted(TARGET_DEVICES)}") from None


class _DeviceProperties:
    """What torch.cuda.get_device_properties returns, with the target's values."""

    def __init__(self, device: TargetDevice) -> None:
        self.name = device.name
        self.major, self.minor = device.capability
        self.multi_processor_count = device.sm_count
        self.total_memory = device.total_memory_bytes
        self.shared_memory_per_block = 49_152
        self.shared_memory_per_block_optin = device.shared_per_block_optin_bytes
        self.shared_memory_per_multiprocessor = device.shared_per_sm_bytes
        self.regs_per_multiprocessor = 65_536
        self.max_threads_per_multi_processor = 2048
        self.warp_size = 32
        self.L2_cache_size = device.l2_cache_bytes
        self.is_integrated = False
        self.is_multi_gpu_board = False

    def __repr__(self) -> str:
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
                f"multi_processor_count={self.multi_processor_count}) [target view]")


class _DriverUtils:
    def __init__(self, device: TargetDevice) -> None:
        self._device = device

    def get_device_properties(self, device: Any = 0) -> dict[str, int]:
        d = self._device
        return {"max_shared_mem": d.shared_per_block_optin_bytes, "max_num_regs": 65_536,
                "multiprocessor_count": d.sm_count, "warpSize": 32, "sm_clock_rate": d.sm_clock_khz,
                "mem_clock_rate": d.mem_clock_khz, "mem_bus_width": d.mem_bus_width_bits}

    def get_device_capability(self, device: Any = 0) -> tuple[int, int]:
        return self._device.capability

    def get_current_device(self) -> int:
        return 0


class _TargetDriver:
    """Triton's active driver as the target's: answers target and device queries, runs nothing."""

    def __init__(self, arch: str, device: TargetDevice) -> None:
        self.arch = arch
        self.utils = _DriverUtils(device)

    @staticmethod
    def is_active() -> bool:
        return True

    def get_current_target(self) -> Any:
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", arch_capability(self.arch), 32)

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cuda", 0)

    def get_current_device(self) -> int:
        return 0

    def set_current_device(self, device: Any) -> None:
        return None

    def get_current_stream(self, device: Any = None) -> int:
        return 0

    def get_device_interface(self) -> Any:
        return torch.cuda

    def get_benchmarker(self) -> Callable[..., Any]:
        def no_benchmark(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"no GPU here: Triton cannot benchmark on the {self.arch} target view")
        return no_benchmark

    def map_python_to_cpp_type(self, ty: str) -> str:
        from triton.backends.nvidia.driver import ty_to_cpp

        return str(ty_to_cpp(ty))


def _on_host(value: Any) -> Any:
    """A CUDA device argument as the host device; anything else unchanged."""
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
        return "cpu"
    return value


class _CudaLookingTensors(TorchFunctionMode):
    """Tensors say they live on cuda:0; what is asked for on cuda is made on the host."""

    def __init__(self, passthrough: Callable[[], bool]) -> None:
        super().__init__()
        self.passthrough = passthrough

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.device or self.passthrough():  # a device object may name cuda; only data stays home
            return func(*args, **kwargs)
        owner = getattr(func, "__self__", None)
        if owner is _IS_CUDA:
            return True
        if owner is _IS_CPU:
            return False
        if owner is _DEVICE:
            return torch.device("cuda", 0)
        if func is torch.Tensor.get_device:
            return 0
        if func is torch.Tensor.cuda:
            return args[0]
        args = tuple(_on_host(a) for a in args)
        if "device" in kwargs:
            kwargs = {**kwargs, "device": _on_host(kwargs["device"])}
        return func(*args, **kwargs)


_IS_CUDA = torch._C.TensorBase.__dict__["is_cuda"]
_IS_CPU = torch._C.TensorBase.__dict__["is_cpu"]
_DEVICE = torch._C.TensorBase.__dict__["device"]


class _NoDeviceSwitch(contextlib.nullcontext[None]):
    """torch.cuda.device(...) / device_of(...): one device, nothing to switch."""

    def __init__(self, device: Any = None) -> None:
        super().__init__()


def _cuda_queries(device: TargetDevice) -> dict[str, Any]:
    props = _DeviceProperties(device)
    return {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "current_device": lambda: 0,
        "set_device": lambda device=None: None,
        "get_device_properties": lambda device=None: props,
        "get_device_capability": lambda device=None: (props.major, props.minor),
        "get_device_name": lambda device=None: props.name,
        "is_bf16_supported": lambda including_emulation=True: True,
        "device": _NoDeviceSwitch,
        "device_of": _NoDeviceSwitch,
    }


@contextlib.contextmanager
def target_view(arch: str, *, passthrough: Callable[[], bool] = lambda: False) -> Iterator[TargetDevice]:
    """Presents the `arch` target to candidate code run inside the block (see the module docstring).

    `passthrough()` returning True (a Triton launch in progress) gives the real answers again.
    """
    from triton.runtime.driver import driver as config

    device = target_device(arch)
    originals: dict[str, Any] = {}
    for name, answer in _cuda_queries(device).items():
        originals[name] = getattr(torch.cuda, name)
        setattr(torch.cuda, name, _unless(passthrough, answer, originals[name]))
    previous_driver = config._active
    config.set_active(_TargetDriver(arch, device))
    try:
        with _CudaLookingTensors(passthrough):
            yield device
    finally:
        config._active = previous_driver
        for name, original in originals.items():
            setattr(torch.cuda, name, original)


def _unless(passthrough: Callable[[], bool], answer: Any, original: Any) -> Any:
    if isinstance(answer, type):  # a context-manager class: the interpreter never uses these
        return answer

    def query(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs) if passthrough() else answer(*args, **kwargs)
    return query
