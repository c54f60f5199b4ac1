"""Confinement: what the operating system lets a sandboxed child do, whatever its Python code tries.

The sandbox (`sandbox.py`, `_forkserver.py`) limits time, memory and what comes back; this module
limits reach, with kernel mechanisms that a candidate cannot patch from inside its own process:

- **Files** (Landlock, any ABI): the child may read the Python installation, site-packages, the
  system's libraries and tools, the CUDA driver's files and the paths its evaluator declares; it may
  write only its private working directory, its private temp directory and the declared caches.
  The run directory, the user's home, the project checkout and the rest of `/tmp` are out of reach.
- **Other processes** (Landlock): a child cannot ptrace processes outside its domain, so it cannot
  read `/proc/<pid>/environ` or memory of the engine or its fork server; with ABI 6 it cannot signal
  them either, nor reach their abstract unix sockets. The engine itself is made non-dumpable.
- **Network**: each fork server (so every child) lives in a new user and network namespace with no
  interface up; with Landlock ABI 4 TCP bind and connect are denied as well.
- `no_new_privs` is set, so nothing the child executes gains privileges.

Where the kernel lacks a mechanism the sandbox runs with what it has; `Confinement` records what was
applied (the run stores it, `evoagent status` shows it) and the sandbox warns once, naming what is missing.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import site
import stat
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Confinement", "ConfinementWarning", "Reach", "cache_environment", "fork_server_command",
           "protect_trusted_process", "writable_dirs"]

# Linux syscall numbers (asm-generic; x86_64 and aarch64 share them) and constants from <linux/landlock.h>.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 4, 38
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
_PR_SET_PDEATHSIG, _MS_REC, _MS_PRIVATE = 1, 0x4000, 0x40000

_FS = {name: 1 << bit for bit, name in enumerate((
    "EXECUTE", "WRITE_FILE", "READ_FILE", "READ_DIR", "REMOVE_DIR", "REMOVE_FILE", "MAKE_CHAR", "MAKE_DIR",
    "MAKE_REG", "MAKE_SOCK", "MAKE_FIFO", "MAKE_BLOCK", "MAKE_SYM", "REFER", "TRUNCATE", "IOCTL_DEV"))}
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}  # ABI -> handled fs rights
_FILE_ONLY = _FS["EXECUTE"] | _FS["WRITE_FILE"] | _FS["READ_FILE"] | _FS["TRUNCATE"] | _FS["IOCTL_DEV"]
_READ = _FS["EXECUTE"] | _FS["READ_FILE"] | _FS["READ_DIR"]
_WRITE = _READ | _FS["WRITE_FILE"] | _FS["REMOVE_DIR"] | _FS["REMOVE_FILE"] | _FS["MAKE_DIR"] | _FS["MAKE_REG"] \
    | _FS["MAKE_SOCK"] | _FS["MAKE_FIFO"] | _FS["MAKE_SYM"] | _FS["REFER"] | _FS["TRUNCATE"]
_DEVICE = _FS["READ_FILE"] | _FS["WRITE_FILE"] | _FS["TRUNCATE"] | _FS["IOCTL_DEV"]
_NET_TCP = 1 | 2  # BIND_TCP | CONNECT_TCP (ABI 4)
_SCOPE_ALL = 1 | 2  # ABSTRACT_UNIX_SOCKET | SIGNAL (ABI 6)

# Read-only everywhere: system libraries and tools (compilers Triton calls), and the few files of /etc
# the loader and libc read. /proc/self resolves to the child itself when the child opens it.
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/sys", "/proc/self", "/proc/cpuinfo",
                "/proc/meminfo", "/proc/stat", "/proc/sys", "/proc/driver", "/etc/ld.so.cache", "/etc/ld.so.conf",
                "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                "/etc/alternatives", "/etc/os-release", "/etc/hosts")
_SYSTEM_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_GPU_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/dri/*")


class ConfinementWarning(UserWarning):
    """The kernel lacks a confinement mechanism; the sandbox runs with the ones it has."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@functools.cache
def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


