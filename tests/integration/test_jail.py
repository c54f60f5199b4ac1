"""The jail of each call (jail.py), probed as a determined candidate would, with the real kernel.

One test per escape class. Each runs its probe confined and unconfined: the unconfined control shows
the probe works (so the test fails if the jail stops working), the confined run shows it fails, the
call is labelled, the next call runs, and nothing is left behind.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import socket
import tempfile
import time
from pathlib import Path

import jail_probes as probes
import pytest
import sandbox_helpers as helpers

from evoagent import confinement
from evoagent.result import Status
from evoagent.sandbox import Sandbox, SandboxConfig

LIMITS = {"disk_mb": 8, "file_mb": 4, "max_tasks": 64}


@pytest.fixture(scope="module", params=[True, False], ids=["confined", "unconfined"])
def sb(request: pytest.FixtureRequest):
    with Sandbox(SandboxConfig(workers=1, preload=(), timeout_s=60.0, confine=request.param, **LIMITS)) as sandbox:
        level = sandbox.confinement
        if request.param and not (level.landlock_abi and level.call_namespaces and level.private_disk
                                  and level.seccomp):
            pytest.skip(f"this machine lacks part of the jail: {level.describe()}")
        yield sandbox


@pytest.fixture
def outside() -> Path:
    """A folder outside every call's reach."""
    folder = Path(tempfile.mkdtemp(prefix="evoagent-jail-"))  # short: a socket path has at most 107 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _refused(out, *words: str) -> bool:
    return out.status is Status.CRASH and any(word in out.reason for word in words)


def _goes_on_and_leaves_nothing(sb: Sandbox) -> None:
    """The next call works, and the sandbox's folder holds no call's files any more."""
    assert sb.call(helpers.add, 1, 2).value == 3
    leftovers = [p for p in Path(sb._root).iterdir() if p.name.startswith("call-")]
    assert leftovers == []


