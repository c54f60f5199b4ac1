"""The Ray executor on a real local Ray: a run completes, and an evaluation survives a killed Ray worker.

One Ray (2 CPUs, one declared GPU so that the GPU actor path runs on this CPU-only machine, a 100 MB
object store, no dashboard) is started for the module: starting Ray takes ~10 s, so the three tests
share it (slow: each run starts a sandbox inside a Ray worker or actor).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytest
from engine_targets import Scripted
from ray_targets import SEED, Holdable

import evoagent as ea
from evoagent import ExecutorConfig, Status
from evoagent.cli import main

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray at a time on a small machine


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, num_gpus=1, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def _run(tmp_path: Path, evaluator: Holdable, sources: list[str], trials: int, slots: int = 1) -> ea.Run:
    seed = tmp_path / "main.py"
    seed.write_text(SEED)
    run = ea.Run.create(tmp_path / "run", evaluator=evaluator, seeds=[seed])
    ea.evolve(run, Scripted(sources), ea.Budget(trials=trials), slots=slots,
              executor=ExecutorConfig(kind="ray"))
    return run


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _worker_of(call: int) -> int:
    """The Ray worker above a sandboxed call: the first ancestor that is not a fork of its fork server (the call's
    init and the server share the call's command line)."""
    command = Path(f"/proc/{call}/cmdline").read_bytes()
    pid = _parent(call)
    while pid > 1 and Path(f"/proc/{pid}/cmdline").read_bytes() == command:
        pid = _parent(pid)
    assert pid > 1, "the call's Ray worker was not found"
    return pid


class _Killer(threading.Thread):
    """Kills the Ray worker (or actor) running each held call: a marker holds the call's pid."""

    def __init__(self, marker_dir: Path, count: int) -> None:
        super().__init__(daemon=True)
        self.marker_dir, self.count = marker_dir, count
        self.killed: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        for n in range(self.count):
            marker = self.marker_dir / f"call-{n}"
            while not marker.exists():  # the held call writes it, then waits to be killed
                if self.done.wait(0.02):
                    return
            worker = _worker_of(int(marker.read_text()))
            os.kill(worker, signal.SIGKILL)
            self.killed.append(worker)


def _markers(tmp_path: Path) -> Path:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    return marker_dir


def test_a_run_through_ray_completes_with_every_trial_labelled_and_the_executor_recorded(local_ray, tmp_path):
    run = _run(tmp_path, Holdable(str(_markers(tmp_path)), gpu=True), ["X = 1.0\n", "X = 2.5\n", "X = 1 / 0\n"],
               trials=3, slots=2)
    trials = [t for t in run.store.trials(state="done") if t.operator != "seed"]
    assert len(trials) == 3 and all(t.status is not None for t in trials)
    assert sorted(t.status.value for t in trials) == ["crash", "ok", "ok"]
    assert run.best_result is not None and run.best_result.score == pytest.approx(100.0 - 0.25)
    status = run.status()
    assert status["executor"] == "ray (local, 1 node, 2 CPUs, 1 GPUs)"
    assert status["confinement"]["level"] in ("full", "partial")
    [gpu] = status["gpu_usage"]  # the GPU actor's calls went through the shared GPU queue, busy time counted
    assert gpu["device"] == "0" and gpu["calls"] == 4 and 0 < gpu["busy_s"] <= gpu["wall_s"]


def test_a_ray_worker_killed_mid_evaluation_is_labelled_infrastructure_retried_once_and_shown(
        local_ray, tmp_path, capsys):
    marker_dir = _markers(tmp_path)
    killer = _Killer(marker_dir, 1)
    killer.start()
    try:
        run = _run(tmp_path, Holdable(str(marker_dir), kills=1), ["X = 2.0\nHOLD = True\n", "X = 2.5\n"], trials=2)
    finally:
        killer.done.set()
    assert len(killer.killed) == 1
    trials = {t.id: t for t in run.store.trials(state="done") if t.operator != "seed"}
    assert [t.status for t in trials.values()] == [Status.OK, Status.OK]  # the retry scored it; the run went on
    lost = run.store.evaluations(kind="lost")
    assert [(e["trial_id"], e["status"]) for e in lost] == [(min(trials), "infrastructure")]
    events = [e["payload"] for e in run.store.events("infrastructure")]
    assert len(events) == 1 and "lost during the call" in events[0]["reason"]
    status = run.status()
    assert status["retries"] == 1  # where users look: status, status --json, show
    assert [(n["alive"], n["calls"] > 0, n["confinement"]) for n in status["executor_nodes"]] == [
        (True, True, status["confinement"]["level"])]
    run.close()
    assert main(["status", str(run.dir)]) == 0
    assert "retried 1 evaluation(s) whose machine was lost" in capsys.readouterr().out
    assert main(["show", str(run.dir), str(min(trials)), "--no-transcript"]) == 0
    shown = capsys.readouterr().out
    assert "retried: evaluation lost and run again (measure: the Ray worker was lost during the call" in shown


def test_a_gpu_actor_lost_twice_labels_the_trial_infrastructure_and_the_run_goes_on(local_ray, tmp_path):
    marker_dir = _markers(tmp_path)
    killer = _Killer(marker_dir, 2)
    killer.start()
    try:
        run = _run(tmp_path, Holdable(str(marker_dir), kills=2, gpu=True), ["X = 2.0\nHOLD = True\n", "X = 2.5\n"],
                   trials=2)
    finally:
        killer.done.set()
    assert len(killer.killed) == 2
    held, after = [t for t in run.store.trials(state="done") if t.operator != "seed"]
    assert held.status is Status.INFRASTRUCTURE and held.score is None and not held.committed
    assert "GPU actor was lost" in held.reason and "lost twice" in held.reason
    assert after.status is Status.OK and after.committed  # the restarted actor measured the next trial