@functools.cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        abi = _libc().syscall(ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def _handled_fs(abi: int) -> int:
    return next((mask for version, mask in sorted(_FS_BY_ABI.items(), reverse=True) if abi >= version), 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reach:
    """The paths one sandboxed call may use; its child opens them (so /proc/self is the child itself).

    Attributes:
        read: readable (and executable) files and directories.
        write: directories the call may create, change and remove files in.
        devices: device files it may open for reading, writing and ioctl (/dev/null, the GPU's).
    """

    read: tuple[str, ...]
    write: tuple[str, ...]
    devices: tuple[str, ...]

    def as_request(self) -> dict[str, list[str]]:
        return {"read": list(self.read), "write": list(self.write), "devices": list(self.devices)}

    @classmethod
    def for_call(cls, *, work: str, tmp: str, read: Iterable[str] = (), write: Iterable[str] = ()) -> Reach:
        """What every call gets (Python, site-packages, system, devices) plus its own dirs and `read`/`write`."""
        package = str(Path(__file__).resolve().parent)
        python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, package,
                  *site.getsitepackages(), site.getusersitepackages(), *_SYSTEM_READ, *read}
        devices = [*_SYSTEM_DEVICES, *(p for pattern in _GPU_DEVICE_GLOBS for p in sorted(glob.glob(pattern)))]
        return cls(read=tuple(sorted(python)), write=(work, tmp, *write), devices=tuple(devices))


@dataclass(frozen=True, slots=True, kw_only=True)
class Confinement:
    """What the operating system confines a sandboxed call with (recorded in the run).

    Attributes:
        enabled: confinement was asked for (SandboxConfig.confine).
        landlock_abi: the kernel's Landlock ABI (0: none): files and ptrace from 1, TCP from 4,
            signals and abstract sockets from 6.
        network_namespace: each fork server runs in its own user and network namespace.
        call_namespaces: each call runs in its own PID and IPC namespace (`jail.py`): ending it ends
            every process it started, and no IPC object survives it.
        private_disk: the call's working and temp directories are size-limited tmpfs mounts.
        seccomp: the seccomp filter refuses metadata syscalls and pathname Unix sockets.
        candidate_uid: the uid candidate code runs as (on the host); None when not known (off).
        missing: what a full confinement would add, one phrase each (empty when nothing is missing).
    """

    enabled: bool
    landlock_abi: int = 0
    network_namespace: bool = False
    call_namespaces: bool = False
    private_disk: bool = False
    seccomp: bool = False
    candidate_uid: int | None = None
    missing: tuple[str, ...] = ()

    @classmethod
    def measure(cls, *, enabled: bool, namespace_error: str | None,
                jail: Mapping[str, Any] | None = None) -> Confinement:
        """The level this kernel gives; `namespace_error` and `jail` are the fork server's report
        (None: it worked; `jail`: "call_namespaces", "private_disk", "seccomp" errors and "candidate_uid")."""
        if not enabled:
            return cls(enabled=False, missing=("all confinement (SandboxConfig.confine is off)",))
        jail = dict(jail or {"call_namespaces": "not reported", "private_disk": "not reported",
                             "seccomp": "not reported"})
        abi = landlock_abi()
        missing = []
        if abi < 1:
            missing.append("Landlock (files outside the call's directories and other processes stay reachable)")
        if namespace_error is not None:
            tcp = "TCP is still denied by Landlock" if abi >= 4 else "connections are possible"
            missing.append(f"a network namespace ({namespace_error}; {tcp})")
        if 1 <= abi < 6:
            missing.append(f"Landlock signal scoping (ABI 6; this kernel has ABI {abi}): "
                           "a call can signal processes of the same user")
        for key, text in _JAIL_PARTS.items():
            if jail.get(key) is not None:
                missing.append(text.format(jail[key]))
        uid = jail.get("candidate_uid")
        if uid == 0:
            missing.append("an unprivileged uid (candidate code runs as root mapped into its user namespace)")
        return cls(enabled=True, landlock_abi=abi, network_namespace=namespace_error is None,
                   call_namespaces=jail.get("call_namespaces") is None, private_disk=jail.get("private_disk") is None,
                   seccomp=jail.get("seccomp") is None, candidate_uid=uid if isinstance(uid, int) else None,
                   missing=tuple(missing))

    @property
    def level(self) -> str:
        """'full', 'partial' or 'off'."""
        if not self.enabled:
            return "off"
        return "partial" if self.missing else "full"

    def describe(self) -> str:
        """One line: the level and its mechanisms, or what is missing."""
        if not self.enabled:
            return "off (SandboxConfig.confine is false)"
        have = [f"Landlock ABI {self.landlock_abi}" if self.landlock_abi else "",
                "network namespace" if self.network_namespace else "",
                "PID and IPC namespace per call" if self.call_namespaces else "",
                "size-limited tmpfs" if self.private_disk else "", "seccomp" if self.seccomp else "",
                f"uid {self.candidate_uid}" if self.candidate_uid else "", "no_new_privs"]
        text = f"{self.level}: {', '.join(h for h in have if h)}"
        return text + (f"; missing {'; '.join(self.missing)}" if self.missing else "")

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "landlock_abi": self.landlock_abi,
                "network_namespace": self.network_namespace, "call_namespaces": self.call_namespaces,
                "private_disk": self.private_disk, "seccomp": self.seccomp, "candidate_uid": self.candidate_uid,
                "missing": list(self.missing), "description": self.describe()}

    def warn_if_partial(self) -> None:
        if self.enabled and self.missing:
            _warn_once(f"evoagent sandbox confinement is partial; missing: {'; '.join(self.missing)}")


