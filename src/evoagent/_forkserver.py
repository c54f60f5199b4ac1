"""The fork server: a clean process that pre-imports modules once and forks one sandboxed child per call.

Started by `evoagent.sandbox` as `python -m evoagent._forkserver`. It never imports candidate code
itself; only its children do, after fork, in their own process group. This module also holds the
pipe reader with deadlines that both ends share; the result channel's codec is in `_codec.py`.

Protocol, over the server's stdin/stdout pipes (moved off fds 0 and 1 at start), one JSON line each:
  trusted -> server   config   {"preload": [...], "sys_path": [...]}
  server  -> trusted  ready    {"pid": int, "preload_errors": {module: "Error: text"},
                                "namespace_error": null or why the server has no network namespace,
                                "jail": null (unconfined) or what `jail.probe` found}
  then for every call:
  trusted -> server   request  {"cwd", "stdout", "stderr", "env", "sys_path", "module_files",
                                "memory_mb", "timeout_s", "max_result_bytes", "reach", "limits",
                                "blob_len"} + blob
                               (blob: pickle of (fn, args), unpickled only in the child)
  server  -> trusted  started  {"pid": child pid}
  server  -> trusted  done     {"exitcode", "signal", "timed_out", "wall_s", "setup_done",
                                "setup_error", "overflow", "payload_len"} + payload
                               (payload: what the child wrote to its result pipe, passed on unread)

Confinement (`evoagent.confinement`, `evoagent.jail`): a confined server is started by a bootstrap
that enters a new user and network namespace before anything is imported (`fork_server_command`)
and makes the server PID 1 of PID, IPC and mount namespaces of its own; the server tries the jail's
mechanisms once at start (`jail.probe`, reported in "ready" as "jail"). For a confined call (`reach`
not null) it forks the child into new PID, IPC and mount namespaces (`jail.CallNamespaces`) and
returns to its own; the child drops its uid and capabilities, sets its limits, applies its Landlock
domain and the seccomp filter after loading the call's function and before running it, i.e.
before any candidate code is imported. The "started" pid is the one the host sees (0 if unknown).

The child reports setup failures through a second pipe that it closes before the call's function
runs, so a candidate cannot make its own failure look like ours (`harness_error`).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import math
import os
import pickle
import select
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

from evoagent import jail
from evoagent._codec import CodecError, encode_ok_message, encode_value
from evoagent.confinement import CANDIDATE_UID_REPORT, NAMESPACE_REPORT, SERVER_NAMESPACES_REPORT, restrict_self

# ---------------------------------------------------------------------------------------------
# Pipes with deadlines (both ends).


class PipeReader:
    """Reads JSON lines and exact byte counts from a pipe; deadlines are `time.monotonic()` values."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def _fill(self, deadline: float | None, want: int) -> None:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poll.poll(math.ceil(remaining * 1000)):
                raise TimeoutError("no answer before the deadline")
        chunk = os.read(self.fd, max(want, 1 << 16))
        if not chunk:
            raise EOFError("the pipe was closed by the other end")
        self._buf += chunk

    def line(self, deadline: float | None = None) -> Any:
        while (end := self._buf.find(b"\n")) < 0:
            self._fill(deadline, 1 << 16)
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return json.loads(line)

    def exact(self, n: int, deadline: float | None = None) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline, min(n - len(self._buf), 1 << 24))
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_line(fd: int, obj: Any, payload: bytes | bytearray = b"") -> None:
    """Writes one JSON line, then `payload` (if any)."""
    line = json.dumps(obj).encode() + b"\n"
    if len(payload) < 1 << 16:
        write_all(fd, line + payload)
    else:
        write_all(fd, line)
        write_all(fd, payload)


# ---------------------------------------------------------------------------------------------
# The server.

_MAIN_ALIAS = "__evoagent_main__"  # the trusted side's __main__ script, loaded by path in a child
_active_child: int | None = None  # process group of the child now running, killed on exit
_jail: dict[str, Any] | None = None  # what jail.py gives each call here (None: the server is not confined)
_namespaces: jail.CallNamespaces | None = None  # set when calls get namespaces of their own
_active_init: int | None = None  # the init of the running call's PID namespace, killed on exit


