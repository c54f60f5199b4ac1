"""The fork-server processes a Sandbox keeps: one server and its pipes, the pool of idle and busy ones.

`Sandbox` (sandbox.py) decides what a call may do and how its outcome is labelled; this module only
starts, talks to, restarts and stops the long-lived `evoagent._forkserver` processes, with an
environment scrubbed of anything that looks secret.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal as signals
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._forkserver import PipeReader, send_line
from .confinement import fork_server_command
from .errors import ConfigError, SandboxError
from .scheduling import GpuQueue, GpuSlot

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
BASE_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "PYTHONPATH", "PYTHONHASHSEED", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CC", "CXX",
})
BASE_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TRITON_", "TORCH_", "PYTORCH_", "OMP_", "MKL_",
                     "OPENBLAS_", "XDG_", "CUDNN_", "CUBLAS_")
_START_S = 120.0  # a fork server must be ready (pre-imports done) within this
_GRACE_S = 30.0  # extra time a server gets to report a call after the call's own timeout


def scrubbed_environ(source: Mapping[str, str], allowlist: Sequence[str] = ()) -> dict[str, str]:
    """The base variables of `source` minus anything that looks secret, plus `allowlist` names."""
    env = {
        name: value for name, value in source.items()
        if (name in BASE_ENV_NAMES or name.startswith(BASE_ENV_PREFIXES))
        and not any(word in name.upper() for word in SECRET_WORDS)
    }
    env.update({name: source[name] for name in allowlist if name in source})
    return env


def child_sys_path() -> list[str]:
    """The trusted process's sys.path with relative entries ('' = its cwd) made absolute."""
    return [os.path.abspath(p) for p in sys.path]


@dataclass(slots=True)
class PoolState:
    """The idle and busy workers and the closed flag, shared with the finalizer (which must not hold the Sandbox).

    CPU workers wait in a FIFO queue; GPU workers in a `GpuQueue` (priority order, busy time per device),
    set once they are ready.
    """

    cpu: queue.Queue[Server | None]
    gpu: GpuQueue[Server] | None = None
    busy: set[Server] = field(default_factory=set)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def worker(self, *, gpu: bool) -> Iterator[Server]:
        """A free worker for one call: a CPU one, or a GPU one in priority order (its busy time counted)."""
        if not gpu:
            server = self.acquire()
            try:
                yield server
            finally:
                self.release(server)
            return
        slot = self.acquire_gpu()
        try:
            yield slot.worker
        finally:
            self.release_gpu(slot)

    def acquire(self) -> Server:
        server = self.cpu.get()
        with self.lock:
            if server is not None and not self.closed:
                self.busy.add(server)
                return server
        self.cpu.put(None)  # the sandbox was closed; pass the wake-up on to the next waiter
        raise SandboxError("the Sandbox is closed; create a new one")

    def release(self, server: Server) -> None:
        with self.lock:
            self.busy.discard(server)
            if not self.closed:
                self.cpu.put(server)
                return
        server.dispose()

    def acquire_gpu(self) -> GpuSlot[Server]:
        """A GPU worker's slot, in the order of the calling thread's `gpu_priority`."""
        assert self.gpu is not None  # Check internal correctness.
        slot = self.gpu.acquire()  # raises SandboxError once the sandbox is closed
        with self.lock:
            if not self.closed:
                self.busy.add(slot.worker)
                return slot
        self.gpu.release(slot)
        raise SandboxError("the Sandbox is closed; create a new one")

    def release_gpu(self, slot: GpuSlot[Server]) -> None:
        assert self.gpu is not None  # Check internal correctness.
        with self.lock:
            self.busy.discard(slot.worker)
            closed = self.closed
        self.gpu.release(slot)
        if closed:
            slot.worker.dispose()


