from __future__ import annotations

from pathlib import Path

import evoagent as ea
from evoagent.run import load_object

EXAMPLE = Path(__file__).parents[2] / "examples" / "circle_packing"


def _evaluator():
    return load_object(f"{EXAMPLE / 'evaluator.py'}:CirclePackingEvaluator")()


def test_parameter_mutation_improves_the_seed_packing(tmp_path):
    run = ea.Run.create(tmp_path / "run", evaluator=_evaluator(), seeds=[EXAMPLE / "packing.py"])
    result = ea.evolve(run, ea.ParameterMutation(), ea.Budget(trials=25), seed=0)
    seed_trial = run.store.trials()[0]
    assert seed_trial.status is ea.Status.OK and 1.0 < seed_trial.score < 2.635
    assert result.best.score > seed_trial.score
    run.close()


def test_invalid_packings_are_rejected_with_a_reason(tmp_path):
    evaluator = _evaluator()
    seed = (EXAMPLE / "packing.py").read_text()
    cases = {
        "outside": seed + "\ndef pack():\n    c = centers()\n    return c, radii(c) + 0.5\n",
        "overlap": seed + "\ndef pack():\n    c = centers()\n    c[1] = c[0]\n    return c, radii(centers())\n",
        "nan": seed + "\ndef pack():\n    c = centers()\n    r = radii(c)\n    r[3] = float('nan')\n    return c, r\n",
        "shape": seed + "\ndef pack():\n    c = centers()\n    return c[:5], radii(c)[:5]\n",
    }
    with ea.Sandbox(evaluator.sandbox_config()) as sandbox:
        reasons = {name: evaluator.evaluate(ea.Candidate.from_source(src, entry="packing.py"), sandbox)
                   for name, src in cases.items()}
    assert all(r.status is ea.Status.INCORRECT for r in reasons.values())
    assert "outside the unit square" in reasons["outside"].reason
    assert "overlap" in reasons["overlap"].reason
    assert "finite" in reasons["nan"].reason
    assert "shapes" in reasons["shape"].reason
