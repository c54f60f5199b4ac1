"""The Ray cluster as evoagent meets it: connecting with one-line diagnoses, and watching its nodes and its head.

`connect` starts or joins Ray, turning what Ray prints and raises when it cannot (pages of C++ warnings,
a generic `ConnectionError`, or two minutes of retries on a wrong port) into one `ClusterError` line
naming the cause: nothing listening at the address, token authentication (Ray 2.60 needs
`RAY_AUTH_MODE=token` and the cluster's token on every node and for the driver), a version mismatch.

`ClusterWatch` follows the cluster while a run goes on: one thread asks Ray for the nodes (joined,
left, their CPUs and GPUs), another knocks on the head's GCS port. When the head stops answering,
the watch declares the cluster gone within seconds, so the run ends with its own message instead of
waiting on Ray's 60 s of silence before the process is terminated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ray

from .errors import ClusterError
from .sandbox import SandboxConfig

__all__ = ["ClusterState", "ClusterWatch", "NodeState", "connect", "disconnect", "read_state"]

_OBJECT_STORE_BYTES = 100 * 1024 * 1024  # calls and results are small; a local Ray stays light
_PROBE_S = 5.0  # a TCP connect to the head answers at once; a silent one within this is unreachable
_QUIET: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
_AUTH_HINT = ("set RAY_AUTH_MODE=token for evoagent and on every node, with the cluster's token in "
              "~/.ray/auth_token (or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH); see docs/executors.md")


_joined: list[str | None] = []  # the address this process's Ray was started or joined for by `connect`


def connect(address: str | None, config: SandboxConfig) -> bool:
    """Starts (address None) or joins Ray in this process; True if evoagent did (so its executor stops it).

    Raises ClusterError with one line naming the cause when the cluster cannot be joined.
    """
    if ray.is_initialized():  # joined earlier by evoagent (the CLI, sizing the run), or by the caller: kept
        return bool(_joined) and _joined[-1] == address
    _joined.clear()
    if address is None:
        # "local": a new Ray of our own even where RAY_ADDRESS names a running cluster (that takes address = "auto")
        ray.init(address="local", num_cpus=config.workers, num_gpus=len(config.gpus),
                 object_store_memory=_OBJECT_STORE_BYTES, include_dashboard=False, **_QUIET)
        _joined.append(address)
        return True
    _probe(address)
    with _captured_stderr() as captured:
        try:
            ray.init(address=address, **_QUIET)
        except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ...: one line for the user
            raise ClusterError(diagnose(address, exc, captured())) from None
    _joined.append(address)
    return True


def disconnect() -> None:
    """Stops or leaves the Ray that `connect` started or joined."""
    ray.shutdown()
    _joined.clear()


def diagnose(address: str, exc: BaseException, printed: str) -> str:
    """One line saying why joining the cluster at `address` failed, from Ray's exception and what it printed."""
    text = f"{type(exc).__name__}: {exc}\n{printed}"
    where = f"cannot connect to the Ray cluster at {address!r}"
    if "InvalidAuthToken" in text or "Unauthenticated" in text:
        mode = os.environ.get("RAY_AUTH_MODE", "unset")
        return (f"{where}: it refused this process's authentication (RAY_AUTH_MODE is {mode}, "
                f"the cluster uses token authentication): {_AUTH_HINT}")
    if type(exc).__name__ == "AuthenticationError":
        return f"{where}: RAY_AUTH_MODE=token is set but no token was found: {_AUTH_HINT}"
    if "version mismatch" in text.lower():
        found = re.search(r"Ray:\s*(\S+)\s+Python:\s*(\S+)", str(exc))  # the cluster's, named first
        started = f" (the cluster runs Ray {found.group(1)}, Python {found.group(2)})" if found else ""
        return (f"{where}: Ray version mismatch{started}; this process has Ray {ray.__version__} and Python "
                f"{sys.version.split()[0]}: install the same versions on every node and for evoagent")
    if "could not find any running ray instance" in text.lower():
        return (f"{where}: no Ray cluster runs on this machine; start one with `ray start --head` "
                "or name the head with --ray-address HEAD:6379")
    return f"{where} ({type(exc).__name__}: {_first_line(exc)})"


