"""Executors: what runs the stages' sandboxed calls, the local fork servers (`Sandbox`) or a Ray cluster.

Stages call `executor.call(fn, *args, files=, timeout_s=, env=, gpu=)` and get a `SandboxResult`;
they do not know which executor runs them. `local` is today's `Sandbox` (a pool of fork servers
on this machine, one pinned worker per GPU). `ray` (`RayExecutor`, in `ray_executor.py`, only
imported when chosen) sends CPU calls to Ray tasks on any node and GPU calls to one pinned actor per
cluster GPU; inside each Ray worker the call runs through a local `Sandbox` all the same, so the
confinement, limits and restricted result codec do not change with the executor.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .channel import Driver
from .confinement import Confinement
from .errors import ConfigError
from .sandbox import Sandbox, SandboxConfig, SandboxResult
from .scheduling import DeviceUsage

__all__ = ["ClusterExecutor", "Executor", "ExecutorConfig", "ExecutorKind", "check_available", "cluster_gone",
           "cluster_output", "join_cluster", "open_executor"]

_ADDRESS = re.compile(r"auto\Z|ray://\S+\Z|[A-Za-z0-9_.\-\[\]:]+:\d+\Z")
RAY_INSTALL_HINT = 'pip install "evoagent[ray]"'


class ExecutorKind(str, enum.Enum):
    """Which executor runs the sandboxed calls."""

    LOCAL = "local"
    RAY = "ray"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorConfig:
    """Where the stages' sandboxed calls run (`[executor]` of a config file; `--executor` on the CLI).

    Attributes:
        kind: "local" (fork servers on this machine) or "ray" (Ray tasks for CPU calls, one pinned
            actor per cluster GPU for GPU calls; `pip install "evoagent[ray]"`).
        address: for "ray" only: "auto" (the cluster this machine joined with `ray start`),
            "ray://host:10001" (Ray Client) or "host:port" (the head's GCS); None starts a local Ray
            sized for the run (its sandbox's CPU workers and GPUs) and stops it when the run ends.
    """

    kind: str = ExecutorKind.LOCAL.value
    address: str | None = None

    def __post_init__(self) -> None:
        kinds = [k.value for k in ExecutorKind]
        if self.kind not in kinds:
            raise ConfigError(f"'executor.kind' must be one of {', '.join(map(repr, kinds))} (got {self.kind!r})")
        object.__setattr__(self, "kind", ExecutorKind(self.kind))
        if self.address is None:
            return
        if not isinstance(self.address, str) or not _ADDRESS.match(self.address):
            raise ConfigError(f"'executor.address' must be 'auto', 'ray://host:port' or 'host:port' "
                              f"(got {self.address!r}); leave it out to start a local Ray")
        if self.kind is not ExecutorKind.RAY:
            raise ConfigError(f"'executor.address' {self.address!r} is for kind = 'ray' "
                              f"(the kind is {str(self.kind)!r})")


class Executor(Protocol):
    """Runs one sandboxed call (`Sandbox.call`'s signature).

    `confinement` is what confines the calls; `gpus` names the GPUs that `call(..., gpu=True)` runs on
    (empty: none; a target checks it to decide where to time).
    """

    confinement: Confinement
    gpus: tuple[str, ...]

    def call(self, fn: Callable[..., Any], /, *args: Any, files: Mapping[str, str | bytes] | None = None,
             timeout_s: float | None = None, env: Mapping[str, str] | None = None,
             gpu: bool = False, write_paths: Sequence[str | os.PathLike[str]] = (),
             driver: Driver | None = None) -> SandboxResult: ...

    def close(self) -> None: ...

    def gpu_usage(self) -> tuple[DeviceUsage, ...]:
        """Busy and wall seconds of each GPU so far (empty without GPUs); the engine stores them."""
        ...

    def describe(self) -> str:
        """What runs the calls, in words: "local (2 CPU workers, 0 GPUs)", "ray (auto, 3 nodes, ...)"."""
        ...


@runtime_checkable
class ClusterExecutor(Protocol):
    """An executor whose machines come and go while a run goes on (Ray): the engine follows it.

    `gone` says why the cluster is lost (None while it is there); once set, waiting calls end as
    `infrastructure` at once and the engine ends the run (its in-flight trials interrupted, to resume).
    """

    gone: str | None

    def watch(self, on_change: Callable[[], None], on_gone: Callable[[str], None]) -> None:
        """Calls `on_change()` when nodes join or leave (or a weaker confinement appears), `on_gone(reason)` once."""
        ...

    def nodes(self) -> list[dict[str, Any]]:
        """Each node seen: name, id, alive, head, CPUs, GPUs, calls it ran, its confinement level."""
        ...


def cluster_gone(executor: Executor) -> str | None:
    """Why `executor`'s cluster is lost, or None (always None for the local executor)."""
    return executor.gone if isinstance(executor, ClusterExecutor) else None


def check_available(config: ExecutorConfig | None) -> None:
    """Raises a ConfigError when the executor's package is not installed (before a run is created)."""
    if config is None or config.kind is not ExecutorKind.RAY:
        return
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"executor kind 'ray' needs Ray, which is not installed: {RAY_INSTALL_HINT}")


def join_cluster(config: ExecutorConfig | None, sandbox_config: SandboxConfig) -> tuple[str, int] | None:
    """For Ray: starts or joins it now (a connection problem raises a one-line ClusterError before any run
    exists) and returns its description and live CPUs; None for the local executor."""
    if config is None or config.kind is not ExecutorKind.RAY:
        return None
    check_available(config)
    from . import ray_cluster

    ray_cluster.connect(config.address, sandbox_config)
    state = ray_cluster.read_state()
    return state.describe(config.address or "local"), state.cpus


@contextlib.contextmanager
def cluster_output(config: ExecutorConfig | None, log_path: str | os.PathLike[str]) -> Iterator[None]:
    """With Ray: what Ray's C++ core prints on file descriptor 2 (a lost node's "Raylet is terminated" dump,
    reconnection warnings) goes to `log_path`, while evoagent's own lines (`sys.stderr`) still reach the user."""
    if config is None or config.kind is not ExecutorKind.RAY:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    ours = open(os.dup(saved), "w", buffering=1, errors="backslashreplace")  # closed below
    with open(Path(log_path), "ab") as log:
        os.dup2(log.fileno(), 2)
    previous, sys.stderr = sys.stderr, ours
    try:
        yield
    finally:
        sys.stderr = previous
        ours.close()
        os.dup2(saved, 2)
        os.close(saved)


def open_executor(config: ExecutorConfig | None, sandbox_config: SandboxConfig) -> Executor:
    """Starts the executor `config` names (None: local) for calls with `sandbox_config`; close it after use."""
    if config is None or config.kind is ExecutorKind.LOCAL:
        return Sandbox(sandbox_config)
    check_available(config)
    from .ray_executor import RayExecutor

    return RayExecutor(sandbox_config, address=config.address)
