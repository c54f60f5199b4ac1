"""Sandbox: runs one function of the evaluator or candidate in a forked, limited, disposable child process.

Every `Sandbox.call` runs in a child forked from a long-lived fork server (`evoagent._forkserver`)
that pre-imported `SandboxConfig.preload` once, so a trivial call starts in milliseconds rather than
the seconds a fresh interpreter needs to import torch. The child has its own process group (killed
whole on timeout and after every call), an address-space limit, an environment without secrets, a
fresh working directory holding the call's files, stdout/stderr captured to files, and a private
result pipe whose bytes the trusted side decodes with a restricted codec (plain values and numeric
numpy arrays only; never pickle). What a call can and cannot do:

- with `SandboxConfig.confine` (the default) the operating system confines it (`confinement.py`,
  `jail.py`): it reads only Python, site-packages, system files and `read_paths`, writes only its
  private working and temp directories (size-limited tmpfs) and `write_paths`, has no network, no
  pathname Unix socket and no metadata syscall, runs as an unprivileged uid, and cannot ptrace,
  signal or read /proc of processes outside its sandbox. Verdicts belong in the trusted process.
- it cannot make the trusted side run its code (no pickle is read back), forge the server's
  report (those pipes are closed in the child), fake a result by printing, or leave processes
  behind (confined, it runs in its own PID namespace, whose processes all die with the call;
  unconfined, its process group is killed and escapees re-parented to the server are killed).
  It cannot report a set-up failure either; it can end as `harness_error` only by killing its own
  fork server (only when not confined) or when the evaluator's function hands back a value of the
  candidate's that the channel cannot carry (the evaluator's bug, named as such), and then it never scores.

Labels: OK; CRASH (fn raised, the process died or exited early, or the result channel held
something that is not a plain value); OOM (MemoryError, ENOMEM, torch's out-of-memory errors);
TIMEOUT; HARNESS_ERROR (the sandbox failed: a server died, the call could not be set up; or fn,
the evaluator's own function, returned a value the channel cannot carry: the reason names fn and the type).
A server that dies is restarted at the next call. If it died before it accepted a call, the call
is retried once on the new server; if it died during a call, that call is `harness_error`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import queue
import shutil
import signal as signals
import sys
import tempfile
import threading
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ._calls import PreparedCall, prepare_call
from ._codec import CodecError, decode_value, encode_value
from ._servers import (
    PoolState,
    Server,
    ServerLost,
    child_sys_path,
    scrubbed_environ,
    shutdown,
)
from .channel import CHANNEL_ENV, ChannelClosed, Driver, Session, make_channel
from .confinement import Confinement, Reach, cache_environment, protect_trusted_process, writable_dirs
from .errors import ConfigError, SandboxError
from .result import Status
from .scheduling import DeviceUsage, GpuQueue

__all__ = [
    "CodecError",
    "PreparedCall",
    "Sandbox",
    "SandboxConfig",
    "SandboxResult",
    "decode_value",
    "encode_value",
    "prepare_call",
    "run_module_function",
    "scrubbed_environ",
]

_NOT_PLAIN = "result channel held data that is not a plain value"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    """How sandboxed calls run.

    Attributes:
        timeout_s: wall-clock limit of one call in seconds (a call may pass its own).
        memory_mb: address space (RLIMIT_AS) a call may add on top of the pre-imported fork server,
            in MiB; None for no limit. Not applied on GPU workers (CUDA reserves huge address ranges).
        env_allowlist: names of environment variables passed to calls even if they look secret
            (by default only a base set passes: PATH, HOME, LANG, CUDA_*, TRITON_*, ..., secrets dropped).
        preload: modules each fork server imports once, so calls start without importing them.
        workers: CPU fork servers, i.e. calls that run at once (GPU workers come on top).
        max_output_bytes: stdout and stderr are each cut to this many bytes (head and tail kept).
        max_result_bytes: a larger encoded return value is refused (the call is a crash).
        gpus: GPU ids that get one pinned worker each (see `Sandbox`); a target that times on GPUs
            sets this in its `sandbox_config()` so that the engine's sandbox schedules by device.
        confine: confine calls with the operating system (Landlock, namespaces; see `confinement.py`).
        read_paths: absolute paths calls may read besides Python, site-packages and system files.
        write_paths: absolute directories calls may write besides their own (created if missing;
            shared by every call: prefer `Sandbox.call(write_paths=...)`, one candidate's own folder).
        disk_mb: size of each of a confined call's two private tmpfs folders (its working and temp
            directory) in MiB: writes past it fail with ENOSPC.
        file_mb: largest file a confined call may write anywhere, its stdout and stderr included, in
            MiB (RLIMIT_FSIZE): writes past it fail with EFBIG.
        max_tasks: processes and threads a confined call may run at once (RLIMIT_NPROC in its fork
            server's user namespace): a fork or thread past it fails.
    """

    timeout_s: float = 60.0
    memory_mb: int | None = 8192
    env_allowlist: tuple[str, ...] = ()
    preload: tuple[str, ...] = ("numpy",)
    workers: int = 2
    max_output_bytes: int = 64 * 1024
    max_result_bytes: int = 1 << 30
    gpus: tuple[str, ...] = ()
    confine: bool = True
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    disk_mb: int = 1024
    file_mb: int = 1024
    max_tasks: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus", tuple(str(g) for g in self.gpus))
        for name in ("env_allowlist", "preload", "read_paths", "write_paths"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, (str, os.PathLike)) for v in value):
                raise ConfigError(f"SandboxConfig.{name} must be a sequence of names (got {value!r})")
            object.__setattr__(self, name, tuple(os.fspath(v) for v in value))
        for name in ("read_paths", "write_paths"):
            relative = [p for p in getattr(self, name) if not os.path.isabs(p)]
            if relative:
                raise ConfigError(f"SandboxConfig.{name} must hold absolute paths (got {relative[0]!r})")
        _positive("timeout_s", self.timeout_s, float)
        if self.memory_mb is not None:
            _positive("memory_mb", self.memory_mb, int)
        for name in ("workers", "max_output_bytes", "max_result_bytes", "disk_mb", "file_mb", "max_tasks"):
            _positive(name, getattr(self, name), int)


def _positive(name: str, value: Any, kind: type) -> None:
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok or not value > 0 or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"SandboxConfig.{name} must be a positive {kind.__name__} (got {value!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxResult:
    """What one sandboxed call produced.

    Attributes:
        status: OK, TIMEOUT, CRASH, OOM or HARNESS_ERROR.
        value: the function's return value (only when OK).
        reason: why it failed: a summary line, then details (the traceback when fn raised).
        stdout, stderr: captured output, each cut to `max_output_bytes`.
        wall_s: the call's wall time from fork to exit, measured by the fork server.
        exitcode: the child's exit code (None if a signal ended it).
        signal: the number of the signal that ended it, else None.
        error: the traceback when fn raised, else "".
    """

    status: Status
    value: Any = None
    reason: str = ""
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    exitcode: int | None = None
    signal: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def logs(self) -> str:
        """stdout then stderr."""
        return "\n".join(part for part in (self.stdout, self.stderr) if part)


def run_module_function(entry_file: str, score_fn: Callable[[types.ModuleType], Any]) -> Any:
    """In the child: imports the candidate module `entry_file` (in the cwd) and returns `score_fn(module)`.

    A ValueError from `score_fn` means "the candidate is wrong" and comes back as {"error": text}.
    """
    path = PurePosixPath(entry_file)
    if path.suffix != ".py" or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"entry_file must be a relative '.py' file name (got {entry_file!r})")
    name = ".".join(path.with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.getcwd(), *path.parts))
    assert spec is not None and spec.loader is not None  # Check internal correctness.
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    try:
        return score_fn(module)
    except ValueError as exc:
        return {"error": str(exc)}


def run_script(script_file: str) -> None:
    """In the child: runs `script_file` (in the cwd, beside the candidate's files) as `__main__`.

    Its printed output is what the caller reads; an exception makes the call a crash with the traceback.
    """
    import runpy

    path = PurePosixPath(script_file)
    if path.suffix != ".py" or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"script_file must be a relative '.py' file name (got {script_file!r})")
    sys.path.insert(0, os.getcwd())
    runpy.run_path(os.path.join(os.getcwd(), *path.parts), run_name="__main__")


class Sandbox:
    """A pool of fork servers running calls in sandboxed children; thread-safe; close it (or use `with`).

    `gpus` adds one worker per GPU id (CUDA_VISIBLE_DEVICES pinned to it) for `call(..., gpu=True)`,
    one call per GPU at a time, waiting calls served in `scheduling.gpu_priority` order and each
    device's busy time counted (`gpu_usage()`); CPU workers then see no GPU (CUDA_VISIBLE_DEVICES="").
    `confinement` says what the operating system confines its calls with (see `confinement.py`).
    """

    def __init__(self, config: SandboxConfig | None = None, *, gpus: Sequence[int | str] = (),
                 scratch_dir: str | os.PathLike[str] | None = None) -> None:
        config = SandboxConfig() if config is None else config
        if not isinstance(config, SandboxConfig):
            raise TypeError(f"Sandbox config must be a SandboxConfig (got {config!r})")
        if isinstance(gpus, (str, int)) or not all(isinstance(g, (int, str)) and not isinstance(g, bool) for g in gpus):
            raise TypeError(f"Sandbox gpus must be a sequence of device ids like (0, 1) (got {gpus!r})")
        self.config = config
        self.gpus = tuple(str(g) for g in gpus) or config.gpus
        if len(set(self.gpus)) != len(self.gpus):
            raise ValueError(f"Sandbox gpus must not repeat a device (got {gpus!r}); each GPU gets one worker")
        root = Path(tempfile.mkdtemp(prefix="evoagent-sandbox-", dir=scratch_dir))  # (default: the temp dir)
        if config.confine:
            protect_trusted_process()
            root.chmod(0o711)  # traversable (not listable) by the candidates' uid: see `_prepare`
            for path in map(Path, config.write_paths):
                path.mkdir(parents=True, exist_ok=True)
        hide = {"CUDA_VISIBLE_DEVICES": ""} if self.gpus else {}
        cpu = [Server(f"cpu{i}", root, hide, preload=config.preload, confine=config.confine)
               for i in range(config.workers)]
        gpu = [Server(f"gpu{g}", root, {"CUDA_VISIBLE_DEVICES": g}, preload=config.preload,
                      confine=config.confine, gpu=True) for g in self.gpus]
        self._state = PoolState(queue.Queue())
        self._finalizer = weakref.finalize(self, shutdown, cpu + gpu, self._state, root, os.getpid())
        self._root = root
        try:
            for server in cpu + gpu:
                server.start()
            for server in cpu + gpu:
                server.wait_ready()
        except BaseException:
            self._finalizer()
            raise
        self.confinement = Confinement.measure(enabled=config.confine, namespace_error=cpu[0].namespace_error,
                                               jail=cpu[0].jail)
        self.confinement.warn_if_partial()
        for server in cpu:
            self._state.cpu.put(server)
        if gpu:  # busy time counts from here: the GPU workers are ready
            self._state.gpu = GpuQueue({g: server for g, server in zip(self.gpus, gpu)})

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else "open"
        return f"<Sandbox {state} workers={self.config.workers} gpus={list(self.gpus)}>"

    def close(self) -> None:
        """Stops every fork server (killing any running call) and removes the sandbox's files."""
        self._finalizer()

    def describe(self) -> str:
        """What runs the calls, in words (`evoagent status` shows it)."""
        return f"local ({self.config.workers} CPU workers, {len(self.gpus)} GPUs)"

    def call(self, fn: Callable[..., Any], /, *args: Any, files: Mapping[str, str | bytes] | None = None,
             timeout_s: float | None = None, env: Mapping[str, str] | None = None,
             gpu: bool = False, write_paths: Sequence[str | os.PathLike[str]] = (),
             driver: Driver | None = None) -> SandboxResult:
        """Runs `fn(*args)` in a sandboxed child; blocks until a worker is free and the call ends.

        Args:
            fn: a module-level function, imported by reference in the child.
            args: pickled to the child.
            files: relative path -> text or bytes, written to the child's fresh working directory
                (which is also sys.path[0]).
            timeout_s: this call's limit (default `config.timeout_s`).
            env: variables added to this call's environment (e.g. {"TRITON_INTERPRET": "1"}).
            gpu: run on a GPU worker (the Sandbox must have been given `gpus`).
            write_paths: absolute folders this call alone may also write (created): a candidate's own cache.
            driver: makes this a driven call (`channel.py`): `driver.fn(session, *driver.args)` runs in this
                process while the child runs, talking to it over the call's channel
                (`Channel.from_environment()` in the child); the result's value is what the driver returned.
        """
        prepared = prepare_call(fn, args, files=files, timeout_s=timeout_s, env=env, write_paths=write_paths,
                                driver=driver)
        return self.run_prepared(prepared, gpu=gpu)

    def run_prepared(self, prepared: PreparedCall, *, gpu: bool = False) -> SandboxResult:
        """Runs a call checked and pickled by `prepare_call` (here, or in another process: executors send it)."""
        if gpu and not self.gpus:
            raise SandboxError("call(..., gpu=True) needs a Sandbox with GPU workers, e.g. Sandbox(config, gpus=(0,)); "
                               "this one has none")
        timeout = float(self.config.timeout_s if prepared.timeout_s is None else prepared.timeout_s)
        blob, module_files, env = prepared.blob, dict(prepared.module_files), dict(prepared.env)
        calldir = self._prepare(dict(prepared.files))  # files are written before a worker is taken, outputs read after
        channel = calldir / "channel"
        ends = make_channel(channel) if prepared.driver is not None else None
        driven_started = False  # from then on the session owns (and closes) the channel's ends
        try:
            with self._state.worker(gpu=gpu) as server:  # GPU calls wait in `gpu_priority` order
                writes = writable_dirs(prepared.write_paths, "write_paths")  # created where the call runs
                if ends is not None:
                    env[CHANNEL_ENV], writes = str(channel), (*writes, str(channel))
                request = self._request(server, calldir, blob, module_files, timeout, env, writes)
                if ends is None:
                    done, payload, lost = self._exchange(server, request, blob, timeout)
                else:
                    assert prepared.driver is not None  # Check internal correctness.
                    driven_started = True
                    (done, payload, lost), driven = self._drive(server, request, blob, timeout, ends, prepared.driver)
            cap = self.config.max_output_bytes
            out, err = _read_capped(calldir / "stdout", cap), _read_capped(calldir / "stderr", cap)
            if lost is not None:
                return SandboxResult(status=Status.HARNESS_ERROR, reason=lost, stdout=out, stderr=err)
            status, value, reason, error = _interpret(done, payload, timeout, self.config)
            if status is Status.HARNESS_ERROR and reason.startswith(_UNCARRIED):  # the evaluator's bug, named
                reason = f"the evaluator's function {_short(prepared.function)} {reason}"
            if ends is not None and status is Status.OK:
                value, reason = driven
                status = Status.CRASH if reason else Status.OK
            elif ends is not None and status is Status.CRASH and driven[1]:  # the driver saw the cause first
                reason = f"{driven[1]} (then the call's process {reason.splitlines()[0][:200]})"
            return SandboxResult(status=status, value=value, reason=reason, stdout=out, stderr=err,
                                 wall_s=done["wall_s"], exitcode=done["exitcode"], signal=done["signal"], error=error)
        finally:
            if ends is not None and prepared.driver is not None and not driven_started:
                for fd in ends:
                    os.close(fd)
            shutil.rmtree(calldir, ignore_errors=True)

    def _drive(self, server: Server, request: dict[str, Any], blob: bytes, timeout_s: float, ends: tuple[int, int],
               driver: Driver) -> tuple[tuple[dict[str, Any], bytes, str | None], tuple[Any, str]]:
        """Runs the call in a helper thread and `driver` here; returns the call's outcome and (driver value, why
        the child stopped answering or "")."""
        outcome: list[tuple[dict[str, Any], bytes, str | None]] = []
        ended = threading.Event()

        def child() -> None:
            try:
                outcome.append(self._exchange(server, request, blob, timeout_s))
            finally:
                ended.set()

        thread = threading.Thread(target=child, name="evoagent-driven-call", daemon=True)
        thread.start()
        session = Session(*ends, child_done=ended.is_set, max_reply_bytes=self.config.max_result_bytes)
        value, broken = None, ""
        try:
            value = driver.fn(session, *driver.args)
        except ChannelClosed as exc:
            broken = f"the call's process stopped answering its driver: {exc}"
        finally:
            if not broken:
                session.stop()
            session.close()  # a child still writing or reading now gets EPIPE or end-of-file, not our silence
            thread.join()
        return outcome[0], (value, broken)

    def gpu_usage(self) -> tuple[DeviceUsage, ...]:
        """Busy and wall seconds of each GPU worker since the sandbox was ready (empty without GPUs)."""
        return () if self._state.gpu is None else self._state.gpu.usage()

    def _prepare(self, files: dict[str, bytes]) -> Path:
        """A fresh call directory: `work` (the call's files; its cwd) and `tmp`."""
        try:
            calldir = Path(tempfile.mkdtemp(prefix="call-", dir=self._root))
            if self.config.confine:  # tools that check access() first (gcc's TMPDIR) do it without capabilities
                calldir.chmod(0o711)
            work = calldir / "work"
            for folder in (work, calldir / "tmp"):
                folder.mkdir()
            for name, data in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_bytes(data)
        except FileNotFoundError:
            if self._state.closed:  # close() removed the sandbox's folder
                raise SandboxError("the Sandbox is closed; create a new one") from None
            raise
        return calldir

    def _request(self, server: Server, calldir: Path, blob: bytes, module_files: dict[str, str],
                 timeout_s: float, env: dict[str, str], writes: tuple[str, ...]) -> dict[str, Any]:
        work, tmp = calldir / "work", calldir / "tmp"
        confine, cache = self.config.confine, tmp / "cache"  # compilers' default caches: this call's own
        reach = Reach.for_call(work=str(work), tmp=str(tmp), read=self.config.read_paths,
                               write=(*self.config.write_paths, *writes))
        return {
            "cwd": str(work), "stdout": str(calldir / "stdout"), "stderr": str(calldir / "stderr"),
            "env": {**scrubbed_environ(os.environ, self.config.env_allowlist),
                    **(cache_environment(cache, home=tmp) if confine else {}), "TMPDIR": str(tmp),
                    **env, **server.pinned},
            "sys_path": child_sys_path(), "module_files": module_files,
            "reach": reach.as_request() if confine else None,
            "memory_mb": None if server.gpu else self.config.memory_mb, "timeout_s": timeout_s,
            "max_result_bytes": self.config.max_result_bytes, "blob_len": len(blob),
            "limits": {"disk_bytes": self.config.disk_mb << 20, "file_bytes": self.config.file_mb << 20,
                       "tasks": self.config.max_tasks},
        }

    def _exchange(self, server: Server, request: dict[str, Any], blob: bytes,
                  timeout_s: float) -> tuple[dict[str, Any], bytes, str | None]:
        """Sends the call to `server` (restarting it if needed); returns (done, payload, why-lost)."""
        for attempt in (1, 2):
            if self._state.closed:
                return {}, b"", "the sandbox was closed"
            try:
                if not server.alive():
                    server.restart()
                done, payload = server.call(request, blob, timeout_s)
                return done, payload, None
            except ServerLost as lost:
                server.dispose()
                if self._state.closed:
                    return {}, b"", "the sandbox was closed during the call"
                if lost.started or attempt == 2:
                    return {}, b"", f"{lost}; the server will be restarted"
            except (SandboxError, ConfigError) as exc:
                server.dispose()
                return {}, b"", f"could not restart the fork server: {exc}"
        raise AssertionError("unreachable")  # Check internal correctness.


def _interpret(done: dict[str, Any], payload: bytes, timeout_s: float,
               config: SandboxConfig) -> tuple[Status, Any, str, str]:
    """(status, value, reason, error) from the server's report and the child's message."""
    if done["setup_error"]:
        return Status.HARNESS_ERROR, None, f"the sandbox could not set up the call: {done['setup_error']}", ""
    if done["timed_out"]:
        return Status.TIMEOUT, None, f"exceeded {float(timeout_s)} s (its process group was killed)", ""
    if done["overflow"]:
        too_big = f"returned more than {config.max_result_bytes} bytes through the result channel"
        return Status.CRASH, None, too_big, ""
    if done["signal"] is not None:
        ended = f"was killed by signal {_signal_name(done['signal'])}"
        if done["signal"] == signals.SIGKILL:
            ended += " (not by the sandbox: perhaps the kernel's out-of-memory killer)"
    else:
        ended = f"exited with code {done['exitcode']}"
    if not done["setup_done"]:
        return Status.HARNESS_ERROR, None, f"the call's process {ended} while the sandbox was setting it up", ""
    if not payload:
        return Status.CRASH, None, f"the call's process {ended} before returning a result", ""
    try:
        message = decode_value(payload)
    except CodecError:
        return Status.CRASH, None, _NOT_PLAIN, ""
    if done["exitcode"] != 0:
        return Status.CRASH, None, f"the call's process {ended} after writing its result", ""
    return _from_message(message, config)


def _from_message(message: Any, config: SandboxConfig) -> tuple[Status, Any, str, str]:
    kind = message.get("kind") if isinstance(message, dict) else None
    if kind == "ok" and set(message) == {"kind", "value"}:
        return Status.OK, message["value"], "", ""
    if kind == "unencodable" and isinstance(message.get("reason"), str):  # fn is the evaluator's, not the candidate's
        return Status.HARNESS_ERROR, None, f"{_UNCARRIED}: {message['reason']}; convert it before returning", ""
    texts_ok = all(isinstance(message.get(t), str) for t in ("exc_type", "message", "traceback"))
    if kind == "raised" and texts_ok and isinstance(message.get("oom"), bool):
        summary = f"{message['exc_type']}: {message['message']}".strip().splitlines()[0][:500]
        if message["oom"]:
            limit = "no limit" if config.memory_mb is None else f"limit {config.memory_mb} MiB above the server"
            summary = f"out of memory ({limit}): {summary}"
        status = Status.OOM if message["oom"] else Status.CRASH
        trace = message["traceback"].rstrip()
        return status, None, f"raised {summary}\n{trace}".rstrip(), trace
    return Status.CRASH, None, _NOT_PLAIN, ""


_UNCARRIED = "returned a value the sandbox cannot carry"


def _short(function: str) -> str:
    """'run_sort' for 'evoagent_user_evaluator_123.run_sort' (the user's own module names are long)."""
    module, _, name = function.rpartition(".")
    return name if module.startswith("evoagent_user_") or not module else function


def _signal_name(number: int) -> str:
    try:
        name = signals.Signals(number).name
    except ValueError:
        return f"{number}"
    return f"{name} ({signals.strsignal(number)})"


def _read_capped(path: Path, limit: int) -> str:
    """The file's text; if longer than `limit` bytes, its head and tail with a marker between."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= limit:
                data = f.read()
            else:
                head = f.read(limit // 2)
                f.seek(size - limit // 2)
                data = head + f"\n... [{size - limit // 2 * 2} bytes cut] ...\n".encode() + f.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")
