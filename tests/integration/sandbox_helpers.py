"""Module-level functions that the sandbox integration tests run in sandboxed children."""

from __future__ import annotations

import importlib
import mmap
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def echo(value: Any) -> Any:
    return value


def apply(fn: Any, *args: Any) -> Any:
    return fn(*args)


def add(a: int, b: int) -> int:
    return a + b


def _host_stat() -> list[str]:
    """This process's /proc/self/stat after the command: state, ppid, pgrp, ...; /proc is the host's, so the
    numbers are the pids the test sees, even in a call with its own PID namespace."""
    return Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()


def host_pid() -> int:
    return int(Path("/proc/self/stat").read_text().split()[0])


def _host_child_pids() -> list[int]:
    """The host pids of this process's children (os.getpid() is PID-namespace-local in a jailed call)."""
    own = host_pid()
    return [int(p) for p in Path(f"/proc/self/task/{own}/children").read_text().split()]


def child_facts() -> dict[str, Any]:
    """pid, ppid and pgid as the host (the test) sees them; `ns_pid` as the call itself sees its pid."""
    stat = _host_stat()
    return {"pid": host_pid(), "ppid": int(stat[1]), "pgid": int(stat[2]), "ns_pid": os.getpid(),
            "cwd": os.getcwd(), "sys_path0": sys.path[0]}


def environment() -> dict[str, str]:
    return dict(os.environ)


def server_environment() -> str:
    """The environment of the child's parent (the fork server, or the keeper it forked for a jailed call)."""
    return Path(f"/proc/{_host_stat()[1]}/environ").read_bytes().decode(errors="replace")


def env_var(name: str) -> str | None:
    return os.environ.get(name)


def sleep_with_grandchild(pid_file: str, seconds: float) -> None:
    """Starts `sleep 100` in the same process group, records its pid, then hangs."""
    subprocess.Popen(["sleep", "100"])
    Path(pid_file).write_text(str(_host_child_pids()[-1]))
    time.sleep(seconds)


def escape_process_group(pid_file: str) -> int:
    """Starts `sleep 100` in a new session (out of reach of killpg) and returns at once."""
    subprocess.Popen(["sleep", "100"], start_new_session=True)
    escapee = _host_child_pids()[-1]
    Path(pid_file).write_text(str(escapee))
    return escapee


def sleep_then_report(seconds: float) -> tuple[float, float]:
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def raise_value_error() -> None:
    raise ValueError("the candidate is wrong on purpose")


def exit_early(code: int) -> None:
    print("about to exit", flush=True)
    os._exit(code)


def sys_exit(code: int) -> None:
    sys.exit(code)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def allocate_bytes(n: int) -> int:
    return len(bytearray(n))


def allocate_numpy(n: int) -> int:
    import numpy as np

    return int(np.ones(n, dtype=np.float64).size)


def reserve_address_space(n: int) -> int:
    """Maps `n` bytes without touching them: costs address space, not memory."""
    with mmap.mmap(-1, n) as region:
        return len(region)


def print_lots(n: int) -> None:
    sys.stdout.write("o" * n)
    sys.stderr.write("e" * n)


def print_fake_result() -> int:
    """Prints things that look like the sandbox's own messages, then returns 1."""
    from evoagent._codec import encode_value

    sys.stdout.buffer.write(encode_value({"kind": "ok", "value": 999}))
    print('\n{"exitcode": 0, "signal": null, "payload_len": 3, "value": 999}')
    print("RESULT: 999")
    return 1


def _pipes() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                fds.append(fd)
        except OSError:
            pass
    return fds


def forge_channel(value: int) -> int:
    """Writes a well-formed fake result into every pipe it holds (the result channel), then returns."""
    from evoagent._codec import encode_value

    for fd in _pipes():
        os.write(fd, encode_value({"kind": "ok", "value": 10**6}))
    return value


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def write_malicious_pickle(marker: str) -> None:
    """Writes a pickle that would run `touch marker` if unpickled, then exits without returning."""
    for fd in _pipes():
        os.write(fd, pickle.dumps(_Exploit(marker)))
    os._exit(0)


def kill_server() -> None:
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(10)


def import_candidate(module: str) -> dict[str, Any]:
    candidate = importlib.import_module(module)
    return {"answer": candidate.answer(), "data": Path("data/info.txt").read_text(),
            "listing": sorted(os.listdir("."))}


def return_object() -> object:
    return object()


def return_tensor() -> Any:
    import torch

    return torch.zeros(2)


def matmul_numpy(n: int) -> float:
    import numpy as np

    a = np.arange(n * n, dtype=np.float64).reshape(n, n)
    return float((a @ a).sum())


def score_answer(module: Any) -> dict[str, float]:
    """A FunctionEvaluator-style score function: the candidate must define answer() == 42."""
    if module.answer() != 42:
        raise ValueError(f"answer() returned {module.answer()}, expected 42")
    return {"answer": float(module.answer())}


def run_triton_add(n: int) -> Any:
    """Imports the call's `kern.py` (a Triton kernel) and adds two vectors with it."""
    import torch

    kern = importlib.import_module("kern")
    x = torch.arange(n, dtype=torch.float32)
    return kern.add(x, torch.ones(n)).numpy()


def write_file(path: str, text: str) -> str:
    Path(path).write_text(text)
    return path


def read_file(path: str) -> str:
    return Path(path).read_text()


def connect(port: int, message: bytes) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(message)
    return "connected"


def network_interfaces() -> list[str]:
    import socket

    return sorted(name for _, name in socket.if_nameindex())


def send_signal(pid: int, number: int) -> str:
    os.kill(pid, number)
    return "sent"


def write_under(variable: str) -> str:
    """Creates the folder named by an environment variable (if needed) and writes a file in it."""
    folder = Path(os.environ[variable])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe").write_text("x")
    return str(folder)


def append_after(hold_file: str, log_file: str, tag: str) -> str:
    """Waits while `hold_file` exists (the test holds the worker with it), then appends `tag` to `log_file`."""
    while os.path.exists(hold_file):
        time.sleep(0.01)
    with open(log_file, "a") as log:
        log.write(tag + "\n")
    return tag
