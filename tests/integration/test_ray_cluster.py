"""A real two-node Ray cluster started with `ray start`, used as docs/executors.md says.

The circle-packing example runs with the documented command and default slots: both nodes run calls,
a node added mid-run runs calls, and killing the head's processes ends the run within 15 s with one
line saying how to resume; `resume` on the local executor then finishes with nothing lost. Each test
tears its nodes down by pid, even when it fails. Slow: three raylets on a shared machine.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ray_cluster_helpers import REPO, LocalCluster, evoagent, wait_for

import evoagent as ea
from evoagent.cli import main

pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray at a time on a small machine

EXAMPLE = REPO / "examples" / "circle_packing" / "config.toml"


@pytest.fixture
def cluster(tmp_path):
    nodes = LocalCluster(tmp_path / "cluster")
    try:
        yield nodes
    finally:
        nodes.stop()


def _nodes(run_dir: Path) -> list[dict]:
    try:
        with ea.Run.open(run_dir, readonly=True) as run:
            return run.status()["executor_nodes"]
    except (ea.RunStoreError, FileNotFoundError):  # not created yet, or still being created
        return []


def _calls_on(run_dir: Path, node_ids: set[str] | None = None) -> dict[str, int]:
    return {n["node_id"]: n["calls"] for n in _nodes(run_dir) if node_ids is None or n["node_id"] in node_ids}


def _done(run_dir: Path) -> dict[int, tuple]:
    with ea.Run.open(run_dir, readonly=True) as run:
        return {t.id: (t.candidate_id, t.status, t.score) for t in run.store.trials(state="done")}


def test_the_documented_cluster_commands_use_every_node_follow_a_new_one_and_end_cleanly_when_the_head_is_lost(
        cluster, tmp_path, capsys):
    cluster.start("head")
    cluster.start("w1")
    run_dir = tmp_path / "run"
    err_path = tmp_path / "run.err"
    with open(err_path, "w") as err, open(tmp_path / "run.out", "w") as out:
        # the docs' step 3, on a node of the cluster (a budget of its own, so that it outlasts the test)
        proc = evoagent("run", str(EXAMPLE), "--executor", "ray", "--ray-address", cluster.address,
                        "--run-dir", str(run_dir), "--trials", "100000", env=cluster.env, cwd=tmp_path,
                        stdout=out, stderr=err)
    try:
        first = wait_for(lambda: len([c for c in _calls_on(run_dir).values() if c]) >= 2 and _calls_on(run_dir),
                         "both nodes to run calls")
        notice = err_path.read_text()
        assert "2 nodes, 2 CPUs, 0 GPUs): 2 slots, one per CPU" in notice  # default slots follow the cluster

        cluster.start("w2")  # a node joins mid-run
        wait_for(lambda: len(_nodes(run_dir)) == 3, "the new node to be seen")
        new = wait_for(lambda: {k: c for k, c in _calls_on(run_dir).items() if k not in first and c},
                       "the new node to run calls")
        assert len(new) == 1
        with ea.Run.open(run_dir, readonly=True) as run:
            assert run.status()["executor"].startswith(f"ray ({cluster.address}, 3 nodes, 3 CPUs")
        assert main(["status", str(run_dir)]) == 0
        shown = [line for line in capsys.readouterr().out.splitlines() if re.match(r"    (head|node) ", line)]
        # every node that ran calls had its sandbox confinement measured there
        assert len(shown) == 3 and all(re.search(r": alive, 1 CPUs, 0 GPUs, [1-9]\d* calls, confinement (full|partial)",
                                                 line) for line in shown), shown

        # a worker node lost mid-run (not the one this driver is attached to): seen as gone, the run goes on
        nodes = _nodes(run_dir)
        lost = next(n for n in nodes if not n["head"] and not n["driver"])
        cluster.kill(cluster.name_of(lost["node_id"]))
        wait_for(lambda: not {n["node_id"]: n for n in _nodes(run_dir)}[lost["node_id"]]["alive"],
                 "the lost node to be shown as gone")
        calls = sum(_calls_on(run_dir).values())
        wait_for(lambda: sum(_calls_on(run_dir).values()) > calls + 5, "more calls after the node was lost")

        driver = next(n["node_id"][:8] for n in _nodes(run_dir) if n["driver"])
        before = _done(run_dir)
        cluster.kill("head")
        killed = time.monotonic()
        code = proc.wait(timeout=120)
        ended_s = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text()
    last = err.strip().splitlines()[-1]
    assert ended_s < 15, f"the run took {ended_s:.1f} s to end after the head was killed:\n{err[-3000:]}"
    assert code == 2
    assert "is gone" in last and f"resume with `evoagent resume {run_dir}`" in last, err[-3000:]
    assert "Failed to connect to GCS" not in err and "Traceback" not in err and "aylet" not in err, err[-3000:]
    left = [Path(p).name for p in glob.glob(str(cluster.tmp / "evoagent-ray-*"))]
    # the driver removed its folder and its node's; other nodes' stay (their workers were killed with no cleanup)
    assert all(name.count("-") == 3 and not name.endswith(driver) for name in left), left

    with ea.Run.open(run_dir, readonly=True) as run:
        status = run.status()
    assert status["interrupted"] >= 1 and status["executor"] == f"ray ({cluster.address}, gone)"  # the trials in flight when the head went, to be run again
    done = _done(run_dir)
    assert set(before) <= set(done) and all(done[t] == before[t] for t in before)

    resumed = subprocess.run(
        [*_cli(), "resume", str(run_dir), "--executor", "local", "--trials", str(status["trials"] + 2), "--quiet"],
        env={k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}, cwd=tmp_path, capture_output=True,
        text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _done(run_dir)
    assert all(after[t] == done[t] for t in done)  # nothing finished was lost
    with ea.Run.open(run_dir, readonly=True) as run:
        final = run.status()
        assert not run.store.trials(state="running")
    assert final["executor"].startswith("local") and final["executor_nodes"] == []
    assert final["trials"] == status["trials"] + 2


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-c", "import sys; from evoagent.cli import main; sys.exit(main())"]


def test_a_cluster_that_wants_a_token_is_refused_in_one_line_naming_the_auth_mode_and_no_run_is_left(
        cluster, tmp_path):
    cluster.start("head")
    env = {**cluster.env, "HOME": str(tmp_path)}  # no token here, and no RAY_AUTH_MODE
    env.pop("RAY_AUTH_MODE")
    done = subprocess.run([*_cli(), "run", str(EXAMPLE), "--executor", "ray", "--ray-address", cluster.address,
                           "--run-dir", str(tmp_path / "run")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "RAY_AUTH_MODE" in lines[0] and "token" in lines[0] and cluster.address in lines[0]
    assert not (tmp_path / "run").exists()


def test_an_address_where_nothing_listens_is_refused_at_once_and_no_run_is_left(tmp_path):
    started = time.monotonic()
    done = subprocess.run([*_cli(), "run", str(EXAMPLE), "--executor", "ray", "--ray-address", "127.0.0.1:9",
                           "--run-dir", str(tmp_path / "run")], env={**os.environ, "HOME": str(tmp_path)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and time.monotonic() - started < 120
    assert done.stderr.strip().splitlines() == [
        "evoagent: error: cannot connect to the Ray cluster at '127.0.0.1:9': nothing listens at 127.0.0.1:9 "
        "(connection refused); is `ray start --head` running there, with this port?"]
    assert not (tmp_path / "run").exists()


def _gpu_calls(run_dir: Path) -> dict[str, int]:
    try:
        with ea.Run.open(run_dir, readonly=True) as run:
            return {u["device"]: u["calls"] for u in run.status()["gpu_usage"]}
    except (ea.RunStoreError, FileNotFoundError):
        return {}


def test_a_gpu_node_that_joins_mid_run_gets_its_own_gpu_actor_which_runs_calls(cluster, tmp_path):
    # GPUs declared to Ray (--num-gpus) on this CPU-only machine: the GPU actors' calls run all the same
    cluster.start("head", gpus=1)
    (tmp_path / "markers").mkdir()
    (tmp_path / "main.py").write_text("X = 0.0  # evo: range 0 6\n")  # ParameterMutation's mark
    config = tmp_path / "gpu.toml"
    config.write_text(f"""seeds = ["main.py"]
[evaluator]
target = "{REPO / 'tests' / 'integration' / 'ray_targets.py'}:Holdable"
params = {{ marker_dir = "{tmp_path / 'markers'}", gpu = true }}
[operator]
kind = "parameter_mutation"
""")
    with open(tmp_path / "run.err", "w") as err:
        proc = evoagent("run", str(config), "--executor", "ray", "--ray-address", cluster.address, "--run-dir",
                        str(tmp_path / "run"), "--trials", "100000", "--quiet", env=cluster.env, cwd=tmp_path,
                        stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: _gpu_calls(tmp_path / "run").get("0"), "the first GPU actor to run calls")
        cluster.start("w1", gpus=1)
        wait_for(lambda: _gpu_calls(tmp_path / "run").get("1"), "the joined node's GPU actor to run calls")
        proc.send_signal(signal.SIGINT)  # stops as Ctrl-C does
        assert proc.wait(timeout=300) in (0, 1), (tmp_path / "run.err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with ea.Run.open(tmp_path / "run", readonly=True) as run:
        assert run.status()["executor"].startswith(f"ray ({cluster.address}, 2 nodes, 2 CPUs, 2 GPUs")
