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

import concurrent.futures
import dataclasses
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from ray import exceptions as ray_errors

from .channel import Driver
from .confinement import Confinement
from .errors import SandboxError
from .ray_cluster import ClusterState, ClusterWatch, connect, disconnect, head_address
from .result import Status
from .sandbox import PreparedCall, Sandbox, SandboxConfig, SandboxResult, prepare_call
from .scheduling import DeviceUsage, GpuQueue

__all__ = ["RayExecutor"]

_GRACE_S = 180.0  # past a call's own limit: a fresh worker may first start its sandbox (pre-imports)
_START_S = 300.0  # the GPU actors must be up within this
_TICK_S = 0.5  # a waiting call looks this often whether the cluster is gone

# -- inside Ray workers -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Setup:
    """What every worker of one executor needs: the sandbox settings, and the folder its sandboxes live in."""

    config: SandboxConfig
    scratch_dir: str  # the driver's; each node's workers keep theirs beside it (`node_folder`)


def node_folder(scratch_dir: str, node_id: str) -> str:
    """One node's folder for its workers' sandboxes: beside the driver's, never inside it, so that a call
    still running on another node of the same machine cannot bring back a folder the driver removed."""
    return f"{scratch_dir}-{node_id[:8]}"


def _own_folder(setup: _Setup) -> str:
    folder = node_folder(setup.scratch_dir, ray.get_runtime_context().get_node_id())
    os.makedirs(folder, exist_ok=True)
    return folder


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
        sandbox = Sandbox(dataclasses.replace(setup.config, workers=1, gpus=()), scratch_dir=_own_folder(setup))
        _worker_sandbox_for.append((setup, sandbox))
        return sandbox


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    """A call's result, with the node that ran it and that node's sandbox confinement."""

    node_id: str
    confinement: Confinement
    result: SandboxResult


def _answer(sandbox: Sandbox, result: SandboxResult) -> _Answer:
    return _Answer(ray.get_runtime_context().get_node_id(), sandbox.confinement, result)


@ray.remote(num_cpus=1, max_retries=0)  # a lost worker is retried by the engine, which labels it first
def _run_on_cpu(setup: _Setup, prepared: PreparedCall) -> _Answer:
    sandbox = _worker_sandbox(setup)
    return _answer(sandbox, sandbox.run_prepared(prepared))


@ray.remote(num_cpus=1, max_retries=0)
def _confinement(setup: _Setup) -> Confinement:
    return _worker_sandbox(setup).confinement


@ray.remote(num_gpus=1, num_cpus=0, max_restarts=0)  # a lost actor is replaced by the driver
class _GpuWorker:
    """One GPU of the cluster: a Sandbox whose GPU worker is pinned to the device Ray gave this actor."""

    def __init__(self, setup: _Setup) -> None:
        device = str(ray.get_gpu_ids()[0])
        self._sandbox = Sandbox(dataclasses.replace(setup.config, workers=1), gpus=(device,),
                                scratch_dir=_own_folder(setup))

    def ready(self) -> int:
        return os.getpid()

    def run(self, prepared: PreparedCall) -> _Answer:
        return _answer(self._sandbox, self._sandbox.run_prepared(prepared, gpu=True))


# -- in the driver ----------------------------------------------------------------------------


