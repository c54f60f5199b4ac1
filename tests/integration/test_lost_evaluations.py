"""The engine's answer to an evaluation lost with its worker (`infrastructure`): stored, retried once, never scored.

Without Ray: the evaluator itself reports the loss, as the Ray executor's calls do when a worker dies
(tests/integration/test_ray_executor.py kills real Ray workers).
"""

from __future__ import annotations

from engine_targets import Scripted

import evoagent as ea
from evoagent import Candidate, Evaluator, StageResult, Status


class Flaky(Evaluator):
    """score = 100 - (X - 3)^2; the first `losses` evaluations of a source with `LOST = True` are lost."""

    name = "flaky"
    entry = "main.py"
    stages = ("measure",)

    def __init__(self, losses: int = 1) -> None:
        self.losses = losses
        self.lost = 0

    def measure(self, candidate: Candidate, sandbox) -> StageResult:
        namespace: dict = {}
        exec(candidate.source, namespace)  # trusted test code
        if namespace.get("LOST") and self.lost < self.losses:
            self.lost += 1
            return StageResult.fail(Status.INFRASTRUCTURE, f"the Ray worker was lost during the call ({self.lost})")
        return StageResult(metrics={"f": 100.0 - (namespace["X"] - 3.0) ** 2})


def _run(tmp_path, losses: int) -> ea.Run:
    seed = tmp_path / "main.py"
    seed.write_text("X = 0.0\n")
    run = ea.Run.create(tmp_path / "run", evaluator=Flaky(losses), seeds=[seed])
    ea.evolve(run, Scripted(["X = 2.0\nLOST = True\n", "X = 2.5\n"]), ea.Budget(trials=2))
    return run


def test_a_lost_evaluation_is_stored_and_retried_once_and_the_retry_scores(tmp_path) -> None:
    run = _run(tmp_path, losses=1)
    first, second = [t for t in run.store.trials(state="done") if t.operator != "seed"]
    assert first.status is Status.OK and first.committed and second.status is Status.OK
    assert [(e["trial_id"], e["status"]) for e in run.store.evaluations(kind="lost")] == [(first.id, "infrastructure")]
    [event] = run.store.events("infrastructure")
    assert event["trial_id"] == first.id and "worker was lost" in event["payload"]["reason"]


def test_an_evaluation_lost_twice_labels_the_trial_infrastructure_and_the_run_goes_on(tmp_path) -> None:
    run = _run(tmp_path, losses=2)
    first, second = [t for t in run.store.trials(state="done") if t.operator != "seed"]
    assert first.status is Status.INFRASTRUCTURE and first.score is None and not first.committed
    assert "lost twice" in first.reason
    assert second.status is Status.OK and second.committed
    assert run.status()["executor"] == "local (2 CPU workers, 0 GPUs)"