_JAIL_PARTS = {
    "call_namespaces": "a PID and IPC namespace per call ({}): processes a call starts in a new session "
                       "can outlive it and System V IPC objects survive it",
    "private_disk": "size-limited tmpfs folders ({}): only the per-file size limit bounds a call's disk use",
    "seccomp": "a seccomp filter ({}): pathname Unix sockets, chmod, chown, utime and xattr writes stay open",
}


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        warnings.warn(text, ConfinementWarning, stacklevel=3)


def cache_environment(cache: Path, *, home: Path | None) -> dict[str, str]:
    """Variables that point the compilers' caches (Triton, torch inductor, CUDA) into the writable
    folder `cache`, and HOME (unless None) into the call's private temp directory."""
    return {"TRITON_CACHE_DIR": str(cache / "triton"), "TRITON_HOME": str(cache / "triton-home"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "CUDA_CACHE_PATH": str(cache / "cuda"),
            "XDG_CACHE_HOME": str(cache)} | ({} if home is None else {"HOME": str(home)})


def writable_dirs(paths: Iterable[str | os.PathLike[str]], what: str) -> tuple[str, ...]:
    """`paths` as absolute directories, created if missing (a Landlock rule needs the path to exist)."""
    if isinstance(paths, (str, os.PathLike)) or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise TypeError(f"{what} must be a sequence of absolute directory paths (got {paths!r})")
    dirs = tuple(os.fspath(p) for p in paths)
    relative = [d for d in dirs if not os.path.isabs(d)]
    if relative:
        raise ValueError(f"{what} must hold absolute paths (got {relative[0]!r})")
    for folder in dirs:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return dirs


def protect_trusted_process() -> None:
    """Makes this (the engine's) process non-dumpable: same-user processes cannot ptrace it or read its /proc."""
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# Starts a fork server in its own namespaces: unshare() refuses a process with threads, and importing
# the evoagent package starts some (numpy's), so this file is loaded alone, by path, before anything.
_BOOT = """import importlib.util, os, runpy, sys
spec = importlib.util.spec_from_file_location("_evoagent_confinement_boot", sys.argv.pop(1))
module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
os.environ["EVOAGENT_NAMESPACE_ERROR"] = module.enter_network_namespace() or ""
if not os.environ["EVOAGENT_NAMESPACE_ERROR"]:
    module.become_pid_namespace_init()  # from here: the fork server, in PID, IPC and mount namespaces of its own
runpy.run_module("evoagent._forkserver", run_name="__main__", alter_sys=True)
"""
NAMESPACE_REPORT = "EVOAGENT_NAMESPACE_ERROR"  # set by _BOOT for the fork server: "" or why it failed
CANDIDATE_UID_REPORT = "EVOAGENT_CANDIDATE_UID"  # set by enter_network_namespace: "" or the mapped CANDIDATE_ID
SERVER_NAMESPACES_REPORT = "EVOAGENT_SERVER_NAMESPACES"  # set by become_pid_namespace_init: "" or why not
# The uid and gid candidate code runs as under a root engine (jail.py): unused on the host, so it owns nothing.
CANDIDATE_ID = 64000


def fork_server_command(*, confine: bool) -> list[str]:
    """The command line of a fork server (in its own user and network namespace when `confine`)."""
    if not confine:
        return [sys.executable, "-m", "evoagent._forkserver"]
    return [sys.executable, "-c", _BOOT, str(Path(__file__).resolve())]


def enter_network_namespace() -> str | None:
    """In a fork server, before it starts threads: a new user + network namespace; None, or why not.

    The user namespace maps only our own uid and gid, so a root engine's children lose root's
    capabilities outside it, and an unprivileged user may create the network namespace. Under a root
    engine a helper process left outside maps `CANDIDATE_ID` as well (only a process privileged in
    the parent namespace may map a second id), so that candidate code can run as a uid that owns
    no file of the host; `CANDIDATE_UID_REPORT` says whether it did.
    """
    os.environ[CANDIDATE_UID_REPORT] = ""
    if not sys.platform.startswith("linux"):
        return f"not available on {sys.platform}"
    uid, gid = os.getuid(), os.getgid()
    helper = _start_id_mapper() if uid == 0 and gid == 0 else None
    if _libc().unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNET)) != 0:
        errno = ctypes.get_errno()
        if helper is not None:
            _finish_id_mapper(helper, go=False)
        return f"unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {os.strerror(errno)}"
    if helper is not None and _finish_id_mapper(helper, go=True):
        os.environ[CANDIDATE_UID_REPORT] = str(CANDIDATE_ID)
        return None
    try:
        for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as exc:
        return f"mapping ids in the new user namespace failed: {exc.strerror}"
    return None


