"""The jail of one sandboxed call: its own PID, IPC and mount namespaces, an unprivileged uid, seccomp, size limits.

`confinement.py` gives each fork server a user and network namespace and each child a Landlock
domain; this module adds, per call, what those leave open (applied by `_forkserver.py`):

- **Processes** (`CallNamespaces`): the call runs in a new PID namespace whose PID 1 is a sleeping init;
  when the call ends that init is killed and the kernel kills every process the call started,
  whatever session or parent it chose. `SandboxConfig.max_tasks` (`RLIMIT_NPROC`) stops fork bombs.
- **IPC**: a new IPC namespace per call, so System V objects and POSIX message queues die with it.
- **Disk**: a private mount namespace in which the call's working and temp directories are
  size-limited tmpfs mounts (the call's files are copied in); every file it writes anywhere, its
  stdout and stderr included, stops growing at `SandboxConfig.file_mb` (`RLIMIT_FSIZE`).
- **Identity** (`drop_privileges`): candidate code runs as `CANDIDATE_ID` when the engine is root (the
  fork server's user namespace maps it), so it owns no file of the host; it keeps only the
  capabilities to read and write root's files that Landlock lets it reach (DAC override, inside its
  user namespace). Under a non-root engine it keeps that user's uid and no capability at all.
- **System calls** (`install_seccomp`, a classic BPF filter assembled here; no library needed):
  chmod, chown, utime(n)sat and the *xattr writers fail with EPERM; so do `socket(AF_UNIX, ...)`
  (no connect, bind or sendto on a pathname socket: Landlock does not cover them) and datagram
  `socketpair`s (stream and seqpacket pairs, which cannot address anyone else, still work);
  io_uring (which would run those operations without the syscalls) and foreign-ABI syscalls fail too.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import platform
import resource
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from .confinement import CANDIDATE_ID

__all__ = ["CANDIDATE_ID", "CallNamespaces", "drop_privileges", "end_init", "enter_call_namespaces", "host_pid",
           "install_seccomp", "limit_resources", "mount_private_tmpfs", "probe", "seccomp_program",
           "seccomp_supported"]

_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_PR_SET_KEEPCAPS, _PR_CAPBSET_DROP, _PR_SET_SECCOMP, _PR_CAP_AMBIENT = 8, 24, 22, 47
_PR_CAP_AMBIENT_RAISE, _SECCOMP_MODE_FILTER = 2, 2
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_CAP_VERSION_3 = 0x20080522


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


# ---------------------------------------------------------------------------------------------
# What this machine gives.


def probe(candidate_uid: int | None, *, user_namespace: bool, server_namespaces: str | None) -> dict[str, Any]:
    """What `jail` can give each call on this machine, tried once in a throwaway child at start.

    `candidate_uid` is `CANDIDATE_ID` when the server's user namespace maps it (a root engine), else None;
    `server_namespaces` is None when the server is PID 1 of namespaces of its own, else why not.
    Keys: "call_namespaces", "private_disk", "seccomp" (None, or why not), "switch_uid" (the uid each
    call switches to, or None to keep the server's), "candidate_uid" (the uid candidate code runs as,
    as the host sees it) and "tasks_limited" (RLIMIT_NPROC counts only this server's namespace, so
    it can be a per-call limit).
    """
    folder = tempfile.mkdtemp(prefix="jail-probe-", dir=os.getcwd())
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            os.write(report_w, json.dumps(_try_jail(folder, candidate_uid, server_namespaces)).encode())
        finally:
            os._exit(0)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        report: dict[str, Any] = json.loads(text)
    except ValueError:
        report = dict.fromkeys(("call_namespaces", "private_disk", "seccomp"), "the probe died")
    switched = candidate_uid is not None and report.pop("switched", False)
    return {**report, "switch_uid": candidate_uid if switched else None,
            "candidate_uid": candidate_uid if switched else os.getuid(), "tasks_limited": user_namespace}


def _try_jail(folder: str, candidate_uid: int | None, server_namespaces: str | None) -> dict[str, Any]:
    report: dict[str, Any] = {"call_namespaces": server_namespaces, "private_disk": server_namespaces}
    if server_namespaces is None:
        try:
            namespaces = CallNamespaces()
            init = namespaces.enter([], close=())
            namespaces.leave()
            end_init(init)
        except OSError as exc:
            report["call_namespaces"] = report["private_disk"] = str(exc)
    if report["call_namespaces"] is None:
        try:  # (this throwaway child stays in them)
            end_init(namespaces.enter([(folder, 1 << 20, candidate_uid)], close=()))
        except OSError as exc:
            report["private_disk"] = str(exc)
    try:
        drop_privileges(candidate_uid)
        report["switched"] = candidate_uid is not None and os.getuid() == candidate_uid
    except OSError:
        report["switched"] = False  # the calls keep the server's uid (Confinement says so if it is root)
    report["seccomp"] = _try_seccomp(folder)
    return report


def _try_seccomp(probe: str) -> str | None:
    if not seccomp_supported():
        return f"no filter for {sys.platform} {os.uname().machine}"
    try:
        _libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, as restrict_self sets it
        install_seccomp()
    except OSError as exc:
        return str(exc)
    try:
        os.chmod(probe, 0o700)
    except PermissionError:
        return None
    return "the filter did not refuse chmod"


# ---------------------------------------------------------------------------------------------
# The call's processes.


class CallNamespaces:
    """Gives the fork server's next child new PID, IPC (and mount) namespaces, then returns the server to its own.

    The server is PID 1 of namespaces its user namespace owns (`confinement.become_pid_namespace_init`),
    so it may unshare before each call's fork and `setns` back after it. `enter` unshares, spawns a
    sleeping init as PID 1 of the call's PID namespace (posix_spawn: no copy of the server's memory)
    and mounts the call's tmpfs folders; the server then forks the call (PID 2: signals it sends
    itself work as usual) and calls `leave`. When the call ends the server kills the init, and the
    kernel kills every process left in the namespace before the init's death is reported.
    """

    _KINDS = (("pid", _CLONE_NEWPID), ("ipc", _CLONE_NEWIPC), ("mnt", _CLONE_NEWNS))

    def __init__(self) -> None:
        self._own = [(os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
                     for name, flag in self._KINDS]
        self._cwd = os.getcwd()

    def enter(self, tmpfs: Sequence[tuple[str, int, int | None]], *, close: Sequence[int]) -> int:
        """New namespaces for the next child, with `tmpfs` ((folder, bytes, owner uid or None) each) mounted;
        returns the init's pid. Raises OSError (the server is back in its own namespaces then)."""
        error = enter_call_namespaces(mounts=True)
        if error is not None:
            self.leave()
            raise OSError(f"the call's namespaces: {error}")
        init = None
        try:
            init = _start_init(close)
            for folder, size_bytes, owner in tmpfs:
                mount_private_tmpfs(folder, size_bytes, owner)
        except BaseException:
            if init is not None:
                end_init(init)
            self.leave()
            raise
        return init

    def leave(self) -> None:
        """Back in the server's own namespaces (its next child is its own again)."""
        for fd, flag in self._own:
            if _libc().setns(fd, flag) != 0:
                raise _fail(f"setns back to the fork server's namespace ({flag:#x})")
        os.chdir(self._cwd)  # entering a mount namespace moves to its root