def main() -> None:
    global _active_child, _jail, _namespaces
    req_fd, resp_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything printed by a pre-imported module goes to the server log
    os.close(devnull)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    reader = PipeReader(req_fd)
    config = reader.line()
    sys.path[:] = config["sys_path"] + [p for p in sys.path if p not in config["sys_path"]]
    _become_subreaper()
    errors = {}
    for name in ["evoagent.sandbox", *config["preload"]]:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # report every failure; the trusted side raises
            errors[name] = f"{type(exc).__name__}: {exc}"
    sys.stdout.flush()
    import gc

    gc.freeze()  # keep pre-imported objects out of the children's garbage collections (fewer page copies)
    namespace = os.environ.pop(NAMESPACE_REPORT, "not asked for")
    candidate_uid = os.environ.pop(CANDIDATE_UID_REPORT, "")
    server_namespaces = os.environ.pop(SERVER_NAMESPACES_REPORT, "the fork server has no user namespace")
    if namespace != "not asked for":
        _jail = jail.probe(int(candidate_uid) if candidate_uid else None, user_namespace=not namespace,
                           server_namespaces=server_namespaces or None)
        _namespaces = jail.CallNamespaces() if _jail["call_namespaces"] is None else None
    send_line(resp_fd, {"pid": os.getpid(), "preload_errors": errors, "namespace_error": namespace or None,
                        "jail": _jail})
    try:
        while True:
            try:
                request = reader.line()
            except EOFError:
                return
            blob = reader.exact(request["blob_len"])
            done, payload = _serve(request, blob, reader, resp_fd)
            send_line(resp_fd, done, payload)
            if _namespaces is None:  # (a jailed call's orphans die with its namespace)
                _sweep_orphans()
    finally:
        if _active_child is not None:
            _kill_group(_active_child)
        if _active_init is not None:
            os.kill(_active_init, signal.SIGKILL)


def _serve(request: dict[str, Any], blob: bytes, reader: PipeReader, resp_fd: int) -> tuple[dict[str, Any], bytes]:
    global _active_child, _active_init
    result_r, result_w = os.pipe()
    setup_r, setup_w = os.pipe()
    started = time.monotonic()
    init, failed = None, ""
    if request["reach"] is not None and _namespaces is not None:
        assert _jail is not None  # Check internal correctness.
        tmpfs = [] if _jail["private_disk"] is not None else [
            (folder, request["limits"]["disk_bytes"], _jail["switch_uid"])
            for folder in (request["cwd"], request["env"].get("TMPDIR")) if folder]
        try:
            init = _active_init = _namespaces.enter(tmpfs, close=(result_r, result_w, setup_r, setup_w))
        except OSError as exc:  # the probe at start worked, so this is the sandbox's failure: a harness error
            failed = str(exc)
    pid = os.fork()
    if pid == 0:  # the child: never returns into the server loop
        try:
            for fd in (result_r, setup_r, reader.fd, resp_fd):
                os.close(fd)
            if failed:
                write_all(setup_w, failed.encode())
                os._exit(0)
            _child(request, blob, result_w, setup_w)
        finally:
            os._exit(70)
    if init is not None:
        assert _namespaces is not None  # Check internal correctness.
        _namespaces.leave()
    _active_child = pid
    os.close(result_w)
    os.close(setup_w)
    send_line(resp_fd, {"pid": (jail.host_pid(pid) or 0) if _namespaces is not None else pid})
    outcome = _supervise(pid, started, request, result_r, setup_r, reader.fd, init)
    _active_child = _active_init = None
    payload = outcome.pop("payload")
    outcome["payload_len"] = len(payload)
    return outcome, payload


def _supervise(pid: int, started: float, request: dict[str, Any], result_r: int, setup_r: int,
               req_fd: int, init: int | None = None) -> dict[str, Any]:
    """Collects the child's pipes until it exits or its time is up; then kills its process group (and
    the init of its PID namespace, `init`: when that returns, nothing the call started runs)."""
    deadline = started + request["timeout_s"]
    pidfd = _pidfd(pid)
    poller = select.poll()
    for fd in (result_r, setup_r, req_fd, *([] if pidfd is None else [pidfd])):
        poller.register(fd, select.POLLIN)
    result, setup = bytearray(), bytearray()
    timed_out = overflow = exited = False
    status: int | None = None
    while not (exited or overflow):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        wait_s = remaining if pidfd is not None else min(remaining, 0.005)
        for fd, _ in poller.poll(math.ceil(wait_s * 1000)):
            if fd == pidfd:
                exited = True
            elif fd == req_fd:  # the trusted side never writes during a call: it has gone away
                _kill_group(pid)
                raise SystemExit(0)
            elif not _read_into(fd, result if fd == result_r else setup, poller):
                continue
            overflow = len(result) > request["max_result_bytes"]
        if pidfd is None:
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            exited = done_pid != 0
    wall_s = time.monotonic() - started
    _kill_group(pid)
    if status is None or not exited:
        status = os.waitpid(pid, 0)[1]
    if init is not None:
        jail.end_init(init)
    for fd, buf in ((result_r, result), (setup_r, setup)):
        _drain(fd, buf)
        os.close(fd)
    if pidfd is not None:
        os.close(pidfd)
    code = os.waitstatus_to_exitcode(status)
    setup_text = bytes(setup[:65536]).decode("utf-8", "replace")
    return {
        "exitcode": code if code >= 0 else None, "signal": -code if code < 0 else None,
        "timed_out": timed_out, "wall_s": wall_s, "overflow": overflow,
        "setup_done": setup_text == "ok", "setup_error": None if setup_text in ("", "ok") else setup_text,
        "payload": b"" if overflow else bytes(result),
    }


def _read_into(fd: int, buf: bytearray, poller: select.poll) -> bool:
    chunk = os.read(fd, 1 << 20)
    if not chunk:
        poller.unregister(fd)
        return False
    buf += chunk
    return True