def become_pid_namespace_init() -> None:
    """In the boot, after `enter_network_namespace`: the fork server becomes PID 1 of PID, IPC and mount
    namespaces owned by its user namespace, so that it may give each call namespaces of its own and
    return to its own after each fork (`jail.CallNamespaces`); `SERVER_NAMESPACES_REPORT` says if not.

    Returns in the new server only. The boot process stays outside as its parent: it passes SIGTERM on,
    waits and exits with the server's status; the server dies with it (PR_SET_PDEATHSIG).
    """
    import signal

    if _libc().unshare(ctypes.c_int(_CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWNS)) != 0:
        os.environ[SERVER_NAMESPACES_REPORT] = f"unshare(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS) failed: " \
                                               f"{os.strerror(ctypes.get_errno())}"
        return
    server = os.fork()
    if server == 0:
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        private = _libc().mount(b"none", b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None) == 0
        os.environ[SERVER_NAMESPACES_REPORT] = "" if private else "making the server's mounts private failed"
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # the pipes to the engine belong to the server alone
        os.dup2(devnull, fd)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(server, signal.SIGTERM))
    code = os.waitstatus_to_exitcode(os.waitpid(server, 0)[1])
    os._exit(code if code >= 0 else 128 - code)


def _start_id_mapper() -> tuple[int, int]:
    """Forks a helper that stays in the parent user namespace to write our id maps once we unshared."""
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(go_w)
            if os.read(go_r, 1) == b"y":
                target = os.getppid()
                for name in ("uid_map", "gid_map"):  # root stays root; CANDIDATE_ID is the candidates' id
                    with open(f"/proc/{target}/{name}", "w") as f:
                        f.write(f"0 0 1\n{CANDIDATE_ID} {CANDIDATE_ID} 1\n")
                code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    return pid, go_w


def _finish_id_mapper(helper: tuple[int, int], *, go: bool) -> bool:
    pid, go_w = helper
    os.write(go_w, b"y" if go else b"n")
    os.close(go_w)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def restrict_self(reach: dict[str, Sequence[str]]) -> None:
    """In a sandboxed child, before candidate code runs: no_new_privs, then the Landlock domain.

    `reach` is `Reach.as_request()`. Paths that do not exist are skipped. Raises OSError when the
    kernel has Landlock but refuses the rules (the call is then a harness error, never unconfined).
    """
    libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    abi = landlock_abi()
    if abi < 1:
        return
    handled = _handled_fs(abi)
    attr = _RulesetAttr(handled_access_fs=handled, handled_access_net=_NET_TCP if abi >= 4 else 0,
                        scoped=_SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for key, access in (("read", _READ), ("write", _WRITE), ("devices", _DEVICE)):
            for path in reach[key]:
                _add_path_rule(ruleset, path, access & handled)
        _check(libc.syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _add_path_rule(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this system (e.g. /lib64 on aarch64)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_ONLY  # directory rights are refused on a file
        rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        _check(_libc().syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                               ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path!r})")
    finally:
        os.close(fd)