def end_init(init: int) -> None:
    """Kills a call's init and waits: when this returns, no process of its namespace is left."""
    try:
        os.kill(init, signal.SIGKILL)
        os.waitpid(init, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def host_pid(child: int) -> int | None:
    """The pid the host gives our child `child` (a fork server in its own PID namespace sees another number)."""
    try:
        own = os.readlink("/proc/self")  # /proc is the host's: it answers in host pids
        for pid in open(f"/proc/{own}/task/{own}/children").read().split():
            with open(f"/proc/{pid}/status") as f:
                ids = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
            if len(ids) >= 2 and int(ids[1]) == child:
                return int(pid)
    except (OSError, ValueError):
        pass
    return None


def _start_init(close: Sequence[int]) -> int:
    """PID 1 of the new namespace: `sleep infinity` (its zombies die with the namespace), spawned without
    copying this process; a forked copy that sleeps where there is no `sleep`."""
    sleep = shutil.which("sleep", path=os.defpath + ":/usr/bin:/bin")
    if sleep is not None:
        actions = [(os.POSIX_SPAWN_CLOSE, fd) for fd in close]
        return os.posix_spawn(sleep, [sleep, "infinity"], {}, file_actions=actions)
    pid = os.fork()
    if pid == 0:
        while True:
            signal.pause()
    return pid


# ---------------------------------------------------------------------------------------------
# Namespaces and mounts.


def enter_call_namespaces(*, mounts: bool) -> str | None:
    """In the process that will fork the call's init: new PID and IPC (and mount) namespaces; None, or why not.

    Needs CAP_SYS_ADMIN in the fork server's user namespace (which the server's own namespace gives).
    The calling process stays in its PID namespace; its next child is PID 1 of the new one.
    """
    flags = _CLONE_NEWPID | _CLONE_NEWIPC | (_CLONE_NEWNS if mounts else 0)
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        return f"unshare(CLONE_NEWPID | CLONE_NEWIPC{' | CLONE_NEWNS' if mounts else ''}) failed: " \
               f"{os.strerror(ctypes.get_errno())}"
    if mounts:  # nothing mounted here may reach the host's mount table
        if _libc().mount(b"none", b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None) != 0:
            return f"making the mounts private failed: {os.strerror(ctypes.get_errno())}"
    return None


def mount_private_tmpfs(folder: str, size_bytes: int, owner: int | None) -> None:
    """Mounts a tmpfs of `size_bytes` over `folder` (in this mount namespace) holding a copy of its files.

    `owner` (a uid, also used as gid) owns the new root and the copies; None keeps ours.
    """
    old = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # still reaches the files under the mount
    try:
        ids = "" if owner is None else f",uid={owner},gid={owner}"
        options = f"size={size_bytes},mode=0700,nr_inodes=65536{ids}".encode()
        if _libc().mount(b"evoagent-call", folder.encode(), b"tmpfs",
                         ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), options) != 0:
            raise _fail(f"mount tmpfs on {folder}")
        _copy_tree(old, folder, owner)
    finally:
        os.close(old)


