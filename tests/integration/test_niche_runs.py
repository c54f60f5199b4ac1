"""Islands and MAP-Elites on real targets: the circle-packing example killed and resumed, the attention target's cells."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from engine_targets import SEED, Quadratic, Scripted
from held_run import done_trials, start_and_hold

import evoagent as ea
from evoagent.targets.attention import AttentionEvaluator, default_seed

EXAMPLE = Path(__file__).parents[2] / "examples" / "circle_packing"
HELD = '''"""The circle-packing example's evaluator, held still while a file exists (for the kill test)."""
import os
import time

from evoagent.references import load_object

Base = load_object("{evaluator}:CirclePackingEvaluator")


class Held(Base):
    def __init__(self, hold_file: str = "") -> None:
        self.hold_file = hold_file

    def validate(self, candidate, sandbox):
        while os.path.exists(self.hold_file):
            time.sleep(0.01)
        return super().validate(candidate, sandbox)
'''
KINDS = ("islands", "map_elites")  # examples/circle_packing/<kind>.toml


def _cli(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "evoagent.cli", *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"evoagent {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out


def _example(tmp_path: Path, kind: str, *, trials: int) -> tuple[Path, Path]:
    """The example's <kind>.toml, copied with a held evaluator and a smaller budget; returns (config, hold file)."""
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    (example / "held.py").write_text(HELD.format(evaluator=example / "evaluator.py"))
    hold = tmp_path / "hold"
    config = example / f"{kind}.toml"
    text = config.read_text().replace('target = "evaluator.py:CirclePackingEvaluator"',
                                      f'target = "held.py:Held"\nparams = {{ hold_file = "{hold}" }}')
    config.write_text(text.replace("trials = 60", f"trials = {trials}").replace("migrate_every = 10",
                                                                                 "migrate_every = 3"))
    assert "held.py" in config.read_text() and f"trials = {trials}" in config.read_text()
    return config, hold


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_circle_packing_run_resumes_to_its_budget_with_no_finished_trial_lost(tmp_path, kind):
    config, hold = _example(tmp_path, kind, trials=10)
    run_dir = tmp_path / "run"
    proc = start_and_hold(config, run_dir, hold, reported=4, stdout=subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its sandbox servers, without warning
    proc.communicate()
    before = done_trials(run_dir / "run.db")
    assert 4 <= len(before) < 10
    hold.unlink()
    _cli("resume", str(run_dir), "--quiet")
    after = done_trials(run_dir / "run.db")
    assert after[: len(before)] == before and len(after) == 10
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["trials"] == 10 and status["interrupted"] <= 1 and status["population"] == kind
    con = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    committed = con.execute("SELECT niche, MAX(score) FROM trials WHERE committed = 1 AND niche IS NOT NULL "
                            "GROUP BY niche").fetchall()
    con.close()
    niches = {n["niche"]: n for n in status["niches"]}
    for niche, score in committed:  # each niche's elite is its best commit (migrants aside)
        assert niches[niche]["best_score"] >= score
    text = _cli("status", str(run_dir)).stdout
    if kind == "islands":
        assert sorted(niches) == [f"island {i}" for i in range(4)] and status["migrations"] == 10 // 3
        assert "Islands (4 filled)" in text and "3 migrations" in text
    else:
        assert all(n.startswith("cell smallest_radius=") for n in niches) and f"Cells ({len(niches)} filled)" in text
        assert all(niches[n]["best_score"] == score for n, score in committed)
    assert "[island " in _cli("lineage", str(run_dir)).stdout or kind == "map_elites"


def test_attention_cells_fill_in_status_and_a_reformatted_version_costs_no_evaluation(tmp_path):
    seed = default_seed().read_text()
    warps4 = seed.replace("NUM_WARPS = 8  # evo: choices 4 8", "NUM_WARPS = 4  # evo: choices 4 8")
    reformatted = "# the same kernel, reformatted\n" + warps4.replace("NUM_WARPS = 4 ", "NUM_WARPS = (4) ")
    block32 = seed.replace("BLOCK_N = 64  # evo: choices 32 64 128", "BLOCK_N = 32  # evo: choices 32 64 128")
    assert len({seed, warps4, reformatted, block32}) == 4
    evaluator = AttentionEvaluator("smoke", cache_dir=tmp_path / "cache")
    run = ea.Run.create(tmp_path / "run", evaluator=evaluator, seeds=[default_seed()],
                        population=ea.MapElites(["BLOCK_N", "num_warps", "registers"], tolerance=0.9))
    trials = ea.evolve(run, Scripted([warps4, reformatted, block32]), ea.Budget(trials=3)).trials
    assert [t.status for t in trials] == [ea.Status.OK, ea.Status.DUPLICATE, ea.Status.OK]
    assert trials[0].candidate_id in trials[1].reason and "no evaluation spent" in trials[1].reason
    assert run.store.count_evaluations("authoritative") == 3  # the seed and two versions: none for the duplicate
    assert trials[0].niche != trials[2].niche and trials[0].niche.startswith("cell BLOCK_N=64 num_warps=4")
    run.close()
    text = _cli("status", str(tmp_path / "run")).stdout
    assert "population map_elites" in text and "Cells (3 filled)" in text
    for trial in (trials[0], trials[2]):
        assert f"{trial.niche}: {trial.candidate_id} score " in text


class _Recording(Scripted):
    """Scripted, remembering what each step was told about its niche."""

    def __init__(self, sources: list[str]) -> None:
        super().__init__(sources)
        self.views: list[ea.NicheView | None] = []

    def vary(self, context):
        self.views.append(context.niche)
        return super().vary(context)


def test_each_step_is_told_its_island_and_works_there(tmp_path):
    run = ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[ea.Candidate.from_source(SEED)],
                        population=ea.Islands(2, migrate_every=2))
    op = _Recording([f"X = {x}\n" for x in (1.0, 2.0, 2.5, 0.5)])
    trials = ea.evolve(run, op, ea.Budget(trials=4)).trials
    assert [v.name for v in op.views] == [t.niche for t in trials] == ["island 0", "island 1", "island 0", "island 1"]
    assert all("You work on " + v.name + " of 2" in v.text for v in op.views)
    assert trials[1].parent_id == trials[0].parent_id  # island 1 starts from the seed, not island 0's commit
    assert trials[2].parent_id == trials[1].candidate_id  # after the migration, from the migrant island 1 sent
    assert run.store.migrations()[0]["moves"] == [
        {"from": "island 0", "to": "island 1", "candidate_id": trials[0].candidate_id},
        {"from": "island 1", "to": "island 0", "candidate_id": trials[1].candidate_id}]
    assert "Islands (2 filled)" in run.lineage.summary()
    run.close()
