"""OS confinement of sandboxed calls (Landlock, namespaces): what a call can reach, with the real kernel.

Each denial has an unconfined control that shows the same call succeeds without confinement, so the
tests fail if the confinement stops working. Skipped where the kernel has no Landlock.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sandbox_helpers as helpers

from evoagent import confinement
from evoagent.result import Status
from evoagent.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.skipif(confinement.landlock_abi() < 1, reason="the kernel has no Landlock")
SECRET = "s3cret-value-for-confinement-tests"


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every call's reach, with a secret in it and a readable subfolder."""
    root = tmp_path_factory.mktemp("outside")
    (root / "secret.txt").write_text(SECRET)
    (root / "shared").mkdir()
    (root / "shared" / "data.txt").write_text("declared data")
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["confined", "unconfined"])
def sb(request: pytest.FixtureRequest, outside: Path):
    config = SandboxConfig(workers=1, preload=(), confine=request.param, read_paths=(outside / "shared",))
    with Sandbox(config) as sandbox:
        yield sandbox


def _denied(out, *words: str) -> bool:
    return out.status is Status.CRASH and any(w in out.reason for w in words)


def test_writes_outside_the_call_directories_fail(sb: Sandbox, outside: Path, tmp_path: Path) -> None:
    package_file = Path(confinement.__file__).with_name("planted.txt")  # not .py: a parallel test reading the package must never see it
    for target in (outside / "planted.txt", package_file):
        out = sb.call(helpers.write_file, str(target), "planted")
        if sb.config.confine:
            assert _denied(out, "PermissionError"), out.reason
            assert not target.exists()
        else:
            assert out.ok, out.reason
            target.unlink()


def test_own_directories_and_caches_stay_writable(sb: Sandbox) -> None:
    assert sb.call(helpers.write_file, "result.txt", "x").ok
    variables = ("TMPDIR", "TRITON_CACHE_DIR", "HOME", "CUDA_CACHE_PATH") if sb.config.confine else ("TMPDIR",)
    for variable in variables:
        out = sb.call(helpers.write_under, variable)
        assert out.ok, (variable, out.reason)


def test_a_folder_given_to_one_call_is_writable_by_that_call_only(sb: Sandbox, tmp_path: Path) -> None:
    mine = tmp_path / "caches" / "candidate-a"  # created by the call
    target = mine / "kernel.json"
    assert sb.call(helpers.write_file, str(target), "mine", write_paths=(mine,)).ok
    out = sb.call(helpers.write_file, str(target), "planted")  # another candidate's call, given no folder
    if sb.config.confine:
        assert _denied(out, "PermissionError"), out.reason
        assert target.read_text() == "mine"
    else:
        assert out.ok


def test_secrets_outside_cannot_be_read_and_declared_paths_can(sb: Sandbox, outside: Path) -> None:
    out = sb.call(helpers.read_file, str(outside / "secret.txt"))
    if sb.config.confine:
        assert _denied(out, "Permission denied") and SECRET not in out.reason + out.logs
    else:
        assert out.value == SECRET
    assert sb.call(helpers.read_file, str(outside / "shared" / "data.txt")).value == "declared data"


def test_the_engine_environment_cannot_be_read(sb: Sandbox) -> None:
    out = sb.call(helpers.read_file, f"/proc/{os.getpid()}/environ")
    if sb.config.confine:
        assert _denied(out, "Permission denied"), out.reason
    else:  # the engine is non-dumpable once a confined sandbox started in it; root may still read it
        assert out.status in (Status.OK, Status.CRASH)


def test_the_engine_cannot_be_signalled(sb: Sandbox) -> None:
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(True))
    try:
        out = sb.call(helpers.send_signal, os.getpid(), signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    if sb.config.confine:  # refused (Landlock), or not even visible from the call's PID namespace
        assert _denied(out, "Operation not permitted", "No such process") and not received
    else:
        assert out.ok and received


def test_no_connection_reaches_a_listener_on_localhost(sb: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        out = sb.call(helpers.connect, server.getsockname()[1], SECRET.encode())
        server.setblocking(False)
        try:
            conn, _ = server.accept()  # the call has ended: a connection it made waits in the backlog
            conn.close()
            connected = True
        except BlockingIOError:
            connected = False
    if sb.config.confine:
        assert _denied(out, "Permission denied", "unreachable") and not connected, out.reason
    else:
        assert out.ok and connected


def test_a_confined_call_sees_only_the_loopback_interface(sb: Sandbox) -> None:
    if not sb.config.confine or not sb.confinement.network_namespace:
        pytest.skip("no network namespace")
    assert sb.call(helpers.network_interfaces).value == ["lo"]


def test_the_confinement_level_is_reported(sb: Sandbox) -> None:
    level = sb.confinement
    assert level.level == ("off" if not sb.config.confine else "partial" if level.missing else "full")
    assert level.landlock_abi == (confinement.landlock_abi() if sb.config.confine else 0)


_PROBE = """
import importlib.util, os, socket, sys
spec = importlib.util.spec_from_file_location("confinement_probe", sys.argv[1])
c = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(c)
print("namespace", c.enter_network_namespace())
c.restrict_self(c.Reach.for_call(work=sys.argv[2], tmp=sys.argv[2]).as_request())
for attempt in (lambda: open(sys.argv[3]).read(), lambda: socket.create_connection(("127.0.0.1", 9), 5),
                lambda: os.kill(1, 0)):
    try:
        attempt()
        print("allowed")
    except OSError as exc:
        print("denied", exc.errno)
open(os.path.join(sys.argv[2], "ok"), "w").write("x")
print("interfaces", sorted(name for _, name in socket.if_nameindex()))
"""


def test_an_unprivileged_user_gets_the_same_confinement() -> None:
    """confinement.py uses only the standard library: run its mechanisms as `nobody` with a system Python."""
    setpriv, python = shutil.which("setpriv"), shutil.which("python3", path="/usr/bin:/usr/local/bin")
    if os.getuid() != 0 or setpriv is None or python is None:
        pytest.skip("needs root, setpriv and a system python3 to run a child as an unprivileged user")
    root = Path(tempfile.mkdtemp(prefix="evoagent-nobody-"))  # pytest's tmp_path is private to root
    try:
        _run_probe_as_nobody(root, setpriv, python)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_probe_as_nobody(root: Path, setpriv: str, python: str) -> None:
    module_dir, work = root / "package", root / "work"
    for folder in (module_dir, work):
        folder.mkdir()
    shutil.copy(confinement.__file__, module_dir / "confinement.py")
    (root / "secret.txt").write_text(SECRET)
    for path, mode in ((root, 0o755), (module_dir, 0o755), (work, 0o777), (module_dir / "confinement.py", 0o644),
                       (root / "secret.txt", 0o644)):
        path.chmod(mode)
    done = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", _PROBE,
                           str(module_dir / "confinement.py"), str(work), str(root / "secret.txt")],
                          capture_output=True, text=True, timeout=60, cwd=root)
    if "SyntaxError" in done.stderr or "ModuleNotFoundError" in done.stderr:
        pytest.skip(f"the system python3 cannot load confinement.py: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["namespace None", "denied 13", "denied 13", "denied 1",
                                        "interfaces ['lo']"]
    assert (work / "ok").exists()