def _copy_tree(source_fd: int, target: str, owner: int | None) -> None:
    for parent, dirs, files, parent_fd in os.fwalk(".", dir_fd=source_fd):
        here = os.path.normpath(os.path.join(target, parent))
        for name in dirs:
            os.mkdir(os.path.join(here, name), 0o700)
            _own(os.path.join(here, name), owner)
        for name in files:
            try:
                src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            except OSError:  # a symlink or a special file: the call's files are regular files
                continue
            with os.fdopen(src, "rb") as reader, open(os.path.join(here, name), "xb") as writer:
                while chunk := reader.read(1 << 20):
                    writer.write(chunk)
                os.fchmod(writer.fileno(), os.fstat(src).st_mode & 0o777)  # (the init is not under seccomp)
            _own(os.path.join(here, name), owner)


def _own(path: str, owner: int | None) -> None:
    if owner is not None:
        os.chown(path, owner, owner)


# ---------------------------------------------------------------------------------------------
# Identity and limits.


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def drop_privileges(uid: int | None) -> None:
    """Becomes `uid` (None: stay) with only the DAC capabilities when it changes uid, none otherwise.

    The capabilities kept are raised as ambient ones so that tools the call runs (compilers) keep
    them; they count only inside the fork server's user namespace, for files of the ids it maps.
    Raises OSError if the kernel refuses (the call is then a harness error, never run with more).
    """
    libc = _libc()
    keep = (1 << _CAP_DAC_OVERRIDE | 1 << _CAP_DAC_READ_SEARCH) if uid is not None else 0
    for cap in range(_last_cap() + 1):
        if not keep >> cap & 1 and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 \
                and ctypes.get_errno() not in (errno.EINVAL, errno.EPERM):  # EPERM: we hold no capability
            raise _fail(f"prctl(PR_CAPBSET_DROP, {cap})")
    if uid is not None:
        os.setgroups([])
        if libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            raise _fail("prctl(PR_SET_KEEPCAPS)")
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(keep, keep, keep), _CapData(0, 0, 0))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if keep >> cap & 1 and libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0:
            raise _fail(f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")


def limit_resources(*, file_bytes: int, tasks: int | None) -> None:
    """Caps every file the call writes at `file_bytes` (writes past it fail with EFBIG) and its tasks.

    `tasks` (None: no limit) counts the uid's processes and threads in the caller's user namespace, so
    it is a per-call limit only where the fork server has its own (`Confinement.network_namespace`).
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    if tasks is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))


# ---------------------------------------------------------------------------------------------
# seccomp: a classic BPF program over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];}.

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_COMMON = {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "fchmodat2": 452,
           "setxattrat": 463, "removexattrat": 466}
_REFUSED = {
    "x86_64": {"chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94, "utime": 132, "utimes": 235,
               "fchownat": 260, "futimesat": 261, "fchmodat": 268, "utimensat": 280, "setxattr": 188,
               "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
               **_COMMON},
    "aarch64": {"setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
                "fremovexattr": 16, "fchmod": 52, "fchmodat": 53, "fchownat": 54, "fchown": 55, "utimensat": 88,
                **_COMMON},
}
_SOCKET = {"x86_64": (41, 53), "aarch64": (198, 199)}  # socket, socketpair
_AF_UNIX, _SOCK_STREAM, _SOCK_SEQPACKET = 1, 1, 5
_X32_BIT = 0x40000000
_LD_W_ABS, _JEQ, _JGE, _AND, _RET = 0x20, 0x15, 0x35, 0x54, 0x06
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
_NR, _ARCH_OFFSET, _ARG0, _ARG1 = 0, 4, 16, 24  # low 32 bits of args[i] (little-endian)


def seccomp_supported() -> bool:
    """Whether this machine's ABI has a filter here (x86_64 or aarch64 Linux)."""
    return sys.platform.startswith("linux") and platform.machine() in _AUDIT_ARCH


def seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps resolved from the labels below."""
    refused, (socket_nr, socketpair_nr) = _REFUSED[machine], _SOCKET[machine]
    # (code, true label, false label, k); label None: next instruction.
    code: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _ARCH_OFFSET), (_JEQ, None, "deny", _AUDIT_ARCH[machine]),
        (_LD_W_ABS, None, None, _NR),
    ]
    if machine == "x86_64":  # the x32 ABI numbers syscalls from 0x40000000
        code.append((_JGE, "deny", None, _X32_BIT))
    code += [(_JEQ, "deny", None, nr) for nr in sorted(refused.values())]
    code += [(_JEQ, "socket", None, socket_nr), (_JEQ, "socketpair", None, socketpair_nr),
             (_RET, None, None, _ALLOW)]
    labels = {"socket": len(code)}
    code += [(_LD_W_ABS, None, None, _ARG0), (_JEQ, "deny", "allow", _AF_UNIX)]
    labels["socketpair"] = len(code)
    code += [(_LD_W_ABS, None, None, _ARG0), (_JEQ, None, "allow", _AF_UNIX),
             (_LD_W_ABS, None, None, _ARG1), (_AND, None, None, 0xF),  # the type, without NONBLOCK/CLOEXEC
             (_JEQ, "allow", None, _SOCK_STREAM), (_JEQ, "allow", "deny", _SOCK_SEQPACKET)]
    labels["allow"] = len(code)
    code.append((_RET, None, None, _ALLOW))
    labels["deny"] = len(code)
    code.append((_RET, None, None, _DENY))
    return [(op, _jump(labels, here, jt), _jump(labels, here, jf), k) for here, (op, jt, jf, k) in enumerate(code)]


def _jump(labels: dict[str, int], here: int, label: str | None) -> int:
    offset = 0 if label is None else labels[label] - here - 1
    assert 0 <= offset < 256  # Check internal correctness.
    return offset


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(instructions: Iterable[tuple[int, int, int, int]] | None = None) -> None:
    """Installs the filter on this thread (the call's single thread; its children inherit it).

    Needs no_new_privs (set by `confinement.restrict_self`). Raises OSError if the kernel refuses.
    """
    program = list(seccomp_program(platform.machine()) if instructions is None else instructions)
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    if _libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise _fail("prctl(PR_SET_SECCOMP)")