def _probe(address: str) -> None:
    """Raises ClusterError at once when nothing answers at a "host:port" or "ray://host:port" address."""
    if address == "auto":
        return  # Ray finds the cluster this machine joined (or says it found none) at once
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    where = f"cannot connect to the Ray cluster at {address!r}"
    try:
        with socket.create_connection((host, int(port)), timeout=_PROBE_S):
            return
    except socket.gaierror:
        raise ClusterError(f"{where}: unknown host {host!r}") from None
    except ConnectionRefusedError:
        raise ClusterError(f"{where}: nothing listens at {host}:{port} (connection refused); "
                           "is `ray start --head` running there, with this port?") from None
    except OSError as exc:
        raise ClusterError(f"{where}: no answer from {host}:{port} within {_PROBE_S:.0f} s "
                           f"({exc.strerror or type(exc).__name__}); is the address right, the port open?") from None


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """Sends file descriptor 2 (where Ray's C++ core prints) to a temporary file; yields a reader of it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)

        def read() -> str:
            sink.flush()
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


# -- watching the cluster ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeState:
    """One node of the cluster as Ray reports it."""

    node_id: str
    name: str  # `ray start --node-name`, else the node's IP address
    alive: bool
    head: bool
    cpus: int
    gpus: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """The cluster's nodes at one moment (every node ever seen; the dead ones marked)."""

    nodes: tuple[NodeState, ...] = ()

    @property
    def live(self) -> tuple[NodeState, ...]:
        return tuple(n for n in self.nodes if n.alive)

    @property
    def cpus(self) -> int:
        return sum(n.cpus for n in self.live)

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.live)

    def describe(self, address: str) -> str:
        """E.g. "ray (auto, 2 nodes, 4 CPUs, 0 GPUs)"."""
        count = len(self.live)
        return f"ray ({address}, {count} node{'s' if count != 1 else ''}, {self.cpus} CPUs, {self.gpus} GPUs)"


def read_state() -> ClusterState:
    """The cluster's nodes now, from Ray (an RPC to the head)."""
    nodes = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        resources = node.get("Resources") or {}
        nodes.append(NodeState(node_id=str(node["NodeID"]), name=str(node.get("NodeName") or
                                                                         node.get("NodeManagerAddress")),
                               alive=bool(node.get("Alive")), head="node:__internal_head__" in resources,
                               cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0))))
    return ClusterState(nodes=tuple(nodes))


def head_address() -> str | None:
    """"host:port" of the head's GCS this process is connected to (None when Ray does not say)."""
    try:
        address = ray.get_runtime_context().gcs_address
    except Exception:  # Ray Client and older Rays may not expose it
        return None
    return str(address) if address else None


class ClusterWatch:
    """Follows the cluster: its nodes every `poll_s`, and whether its head still answers.

    `on_change(state)` is called (from the watch's thread) when a node joins, leaves or changes size;
    `on_gone(reason)` once, when the head has not answered `misses` knocks in a row. Stop it with `stop()`.
    """

    def __init__(self, address: str, head: str | None, *, on_change: Callable[[ClusterState], None],
                 on_gone: Callable[[str], None], poll_s: float = 1.0, misses: int = 3) -> None:
        self.address, self.head = address, head
        self._on_change, self._on_gone = on_change, on_gone
        self._poll_s, self._misses = poll_s, misses
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.state = read_state()
        self.gone: str | None = None
        self._threads = [threading.Thread(target=self._follow_nodes, name="evoagent-ray-nodes", daemon=True)]
        if head is not None:
            self._threads.append(threading.Thread(target=self._knock, name="evoagent-ray-head", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _follow_nodes(self) -> None:
        while not self._stopped.wait(self._poll_s) and self.gone is None:
            try:
                state = read_state()
            except Exception:  # the head is going or gone: the knocking thread decides
                continue
            if self.gone is not None or self._stopped.is_set():
                return
            with self._lock:
                seen = {n.node_id: n for n in self.state.nodes}
                seen.update({n.node_id: n for n in state.nodes})  # a node Ray forgot stays listed, as dead
                merged = ClusterState(nodes=tuple(seen.values()))
                changed = merged != self.state
                self.state = merged
            if changed:
                self._on_change(merged)

    def _knock(self) -> None:
        assert self.head is not None  # Check internal correctness.
        host, _, port = self.head.rpartition(":")
        missed = 0
        while not self._stopped.wait(self._poll_s):
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=2 * self._poll_s):
                    missed = 0
                    continue
            except OSError as exc:
                missed += 1
                why = exc.strerror or type(exc).__name__
            if missed >= self._misses and not self._stopped.is_set():
                who = "it" if self.head == self.address else f"its head {self.head}"
                self.gone = f"the Ray cluster at {self.address} is gone ({who} stopped answering: {why})"
                self._on_gone(self.gone)
                return