class RayExecutor:
    """Runs sandboxed calls on Ray (see the module docstring); thread-safe; close it (or use `with`).

    Connects to `address` ("auto", "ray://host:port", "host:port"), or, with None, starts a local Ray
    with `config.workers` CPUs and `len(config.gpus)` GPUs and stops it at `close()`. A Ray already
    started in this process (`ray.init` by the caller) is used as it is and left running.

    The executor follows the cluster while it runs (`ray_cluster.ClusterWatch`): CPU calls are admitted
    against the live nodes' CPUs and spread over the nodes; when the head stops answering, waiting
    calls end at once as `infrastructure` and `gone` says why (the engine then ends the run).
    """

    def __init__(self, config: SandboxConfig, *, address: str | None = None) -> None:
        if not isinstance(config, SandboxConfig):
            raise TypeError(f"RayExecutor config must be a SandboxConfig (got {config!r})")
        self.config, self.address = config, address or "local"
        self._owns_ray = connect(address, config)
        self._closed = False
        self.gone: str | None = None  # why the cluster is gone (None while it is there)
        self._lock = threading.Lock()
        self._admission = threading.Condition()  # CPU calls in flight, against the live CPUs
        self._running = 0
        self._stats = threading.Lock()  # the per-node counts (apart from `_lock`, which GPU actors' start holds)
        self._calls: Counter[str] = Counter()  # node id -> calls it answered
        self._node_confinement: dict[str, Confinement] = {}
        self._on_change: list[Callable[[], None]] = []
        self._on_gone: list[Callable[[str], None]] = []
        self._setup = _Setup(config, tempfile.mkdtemp(prefix="evoagent-ray-"))  # the workers' sandboxes live in it
        self._gpus: GpuQueue[_Actor] | None = None  # the GPU actors, started at the first GPU call
        self._actors: list[_Actor] = []
        self._starting = 0  # GPU actors being started for GPUs that joined the cluster
        self._node = ""  # the node this driver is attached to (its workers' folder is removed at close)
        try:
            self._node = ray.get_runtime_context().get_node_id()
            self._setup_ref = ray.put(self._setup)
            self._watch = ClusterWatch(self.address, _knock_at(address), on_change=self._changed, on_gone=self._went)
            self.gpus = tuple(str(i) for i in range(self._watch.state.gpus))  # as the GPU queue names them
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
        """The live cluster in words, e.g. "ray (auto, 2 nodes, 4 CPUs, 0 GPUs)" (no call to Ray)."""
        if self.gone:
            return f"ray ({self.address}, gone)"
        if self._closed:
            return f"ray ({self.address}, closed)"
        return self._watch.state.describe(self.address)

    def cluster(self) -> ClusterState:
        """The cluster's nodes as last seen (dead ones included, marked)."""
        return self._watch.state

    def nodes(self) -> list[dict[str, Any]]:
        """Each node seen: name, id, alive, head, driver (this process's node), CPUs, GPUs, calls it answered,
        its sandbox confinement level (None before its first call)."""
        with self._stats:
            calls, levels = dict(self._calls), {k: c.level for k, c in self._node_confinement.items()}
        return [{"name": n.name, "node_id": n.node_id[:12], "alive": n.alive, "head": n.head,
                 "driver": n.node_id == self._node, "cpus": n.cpus, "gpus": n.gpus, "calls": calls.get(n.node_id, 0),
                 "confinement": levels.get(n.node_id)}
                for n in self._watch.state.nodes]

    def watch(self, on_change: Callable[[], None], on_gone: Callable[[str], None]) -> None:
        """Calls `on_change()` when nodes join or leave or a node's confinement is weaker than any seen,
        and `on_gone(reason)` once when the cluster is lost (both from the executor's threads)."""
        self._on_change.append(on_change)
        self._on_gone.append(on_gone)

    def call(self, fn: Callable[..., Any], /, *args: Any, files: Mapping[str, str | bytes] | None = None,
             timeout_s: float | None = None, env: Mapping[str, str] | None = None,
             gpu: bool = False, write_paths: Sequence[str | os.PathLike[str]] = (),
             driver: Driver | None = None) -> SandboxResult:
        """As `Sandbox.call`: CPU calls run as Ray tasks spread over the nodes, GPU calls on the next free
        GPU actor (`write_paths` are folders on the node that runs the call; a `driver` runs there too)."""
        prepared = prepare_call(fn, args, files=files, timeout_s=timeout_s, env=env, write_paths=write_paths,
                                driver=driver)
        limit_s = (self.config.timeout_s if prepared.timeout_s is None else prepared.timeout_s) + _GRACE_S
        if self._closed:
            raise SandboxError("the RayExecutor is closed; create a new one")
        if gpu:
            return self._on_gpu(prepared, limit_s)
        if self.gpus:  # a CPU call on a GPU node must not take a GPU that a GPU actor owns
            prepared = dataclasses.replace(prepared, env={**prepared.env, "CUDA_VISIBLE_DEVICES": ""})
        if not self._admit():
            return _lost(self.gone or "the RayExecutor was closed during the call")
        try:
            task = _run_on_cpu.options(scheduling_strategy="SPREAD")  # every node gets calls, new ones too
            return self._await(task.remote(self._setup_ref, prepared), limit_s, "the Ray worker")
        finally:
            with self._admission:
                self._running -= 1
                self._admission.notify()

    def _admit(self) -> bool:
        """Waits until a live CPU is free (so no call waits in Ray's queue while its time runs); False if gone."""
        with self._admission:
            while self._running >= max(1, self._watch.state.cpus) and not (self.gone or self._closed):
                self._admission.wait(_TICK_S)
            if self.gone or self._closed:
                return False
            self._running += 1
            return True

    def _await(self, ref: Any, limit_s: float, who: str) -> SandboxResult:
        """The call's result; `infrastructure` when its worker was lost or the cluster is gone, or when it
        gave no answer within `limit_s`; `harness_error` when our own code raised in the worker."""
        future = ref.future()
        deadline = time.monotonic() + limit_s
        while True:
            if self.gone:
                return _lost(f"{who} cannot answer: {self.gone}")
            left = deadline - time.monotonic()
            if left <= 0:
                ray.cancel(ref, force=True)
                return _lost(f"{who} gave no answer within {limit_s:.0f} s (the call's limit plus "
                             f"{_GRACE_S:.0f} s); the call was cancelled")
            try:
                answer: _Answer = future.result(timeout=min(left, _TICK_S))
            except concurrent.futures.TimeoutError:
                continue
            except ray_errors.RayTaskError as exc:
                cause = getattr(exc, "cause", None) or exc
                return SandboxResult(status=Status.HARNESS_ERROR, reason=f"{who} could not run the call: "
                                     f"{type(cause).__name__}: {_first_line(cause)}")
            except ray_errors.RayError as exc:
                return _lost(f"{who} was lost during the call ({type(exc).__name__}: {_first_line(exc)})")
            self._answered(answer)
            return answer.result

    def _answered(self, answer: _Answer) -> None:
        """Counts the node's call; a node whose confinement is weaker than any before lowers the run's."""
        with self._stats:
            self._calls[answer.node_id] += 1
            if answer.node_id in self._node_confinement:
                return
            self._node_confinement[answer.node_id] = answer.confinement
            weaker = _weakness(answer.confinement) > _weakness(self.confinement)
            if weaker:
                self.confinement = answer.confinement
        if weaker:
            answer.confinement.warn_if_partial()
            self._changed(self._watch.state)

    def _changed(self, state: ClusterState) -> None:
        with self._admission:
            self._admission.notify_all()  # more CPUs: waiting calls may go
        if state.gpus or self.gpus:  # on a thread: the first GPU call may hold the lock while its actors start
            threading.Thread(target=self._follow_gpus, args=(state,), name="evoagent-ray-gpus", daemon=True).start()
        for listener in list(self._on_change):
            listener()

    def _went(self, reason: str) -> None:
        self.gone = reason
        with self._admission:
            self._admission.notify_all()
        for listener in list(self._on_gone):
            listener(reason)

    def _follow_gpus(self, state: ClusterState) -> None:
        """One GPU actor per GPU: GPUs that joined the cluster get actors (started on a thread of their own)."""
        with self._lock:
            if self._closed or self.gone:
                return
            if self._gpus is None:  # no GPU call yet: the first one starts an actor per GPU there is then
                self.gpus = tuple(str(i) for i in range(state.gpus))
                return
            missing = state.gpus - len(self._actors) - self._starting
            if missing <= 0:
                return
            self._starting += missing
        threading.Thread(target=self._add_actors, args=(missing,), name="evoagent-ray-gpus", daemon=True).start()

    def _add_actors(self, count: int) -> None:
        actors = [_Actor(self._setup) for _ in range(count)]
        try:
            ray.get([a.handle.ready.remote() for a in actors], timeout=_START_S)
            started = True
        except ray_errors.RayError:  # not placed in time (the GPUs are taken), or the node went again
            started = False
        with self._lock:
            self._starting -= count
            if started and self._gpus is not None and not (self._closed or self.gone):
                for actor in actors:
                    self._gpus.add(str(len(self._actors)), actor)
                    self._actors.append(actor)
                self.gpus = self._gpus.devices
                return
        for actor in actors:
            actor.kill()

    def _on_gpu(self, prepared: PreparedCall, limit_s: float) -> SandboxResult:
        with self._gpu_queue().slot() as slot:  # in `gpu_priority` order; busy time counted per GPU
            result = self._await(slot.worker.handle.run.remote(prepared), limit_s, "the GPU actor")
            if result.status is Status.INFRASTRUCTURE and not (self._closed or self.gone):
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
            count = self._watch.state.gpus  # the live cluster's; GPUs that join later get theirs then
            if not count:
                raise SandboxError("call(..., gpu=True) needs a GPU in the Ray cluster; "
                                   f"this one ({self.address}) has none")
            actors = [_Actor(self._setup) for _ in range(count)]
            try:
                ray.get([a.handle.ready.remote() for a in actors], timeout=_START_S)
            except ray_errors.GetTimeoutError:
                for actor in actors:
                    actor.kill()
                raise SandboxError(f"{len(actors)} GPU actor(s) did not start within {_START_S:.0f} s; "
                                   "are the cluster's GPUs taken by another job?") from None
            self._actors = actors
            self._gpus = GpuQueue({str(i): actor for i, actor in enumerate(actors)})
            self.gpus = self._gpus.devices
            return self._gpus

    def close(self) -> None:
        """Stops the GPU actors and, if this executor started Ray, Ray itself (killing running calls).

        With the cluster gone, nothing is asked of Ray (it would wait on the lost head); this node's
        scratch folder is removed all the same.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            gpus, actors = self._gpus, self._actors
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.stop()
        with self._admission:
            self._admission.notify_all()
        if gpus is not None:
            gpus.close()  # calls waiting for a GPU get SandboxError
        if ray.is_initialized() and not self.gone:  # with the head gone, Ray would wait on it
            for actor in actors:
                actor.kill()
            if self._owns_ray:
                disconnect()
        for folder in (self._setup.scratch_dir, node_folder(self._setup.scratch_dir, self._node)):
            shutil.rmtree(folder, ignore_errors=True)  # the sandboxes of this node's workers


def _knock_at(address: str | None) -> str | None:
    """Where to check that the cluster is there: the address the user gave ("host:port", or Ray Client's
    "ray://host:port": the driver's own connection), else the head's GCS as Ray reports it."""
    if address is not None and address != "auto":
        return address.removeprefix("ray://")
    return head_address()


def _weakness(confinement: Confinement) -> tuple[int, int]:
    """Orders confinements from strongest (full) to weakest (off), then by how much is missing."""
    return ({"full": 0, "partial": 1, "off": 2}[confinement.level], len(confinement.missing))


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


def _lost(reason: str) -> SandboxResult:
    return SandboxResult(status=Status.INFRASTRUCTURE, reason=f"{reason}; not the candidate's fault")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
