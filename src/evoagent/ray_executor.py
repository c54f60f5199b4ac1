"""RayExecutor: sandboxed calls on a Ray cluster, CPU calls as Ray tasks and GPU calls on one actor per GPU.

Ray moves a call and its result, never candidate code: the driver checks and pickles the call
(`prepare_call`, the same checks as `Sandbox.call`), a Ray worker runs it through a local `Sandbox`
that the worker process keeps for its later calls (fork server, confinement, limits, the restricted
result codec that decodes the child's answer into plain values), and Ray carries the `SandboxResult`
back. Each GPU of the cluster gets one actor (`num_gpus=1`) that runs GPU calls one at a time on a
Sandbox pinned to that device. The store and the agent loops stay in the driver (docs/executors.md).

Faults: when the worker, actor or node running a call is lost (Ray raises ActorDiedError,
WorkerCrashedError, NodeDiedError, ...) or does not answer within the call's limit plus a grace,
the call's result is `infrastructure`: never the candidate's fault. The driver replaces a lost GPU
actor by a new one (Ray places it on a free GPU, on any node) at the back of the queue, and the
engine retries the evaluation once. An exception raised by our own code inside the worker is `harness_error`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from ray import exceptions as ray_errors

from .confinement import Confinement
from .errors import SandboxError
from .result import Status
from .sandbox import PreparedCall, Sandbox, SandboxConfig, SandboxResult, prepare_call
from .scheduling import DeviceUsage, GpuQueue

__all__ = ["RayExecutor"]

_GRACE_S = 180.0  # past a call's own limit: a fresh worker may first start its sandbox (pre-imports)
_OBJECT_STORE_BYTES = 100 * 1024 * 1024  # calls and results are small; a local Ray stays light
_START_S = 300.0  # the GPU actors must be up within this

# -- inside Ray workers -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Setup:
    """What every worker of one executor needs: the sandbox settings, and the folder its sandboxes live in."""

    config: SandboxConfig
    scratch_dir: str  # the driver's; a worker on another node creates it (the driver removes its own at close)


_worker_sandbox_for: list[tuple[_Setup, Sandbox]] = []  # this worker process's sandbox, of the latest executor
_worker_lock = threading.Lock()


def _worker_sandbox(setup: _Setup) -> Sandbox:
    """This Ray worker's sandbox (one CPU fork server, started at the first call of an executor).

    A worker keeps one: a call of another executor (a new run in the same driver process) closes the
    previous executor's sandbox, whose folder that executor removed when it closed.
    """
    with _worker_lock:
        if _worker_sandbox_for and _worker_sandbox_for[0][0] == setup:
            return _worker_sandbox_for[0][1]
        while _worker_sandbox_for:
            _worker_sandbox_for.pop()[1].close()
        os.makedirs(setup.scratch_dir, exist_ok=True)
        sandbox = Sandbox(dataclasses.replace(setup.config, workers=1, gpus=()), scratch_dir=setup.scratch_dir)
        _worker_sandbox_for.append((setup, sandbox))
        return sandbox


@ray.remote(num_cpus=1, max_retries=0)  # a lost worker is retried by the engine, which labels it first
def _run_on_cpu(setup: _Setup, prepared: PreparedCall) -> SandboxResult:
    return _worker_sandbox(setup).run_prepared(prepared)


@ray.remote(num_cpus=1, max_retries=0)
def _confinement(setup: _Setup) -> Confinement:
    return _worker_sandbox(setup).confinement


@ray.remote(num_gpus=1, num_cpus=0, max_restarts=0)  # a lost actor is replaced by the driver
class _GpuWorker:
    """One GPU of the cluster: a Sandbox whose GPU worker is pinned to the device Ray gave this actor."""

    def __init__(self, setup: _Setup) -> None:
        device = str(ray.get_gpu_ids()[0])
        os.makedirs(setup.scratch_dir, exist_ok=True)
        self._sandbox = Sandbox(dataclasses.replace(setup.config, workers=1), gpus=(device,),
                                scratch_dir=setup.scratch_dir)

    def ready(self) -> int:
        return os.getpid()

    def run(self, prepared: PreparedCall) -> SandboxResult:
        return self._sandbox.run_prepared(prepared, gpu=True)


# -- in the driver ----------------------------------------------------------------------------


class RayExecutor:
    """Runs sandboxed calls on Ray (see the module docstring); thread-safe; close it (or use `with`).

    Connects to `address` ("auto", "ray://host:port", "host:port"), or, with None, starts a local Ray
    with `config.workers` CPUs and `len(config.gpus)` GPUs and stops it at `close()`. A Ray already
    started in this process (`ray.init` by the caller) is used as it is and left running.
    """

    def __init__(self, config: SandboxConfig, *, address: str | None = None) -> None:
        if not isinstance(config, SandboxConfig):
            raise TypeError(f"RayExecutor config must be a SandboxConfig (got {config!r})")
        self.config, self.address = config, address or "local"
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            _start_ray(config, address)
        self._closed = False
        self._lock = threading.Lock()
        self._setup = _Setup(config, tempfile.mkdtemp(prefix="evoagent-ray-"))  # the workers' sandboxes live in it
        self._setup_ref = ray.put(self._setup)
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self._cpu_slots = threading.BoundedSemaphore(max(1, int(resources.get("CPU", 0))))
        self._gpu_count = int(resources.get("GPU", 0))
        self.gpus = tuple(str(i) for i in range(self._gpu_count))  # the cluster's GPUs, as the GPU queue names them
        self._hide_gpus = {"CUDA_VISIBLE_DEVICES": ""} if self._gpu_count else {}
        self._gpus: GpuQueue[_Actor] | None = None  # the GPU actors, started at the first GPU call
        self._actors: list[_Actor] = []
        try:
            self.confinement: Confinement = ray.get(_confinement.remote(self._setup_ref), timeout=_START_S)
        except ray_errors.GetTimeoutError:
            self.close()
            raise SandboxError(f"no Ray worker ran a first call within {_START_S:.0f} s; does the cluster "
                               f"({self.address}) have a free CPU?") from None
        except BaseException:
            self.close()
            raise
        self.confinement.warn_if_partial()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RayExecutor {'closed' if self._closed else 'open'} {self.describe()}>"

    def describe(self) -> str:
        if self._closed or not ray.is_initialized():
            return f"ray ({self.address}, closed)"
        nodes = len([node for node in ray.nodes() if node.get("Alive")])  # type: ignore[no-untyped-call]
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return (f"ray ({self.address}, {nodes} node{'s' if nodes != 1 else ''}, "
                f"{int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs)")

    def call(self, fn: Callable[..., Any], /, *args: Any, files: Mapping[str, str | bytes] | None = None,
             timeout_s: float | None = None, env: Mapping[str, str] | None = None,
             gpu: bool = False, write_paths: Sequence[str | os.PathLike[str]] = ()) -> SandboxResult:
        """As `Sandbox.call`: CPU calls run as Ray tasks, GPU calls on the next free GPU actor (`write_paths`
        are folders on the node that runs the call)."""
        prepared = prepare_call(fn, args, files=files, timeout_s=timeout_s, env=env, write_paths=write_paths)
        limit_s = (self.config.timeout_s if prepared.timeout_s is None else prepared.timeout_s) + _GRACE_S
        if self._closed:
            raise SandboxError("the RayExecutor is closed; create a new one")
        if gpu:
            return self._on_gpu(prepared, limit_s)
        prepared = dataclasses.replace(prepared, env={**prepared.env, **self._hide_gpus})
        with self._cpu_slots:  # no more tasks than the cluster's CPUs, so no call waits in Ray's queue
            return _await(_run_on_cpu.remote(self._setup_ref, prepared), limit_s, "the Ray worker")

    def _on_gpu(self, prepared: PreparedCall, limit_s: float) -> SandboxResult:
        with self._gpu_queue().slot() as slot:  # in `gpu_priority` order; busy time counted per GPU
            result = _await(slot.worker.handle.run.remote(prepared), limit_s, "the GPU actor")
            if result.status is Status.INFRASTRUCTURE and not self._closed:
                slot.worker.replace()  # its slot goes to the back of the queue: a retry goes to another GPU if any
        return result

    def gpu_usage(self) -> tuple[DeviceUsage, ...]:
        """Busy and wall seconds of each cluster GPU since its actors were started (empty before a GPU call)."""
        return () if self._gpus is None else self._gpus.usage()

    def _gpu_queue(self) -> GpuQueue[_Actor]:
        """One actor per cluster GPU, started at the first GPU call (CPU-only targets never start them)."""
        with self._lock:
            if self._closed:
                raise SandboxError("the RayExecutor is closed; create a new one")
            if self._gpus is not None:
                return self._gpus
            if not self._gpu_count:
                raise SandboxError("call(..., gpu=True) needs a GPU in the Ray cluster; "
                                   f"this one ({self.address}) has none")
            actors = [_Actor(self._setup) for _ in range(self._gpu_count)]
            try:
                ray.get([a.handle.ready.remote() for a in actors], timeout=_START_S)
            except ray_errors.GetTimeoutError:
                for actor in actors:
                    actor.kill()
                raise SandboxError(f"{len(actors)} GPU actor(s) did not start within {_START_S:.0f} s; "
                                   "are the cluster's GPUs taken by another job?") from None
            self._actors = actors
            self._gpus = GpuQueue({str(i): actor for i, actor in enumerate(actors)})
            return self._gpus

    def close(self) -> None:
        """Stops the GPU actors and, if this executor started Ray, Ray itself (killing running calls)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            gpus, actors = self._gpus, self._actors
        if gpus is not None:
            gpus.close()  # calls waiting for a GPU get SandboxError
        if ray.is_initialized():
            for actor in actors:
                actor.kill()
            if self._owns_ray:
                ray.shutdown()
        shutil.rmtree(self._setup.scratch_dir, ignore_errors=True)  # the sandboxes of this node's workers


