"""Escape probes a determined candidate would try, run in sandboxed children by test_jail.py."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_IPC_CREAT, _IPC_RMID = 0o1000, 0


def unix_connect(path: str, message: bytes) -> str:
    """Connects to the pathname Unix socket `path`, sends `message`, returns the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(message)
        return sock.recv(100).decode()


def unix_bind(path: str) -> str:
    """Binds a pathname Unix socket at `path` (a service others could connect to)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    return path


def unix_datagram_to(path: str, message: bytes) -> int:
    """Sends `message` to the pathname datagram socket `path` from an unnamed socket pair (no connect, no bind)."""
    ours, _ = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return ours.sendto(message, path)


def stream_socketpair_echo(message: bytes) -> bytes:
    """What the sandbox and Python's own machinery use: a connected pair, never a path."""
    a, b = socket.socketpair()
    a.sendall(message)
    return b.recv(100)


def change_metadata(path: str) -> dict[str, str]:
    """chmod, chown, utime and setxattr on `path`; each outcome by name ("ok" or the error)."""
    attempts = {
        "chmod": lambda: os.chmod(path, 0o777),
        "chown": lambda: os.chown(path, 12345, 12345),
        "utime": lambda: os.utime(path, (0, 0)),
        "setxattr": lambda: os.setxattr(path, "user.planted", b"x"),
        "removexattr": lambda: os.removexattr(path, "user.kept"),
    }
    outcome = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            outcome[name] = "ok"
        except OSError as exc:
            outcome[name] = type(exc).__name__
    return outcome


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def create_sysv_objects(key: int, marker: bytes) -> dict[str, int]:
    """Creates a System V shared memory segment holding `marker`, and a message queue, both under `key`."""
    libc = _libc()
    libc.shmat.restype = ctypes.c_void_p
    shm = libc.shmget(key, 4096, _IPC_CREAT | 0o666)
    if shm < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    address = libc.shmat(shm, None, 0)
    ctypes.memmove(address, marker, len(marker))
    libc.shmdt(ctypes.c_void_p(address))
    queue = libc.msgget(key, _IPC_CREAT | 0o666)
    if queue < 0:
        raise OSError(ctypes.get_errno(), "msgget")
    return {"shm": shm, "queue": queue}


def read_sysv_segment(key: int, size: int) -> bytes | None:
    """The first `size` bytes of the segment under `key`, or None when there is none."""
    libc = _libc()
    libc.shmat.restype = ctypes.c_void_p
    shm = libc.shmget(key, 0, 0)
    if shm < 0:
        return None
    address = libc.shmat(shm, None, 0)
    data = ctypes.string_at(address, size)
    libc.shmdt(ctypes.c_void_p(address))
    return data


def remove_sysv_objects(key: int) -> None:
    libc = _libc()
    for get, ctl in ((libc.shmget, libc.shmctl), (libc.msgget, libc.msgctl)):
        ident = get(key, 0, 0)
        if ident >= 0:
            ctl(ident, _IPC_RMID, None)


def plant_everywhere(marker: str, guesses: list[str]) -> list[str]:
    """Writes `marker` into every folder this call may write that it can find, and into `guesses`."""
    places = [os.getcwd(), *(os.environ.get(name, "") for name in (
        "TMPDIR", "HOME", "TRITON_CACHE_DIR", "XDG_CACHE_HOME", "CUDA_CACHE_PATH", "TORCHINDUCTOR_CACHE_DIR")),
        *guesses]
    planted = []
    for folder in filter(None, places):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "marker.txt").write_text(marker)
            planted.append(folder)
        except OSError:
            pass
    return planted


def find_marker(places: list[str]) -> list[str]:
    """The folders of `places` holding a marker.txt this call can read."""
    found = []
    for folder in places:
        try:
            found.append((Path(folder) / "marker.txt").read_text())
        except OSError:
            pass
    return found


_CHAIN = """
import os, sys, time
generations, marker = int(sys.argv[1]), sys.argv[2]
for _ in range(generations):
    if os.fork():
        os._exit(0)  # the parent dies at once: the chain lives on in its child, in a new session
    os.setsid()
    time.sleep(0.05)
"""


