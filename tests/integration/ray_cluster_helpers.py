"""A real multi-node Ray cluster on this machine for tests: `ray start` per node, each with its own temp dir.

Every node is started as docs/executors.md says (token authentication: `RAY_AUTH_MODE=token` and the
cluster's token, here in a private HOME), on the loopback address. A node is stopped by killing its
own processes by pid (those whose command line names its temp dir, and their children): `ray stop`
would stop every Ray on the machine, other tests' and other users' included.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` command of this Python, wherever PATH points
_START_TIMEOUT_S = 300  # `ray start` takes ~5 s on an idle machine; a busy one may take much longer


class LocalCluster:
    """Nodes started with `ray start` under `root` (one temp dir each); `stop()` kills all of them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        home, self.tmp = root / "home", root / "tmp"  # a private HOME (the token) and TMPDIR (scratch folders)
        home.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        self.env = {**os.environ, "HOME": str(home), "TMPDIR": str(self.tmp), "RAY_AUTH_MODE": "token",
                    "RAY_USAGE_STATS_ENABLED": "0",
                    "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[str] = []
        self.address = ""
        # the documented first step: a token for the cluster, in ~/.ray/auth_token of every node (one HOME here)
        subprocess.run([*RAY, "get-auth-token", "--generate"], env=self.env, check=True, capture_output=True,
                       timeout=120)

    def temp_dir(self, name: str) -> Path:
        # short: Ray's socket paths live under it and must fit in 107 bytes
        return Path("/tmp") / f"ea-rc-{os.getpid()}-{name}"

    def start(self, name: str, *, cpus: int = 1, gpus: int = 0) -> None:
        """Starts a node: the head first (`ray start --head`), then others joining it (`--address`)."""
        temp = self.temp_dir(name)
        command = [*RAY, "start", "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp),
                   "--num-cpus", str(cpus), "--num-gpus", str(gpus), "--object-store-memory", str(80 * 1024 * 1024),
                   "--disable-usage-stats"]
        if not self.nodes:
            command += ["--head", "--port", "0", "--include-dashboard", "false"]
        else:
            command += ["--address", self.address]
        self.nodes.append(name)  # before the start, so that stop() cleans up a half-started node
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=_START_TIMEOUT_S)
        assert done.returncode == 0, f"ray start for {name} failed:\n{done.stdout}\n{done.stderr}"
        if len(self.nodes) == 1:
            found = re.search(r"ray start --address='([^']+)'", done.stdout + done.stderr)
            assert found, f"no address in ray start's output:\n{done.stdout}\n{done.stderr}"
            self.address = "127.0.0.1:" + found.group(1).rsplit(":", 1)[1]

    def name_of(self, node_id: str) -> str:
        """The name of the node whose Ray id starts with `node_id` (Ray names its port files after the id)."""
        for name in self.nodes:
            if list(self.temp_dir(name).glob(f"session_latest/*_port_{node_id}*")):
                return name
        raise AssertionError(f"no node of this cluster has the id {node_id}")

    def kill(self, name: str) -> list[int]:
        """Kills one node's processes (SIGKILL) by pid; returns them."""
        return kill_tree(lambda cmdline: f"{self.temp_dir(name)}/".encode() in cmdline)

    def stop(self) -> None:
        for name in self.nodes:
            self.kill(name)
        for name in self.nodes:
            subprocess.run(["rm", "-rf", str(self.temp_dir(name))], check=False)


def kill_tree(matches: Callable[[bytes], bool]) -> list[int]:
    """SIGKILLs the processes whose command line `matches`, and all their descendants."""
    parents: dict[int, int] = {}
    roots = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if matches(cmdline) and pid != os.getpid():
            roots.append(pid)
    doomed = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in doomed and pid not in doomed:
                doomed.add(pid)
                grew = True
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return sorted(doomed)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 300.0, every_s: float = 0.25) -> object:
    """Polls `condition` until it returns something true; fails naming `what` after a generous bound."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def evoagent(*args: str, env: dict[str, str], cwd: Path, **popen: object) -> subprocess.Popen[str]:
    """`evoagent ARGS` as a user runs it (what the console script calls), in `cwd`."""
    main = "import sys; from evoagent.cli import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", main, *args], env=env, cwd=cwd, text=True,
                            **popen)  # type: ignore[call-overload]