class _Actor:
    """The GPU actor of one slot of the queue; the slot's holder replaces it when it is lost."""

    def __init__(self, setup: _Setup) -> None:
        self.setup = setup
        self.handle: Any = _GpuWorker.remote(setup)  # type: ignore[attr-defined]

    def replace(self) -> None:
        """A new actor in place of a lost one (its calls wait until Ray has placed it on a free GPU)."""
        self.kill()
        self.handle = _GpuWorker.remote(self.setup)  # type: ignore[attr-defined]

    def kill(self) -> None:
        ray.kill(self.handle, no_restart=True)


def _start_ray(config: SandboxConfig, address: str | None) -> None:
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is not None:
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # ConnectionError, RuntimeError, ...: one line for the user
            raise SandboxError(f"cannot connect to the Ray cluster at {address!r} "
                               f"({type(exc).__name__}: {_first_line(exc)})") from None
        return
    # "local": a new Ray of our own even where RAY_ADDRESS names a running cluster (that takes address = "auto")
    ray.init(address="local", num_cpus=config.workers, num_gpus=len(config.gpus),
             object_store_memory=_OBJECT_STORE_BYTES, include_dashboard=False, **quiet)


def _await(ref: Any, limit_s: float, who: str) -> SandboxResult:
    """The call's result, or `infrastructure` when its worker was lost, or `harness_error` when our code raised."""
    try:
        result: SandboxResult = ray.get(ref, timeout=limit_s)
        return result
    except ray_errors.GetTimeoutError:
        ray.cancel(ref, force=True)
        return _lost(f"{who} gave no answer within {limit_s:.0f} s (the call's limit plus {_GRACE_S:.0f} s); "
                     "the call was cancelled")
    except ray_errors.RayTaskError as exc:
        cause = getattr(exc, "cause", None) or exc
        return SandboxResult(status=Status.HARNESS_ERROR,
                             reason=f"{who} could not run the call: {type(cause).__name__}: {_first_line(cause)}")
    except ray_errors.RayError as exc:
        return _lost(f"{who} was lost during the call ({type(exc).__name__}: {_first_line(exc)})")


def _lost(reason: str) -> SandboxResult:
    return SandboxResult(status=Status.INFRASTRUCTURE, reason=f"{reason}; not the candidate's fault")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