def _drain(fd: int, buf: bytearray) -> None:
    """Reads what is left without blocking (a killed grandchild may still hold the write end)."""
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 1 << 20):
            buf += chunk
    except BlockingIOError:
        pass


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll waitpid instead
        return None


def _kill_group(pid: int) -> None:
    for kill, target in ((os.killpg, pid), (os.kill, pid)):  # the group, and the child if not yet its leader
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _become_subreaper() -> None:
    """Orphans of a child (double-forked, setsid escapees) get re-parented to us, to be killed."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _sweep_orphans() -> None:
    """Between calls the server has no legitimate children: kill and reap any that are left."""
    for _ in range(50):
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        try:
            tasks = os.listdir("/proc/self/task")
            kids = [int(p) for t in tasks for p in open(f"/proc/self/task/{t}/children").read().split()]
        except OSError:
            return
        if not kids:
            return
        for kid in kids:
            _kill_group(kid)
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# The child.


def _child(request: dict[str, Any], blob: bytes, result_w: int, setup_w: int) -> None:
    try:
        fn, args = _set_up(request, blob)
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        write_all(setup_w, text.encode("utf-8", "replace"))
        os._exit(0)
    sys.path.insert(0, request["cwd"])  # only now: the call's own modules cannot shadow fn's module
    write_all(setup_w, b"ok")
    os.close(setup_w)  # closed before fn runs: a candidate cannot report a setup failure
    message = _run(fn, args)
    try:
        data = encode_ok_message(message["value"]) if message["kind"] == "ok" else encode_value(message)
    except CodecError as exc:
        data = encode_value({"kind": "unencodable", "reason": str(exc)})
    except MemoryError:
        data = encode_value({"kind": "raised", "exc_type": "MemoryError", "oom": True,
                             "message": "while encoding the result", "traceback": ""})
    write_all(result_w, data)
    os.close(result_w)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def _set_up(request: dict[str, Any], blob: bytes) -> tuple[Any, tuple[Any, ...]]:
    import faulthandler
    import resource

    os.setsid()
    for target, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
        fd = os.open(path, flags, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if request["memory_mb"] is not None:  # on top of what the pre-imported server already maps
        limit = _address_space_bytes() + request["memory_mb"] * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # a module the server pre-imported may have asked for it: this call's TMPDIR now
    os.chdir(request["cwd"])
    sys.path[:] = request["sys_path"]
    sys.dont_write_bytecode = True  # no __pycache__ among the call's files
    faulthandler.enable()
    fn, args = _CallUnpickler(blob, request["module_files"]).load()  # the trusted side's modules, by reference
    if request["reach"] is not None:  # before any candidate code: it is imported by fn
        if _jail is not None:
            jail.drop_privileges(_jail["switch_uid"])
            limits = request["limits"]
            tasks = limits["tasks"] if _jail["tasks_limited"] else None
            jail.limit_resources(file_bytes=limits["file_bytes"], tasks=tasks)
        restrict_self(request["reach"])
        if _jail is not None and _jail["seccomp"] is None:
            jail.install_seccomp()
    return fn, tuple(args)


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _run(fn: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    try:
        return {"kind": "ok", "value": fn(*args)}
    except BaseException as exc:
        try:
            text = str(exc)[:4000]
        except BaseException:
            text = "<str() of the exception failed>"
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        return {"kind": "raised", "exc_type": name, "message": text,
                "traceback": _traceback_text(exc), "oom": is_out_of_memory(exc)}


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (numpy's _ArrayMemoryError too), ENOMEM, torch's OutOfMemoryError and CPU alloc errors."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, OSError) and exc.errno == 12:  # ENOMEM, e.g. from mmap
        return True
    text = str(exc) if isinstance(exc, RuntimeError) else ""
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _traceback_text(exc: BaseException) -> str:
    """The traceback without the sandbox's own frames, at most ~8000 characters (the end kept)."""
    try:
        info = traceback.TracebackException.from_exception(exc)
        here = os.path.dirname(os.path.abspath(__file__))
        internal = {os.path.join(here, "_forkserver.py"), os.path.join(here, "sandbox.py")}
        info.stack = traceback.StackSummary.from_list([f for f in info.stack if f.filename not in internal])
        text = "".join(info.format())
    except BaseException:
        text = f"{type(exc).__name__} (its traceback could not be formatted)"
    return text if len(text) <= 8000 else "...\n" + text[-8000:]


class _CallUnpickler(pickle.Unpickler):
    """Unpickles the trusted side's (fn, args); loads modules by file path when not importable by name."""

    def __init__(self, blob: bytes, module_files: dict[str, str]) -> None:
        super().__init__(io.BytesIO(blob))
        self._files = module_files

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            _import_file(_MAIN_ALIAS, self._files.get("__main__"))
            module = _MAIN_ALIAS
        elif module in self._files and module not in sys.modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if not exc.name or not (module == exc.name or module.startswith(exc.name + ".")):
                    raise
                _import_file(module, self._files[module])
        return super().find_class(module, name)


def _import_file(name: str, path: str | None) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path) if path else None
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot load module {name!r} from file {path!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


if __name__ == "__main__":
    main()