def shutdown(servers: list[Server], state: PoolState, root: Path, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked copy of the owner must not stop the owner's servers
        return
    with state.lock:
        state.closed = True
        busy = set(state.busy)
    for server in servers:
        server.terminate()  # the server kills a running call's process group, then exits
    for server in servers:
        if server in busy:
            server.reap()  # the calling thread closes its pipes when it hands the server back
        else:
            server.dispose()
    state.cpu.put(None)
    if state.gpu is not None:
        state.gpu.close()
    shutil.rmtree(root, ignore_errors=True)


class ServerLost(Exception):
    def __init__(self, reason: str, *, started: bool) -> None:
        super().__init__(reason)
        self.started = started


class Server:
    """One fork server process and its pipes; used by one thread at a time."""

    def __init__(self, name: str, root: Path, pinned: dict[str, str], *, preload: Sequence[str],
                 confine: bool, gpu: bool = False) -> None:
        self.name, self.root, self.pinned, self.gpu = name, root, pinned, gpu
        self.preload, self.confine = tuple(preload), confine
        self.namespace_error: str | None = None
        self.jail: dict[str, Any] | None = None  # what jail.py gives each call (the server's report)
        self.log = root / f"server-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: PipeReader | None = None

    def start(self) -> None:
        env = {**scrubbed_environ(os.environ), **self.pinned}
        package_root = str(Path(__file__).resolve().parent.parent)  # so `-m evoagent._forkserver` resolves
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                fork_server_command(confine=self.confine), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=env, cwd=self.root, start_new_session=True, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None  # Check internal correctness.
        self.reader = PipeReader(self.proc.stdout.fileno())
        send_line(self.proc.stdin.fileno(), {"preload": list(self.preload), "sys_path": child_sys_path()})

    def wait_ready(self) -> None:
        assert self.reader is not None  # Check internal correctness.
        try:
            ready = self.reader.line(time.monotonic() + _START_S)
        except (EOFError, TimeoutError, OSError, ValueError) as exc:
            log = self.log_tail()
            raise SandboxError(f"fork server {self.name} did not start ({exc}); its log ends: {log}") from None
        self.namespace_error = ready.get("namespace_error")
        self.jail = ready.get("jail")
        failed = ready.get("preload_errors") or {}
        if failed:
            name, error = next(iter(failed.items()))
            raise ConfigError(f"SandboxConfig.preload: the fork server cannot import {name!r} ({error}); "
                              "install it or remove it from preload")

    def restart(self) -> None:
        self.dispose()
        self.start()
        self.wait_ready()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, request: dict[str, Any], blob: bytes, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        assert self.proc is not None and self.proc.stdin is not None and self.reader is not None
        try:
            send_line(self.proc.stdin.fileno(), request, blob)
            child = self.reader.line(time.monotonic() + _GRACE_S)["pid"]
        except (EOFError, TimeoutError, OSError, ValueError) as exc:
            lost = f"fork server {self.name} died before starting the call ({exc})"
            raise ServerLost(lost, started=False) from None
        try:
            deadline = time.monotonic() + timeout_s + _GRACE_S
            done = self.reader.line(deadline)
            return done, self.reader.exact(done["payload_len"], deadline + _GRACE_S)
        except (EOFError, TimeoutError, OSError, ValueError) as exc:
            for kill in (os.killpg, os.kill):  # the server cannot kill the call's process group any more
                try:  # (0: the server did not know the call's host pid; its namespace died with it anyway)
                    if child > 1:
                        kill(child, signals.SIGKILL)
                except OSError:
                    pass
            raise ServerLost(f"fork server {self.name} died during the call ({type(exc).__name__}: {exc}); "
                              f"its log ends: {self.log_tail()}", started=True) from None

    def terminate(self) -> None:
        """Asks the server to stop (it kills a running call's process group first); no waiting."""
        proc = self.proc  # (another thread may be disposing of it)
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def reap(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def dispose(self) -> None:
        """Stops the server and closes its pipes (only from the thread that holds it, or when idle)."""
        if self.proc is None:
            return
        self.terminate()
        self.reap()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.proc, self.reader = None, None

    def log_tail(self, limit: int = 2000) -> str:
        try:
            text = self.log.read_bytes()[-limit:].decode("utf-8", "replace").strip()
        except OSError:
            return "(no log)"
        return text or "(empty)"