def test_pathname_unix_sockets_cannot_be_reached_or_offered(sb: Sandbox, outside: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as service, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        service.bind(str(outside / "daemon.sock"))
        service.listen()
        log.bind(str(outside / "log.sock"))
        service.setblocking(False)
        log.setblocking(False)
        connected = sb.call(probes.unix_connect, str(outside / "daemon.sock"), b"hello")
        sent = sb.call(probes.unix_datagram_to, str(outside / "log.sock"), b"hello")
        bound = sb.call(probes.unix_bind, "service.sock")
        try:
            conn, _ = service.accept()  # the call has ended: a connection it made waits in the backlog
            conn.close()
            reached = True
        except BlockingIOError:
            reached = False
        try:
            logged = log.recv(100)
        except BlockingIOError:
            logged = b""
    if sb.config.confine:
        for out in (connected, sent, bound):
            assert _refused(out, "PermissionError"), out.reason
        assert not reached and logged == b""
    else:
        assert reached and logged == b"hello" and sent.value == 5 and bound.ok
    assert sb.call(probes.stream_socketpair_echo, b"pair").value == b"pair"  # what the sandbox itself needs
    _goes_on_and_leaves_nothing(sb)


def test_file_metadata_outside_cannot_be_changed(sb: Sandbox, outside: Path) -> None:
    target = outside / "system.conf"
    target.write_text("root's file")
    target.chmod(0o644)
    try:
        os.setxattr(target, "user.kept", b"1")
        xattrs = True
    except OSError:  # a file system without user xattrs
        xattrs = False
    before = target.stat()
    out = sb.call(probes.change_metadata, str(target))
    assert out.ok, out.reason
    names = ["chmod", "chown", "utime"] + (["setxattr", "removexattr"] if xattrs else [])
    if sb.config.confine:
        assert {name: out.value[name] for name in names} == dict.fromkeys(names, "PermissionError")
        after = target.stat()
        assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == \
               (before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)
        assert not xattrs or os.listxattr(target) == ["user.kept"]
    else:
        assert {name: out.value[name] for name in names} == dict.fromkeys(names, "ok")
        assert target.stat().st_mode & 0o777 == 0o777 and target.stat().st_uid == 12345
    _goes_on_and_leaves_nothing(sb)


def _host_sysv_keys() -> set[int]:
    keys = set()
    for table in ("shm", "msg"):
        lines = Path(f"/proc/sysvipc/{table}").read_text().splitlines()[1:]
        keys |= {int(line.split()[0]) for line in lines}
    return keys


def test_ipc_objects_die_with_the_call(sb: Sandbox) -> None:
    key = random.randrange(1 << 20, 1 << 30)
    created = sb.call(probes.create_sysv_objects, key, b"from candidate A")
    assert created.ok, created.reason
    seen = sb.call(probes.read_sysv_segment, key, 16)  # another candidate's call
    shm = sb.call(probes.posix_shared_memory, f"evoagent-jail-{key}")
    try:
        if sb.config.confine:
            assert seen.ok and seen.value is None
            assert key not in _host_sysv_keys()
            assert _refused(shm, "PermissionError"), shm.reason
            assert not Path(f"/dev/shm/evoagent-jail-{key}").exists()
        else:
            assert seen.value == b"from candidate A" and key in _host_sysv_keys()
            assert shm.ok and Path(f"/dev/shm/evoagent-jail-{key}").exists()
    finally:
        probes.remove_sysv_objects(key)
        Path(f"/dev/shm/evoagent-jail-{key}").unlink(missing_ok=True)
    _goes_on_and_leaves_nothing(sb)



def test_no_folder_is_writable_by_two_candidates(sb: Sandbox, tmp_path: Path) -> None:
    cache_a, cache_b = tmp_path / "compile" / "cand-a", tmp_path / "compile" / "cand-b"
    guesses = [str(Path(sb._root) / "cache"), str(Path(sb._root)), str(cache_b)]  # the old shared cache, ...
    planted = sb.call(probes.plant_everywhere, "from candidate A", guesses, write_paths=(cache_a,))
    assert planted.ok, planted.reason
    try:
        found = sb.call(probes.find_marker, sorted({*planted.value, *guesses} - {str(cache_a)}),
                        write_paths=(cache_b,))
        assert found.ok, found.reason
        if sb.config.confine:
            assert found.value == []
            assert all(p == str(cache_a) or "/call-" in p for p in planted.value)  # its own folders only
        else:
            assert "from candidate A" in found.value
    finally:
        for folder in guesses:
            Path(folder, "marker.txt").unlink(missing_ok=True)
    _goes_on_and_leaves_nothing(sb)


def _marked(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _kill_marked(marker: str) -> None:
    deadline = time.monotonic() + 60
    while (alive := _marked(marker)) and time.monotonic() < deadline:
        for pid in alive:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.01)
    assert not _marked(marker)


def test_processes_a_call_starts_end_with_it(sb: Sandbox) -> None:
    """A chain of processes each in a new session, nested deeper than the fork server's sweep reaches, and
    a self-renewing chain: confined, none survives the call; unconfined, the nested chain does."""
    marker = f"evoagent-chain-{random.randrange(1 << 30)}"
    try:
        out = sb.call(probes.nested_sessions, marker, 60)
        assert out.ok, out.reason
        renewing = sb.call(probes.start_renewing_chain, marker + "-renewing", 2000)
        assert renewing.ok, renewing.reason
        if sb.config.confine:  # the call's namespace ended before the call was reported
            assert _marked(marker) == []
        else:
            assert _marked(marker), "the unconfined control: the nested chain should outlive its call"
    finally:
        _kill_marked(marker)
    _goes_on_and_leaves_nothing(sb)



def test_a_call_cannot_start_more_tasks_than_its_limit(sb: Sandbox) -> None:
    out = sb.call(probes.start_threads, 200)
    assert out.ok, out.reason
    if sb.config.confine:
        assert out.value < LIMITS["max_tasks"]
    else:
        assert out.value == 200
    _goes_on_and_leaves_nothing(sb)


def test_disk_writes_stop_at_the_limits_while_written(sb: Sandbox) -> None:
    mib = 1 << 20
    big = sb.call(probes.write_file_of, "big.bin", 2 * LIMITS["file_mb"] * mib)
    many = sb.call(probes.write_files_of, "parts", 4, 3 * mib)  # 12 MiB in files under the per-file limit
    tmp = sb.call(probes.write_temp_files, 4, 3 * mib)
    printed = sb.call(probes.print_bytes, 2 * LIMITS["file_mb"] * mib)
    if sb.config.confine:
        assert _refused(big, "File too large"), big.reason
        assert _refused(many, "No space left on device"), many.reason
        assert _refused(tmp, "No space left on device"), tmp.reason
        assert _refused(printed, "File too large"), printed.reason
    else:
        assert big.value == 2 * LIMITS["file_mb"] * mib and many.value == 12 * mib and tmp.ok
        assert printed.value == 2 * LIMITS["file_mb"] * mib
    _goes_on_and_leaves_nothing(sb)



def test_a_call_runs_as_an_unprivileged_uid(sb: Sandbox) -> None:
    uid = sb.call(os.getuid).value
    if sb.config.confine:
        expected = confinement.CANDIDATE_ID if os.getuid() == 0 else os.getuid()
        assert uid == expected and sb.confinement.candidate_uid == expected
        assert ctypes.c_uint64(int(sb.call(probes.effective_caps).value, 16)).value & ~0b110 == 0
    else:
        assert uid == os.getuid()


def test_fifos_in_a_folder_given_to_the_call_still_work(sb: Sandbox, tmp_path: Path) -> None:
    """A driven call's channel: two named pipes the trusted side made (as root, 0600) in a folder given to the call."""
    channel = tmp_path / "channel"
    channel.mkdir()
    for name in ("to_child", "from_child"):
        os.mkfifo(channel / name, 0o600)
    to_child = os.open(channel / "to_child", os.O_RDWR | os.O_NONBLOCK)
    from_child = os.open(channel / "from_child", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(to_child, b"ping")
        out = sb.call(probes.fifo_round_trip, str(channel), b"ping", write_paths=(channel,))
        assert out.value == b"ping", out.reason
        assert os.read(from_child, 4) == b"gnip"
    finally:
        os.close(to_child)
        os.close(from_child)


def test_a_compiler_builds_and_loads_a_library_in_the_call(sb: Sandbox) -> None:
    """What Triton does for its launcher: cc and ld run in the jail (ld's chmod of its output is refused and ignored)."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    out = sb.call(probes.compile_and_load_c, "int answer(void) { return 42; }\n")
    assert out.value == 42, out.reason