def start_renewing_chain(marker: str, generations: int) -> int:
    """Starts a chain of processes that each fork a successor into a new session and die; returns at once."""
    process = subprocess.Popen([sys.executable, "-c", _CHAIN, str(generations), marker], start_new_session=True)
    return process.pid


def start_threads(n: int) -> int:
    """Starts `n` idle threads (each a task for RLIMIT_NPROC); how many started."""
    threading.stack_size(64 * 1024)
    stop, started = threading.Event(), []
    try:
        for _ in range(n):
            thread = threading.Thread(target=stop.wait, daemon=True)
            thread.start()
            started.append(thread)
    except RuntimeError:
        pass
    finally:
        stop.set()
    return len(started)


def write_file_of(path: str, n_bytes: int) -> int:
    """Writes `n_bytes` into one file at `path` (relative: in the call's working directory); bytes written."""
    chunk, written = b"x" * (1 << 20), 0
    with open(path, "wb", buffering=0) as f:
        while written < n_bytes:
            written += f.write(chunk[: n_bytes - written])
    return written


def write_files_of(folder: str, count: int, n_bytes: int) -> int:
    """Writes `count` files of `n_bytes` each under `folder`; bytes written before the first failure."""
    total = 0
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        total += write_file_of(os.path.join(folder, f"part{i}"), n_bytes)
    return total


def print_bytes(n_bytes: int) -> int:
    """Writes `n_bytes` to stdout (not read back in full, but once written to disk without bound)."""
    chunk, written = b"o" * (1 << 20), 0
    while written < n_bytes:
        written += os.write(1, chunk[: n_bytes - written])
    return written


def posix_shared_memory(name: str) -> str:
    """Creates a POSIX shared memory object (a file in /dev/shm) that outlives the call."""
    from multiprocessing import resource_tracker, shared_memory

    segment = shared_memory.SharedMemory(name=name, create=True, size=4096)
    resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]  # it outlives us
    return segment.name


def nested_sessions(marker: str, depth: int) -> int:
    """Starts `depth` processes, each the child of the one before and in a session of its own; returns once
    the deepest runs."""
    import subprocess
    import sys

    code = ("import os, sys, time\n"
            "depth, ready = int(sys.argv[1]), int(sys.argv[3])\n"
            "for level in range(depth):\n"
            "    if os.fork():\n"
            "        time.sleep(600)\n"
            "        os._exit(0)\n"
            "    os.setsid()\n"
            "os.write(ready, b'x')\n"
            "time.sleep(600)\n")
    ready_r, ready_w = os.pipe()
    subprocess.Popen([sys.executable, "-c", code, str(depth), marker, str(ready_w)], start_new_session=True,
                     pass_fds=(ready_w,))
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    return depth


def write_temp_files(count: int, n_bytes: int) -> int:
    """As write_files_of, in the call's temp directory."""
    import tempfile

    return write_files_of(os.path.join(tempfile.gettempdir(), "parts"), count, n_bytes)


def effective_caps() -> str:
    """This process's effective capabilities (hex), as /proc/self/status shows them."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return line.split()[1]
    return "ffffffffffffffff"


def fifo_round_trip(folder: str, message: bytes) -> bytes:
    """Reads a request from the FIFO `folder`/to_child and answers it on `folder`/from_child (as a driven call does)."""
    with open(os.path.join(folder, "to_child"), "rb", buffering=0) as requests:
        request = requests.read(len(message))
    with open(os.path.join(folder, "from_child"), "wb", buffering=0) as replies:
        replies.write(request[::-1])
    return request


def compile_and_load_c(source: str) -> int:
    """Builds a shared library with the system compiler in the call's temp directory (as Triton builds its
    launcher) and calls it."""
    import tempfile

    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "answer.c"), "w") as f:
        f.write(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(folder, "answer.so"), os.path.join(folder, "answer.c")],
                   check=True, capture_output=True)
    return int(ctypes.CDLL(os.path.join(folder, "answer.so")).answer())
