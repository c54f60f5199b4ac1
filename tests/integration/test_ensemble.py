"""An ensemble of models: a UCB bandit moves steps toward the model that commits more per dollar, across resume."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from engine_targets import SEED, Quadratic

import evoagent as ea
from evoagent.llm.base import LLMResponse
from evoagent.llm.ensemble import Ensemble, Member
from evoagent.operators.agentic import AgenticVariationOperator

_ids = itertools.count(1)


class ToyModel:
    """A model that writes main.py with the next X of its sequence and submits, at $0.01 a call."""

    name = "toy"

    def __init__(self, model: str, xs: Any) -> None:
        self.model, self._xs = model, iter(xs)

    def complete(self, *, system: Any, messages: Sequence[Any], tools: Sequence[Mapping[str, Any]] = (),
                 max_tokens: int | None = None) -> LLMResponse:
        x = next(self._xs)
        calls = [("write_file", {"path": "main.py", "content": f"X = {x!r}\n"}),
                 ("submit", {"hypothesis": f"{self.model}: X = {x:.4f}"})]
        content = [{"type": "tool_use", "id": f"toolu_toy_{next(_ids)}", "name": n, "input": i} for n, i in calls]
        return LLMResponse(content=content, stop_reason="tool_use", model=self.model,
                           usage=ea.Usage(input_tokens=1000, output_tokens=100, cost_usd=0.01))


def _operator() -> AgenticVariationOperator:
    good = ToyModel("good", (3.0 - 2.0 / k for k in itertools.count(2)))  # closer to 3 every time: commits
    bad = ToyModel("bad", (-5.0 - k / 100 for k in itertools.count()))  # far from 3: never commits
    return AgenticVariationOperator(Ensemble([Member(bad, 2.0), Member(good, 1.0)]), critique=False,
                                    supervisor=False)


def _models(run: ea.Run) -> list[str | None]:
    return [t.model for t in run.store.trials(state="done", include_seeds=False)]


def test_the_bandit_shifts_trials_to_the_model_that_commits_per_dollar_and_resumes_from_the_store(tmp_path):
    (tmp_path / "seed.py").write_text(SEED)
    run = ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[tmp_path / "seed.py"])
    ea.evolve(run, _operator(), ea.Budget(trials=12))
    models = _models(run)
    assert models[:2] == ["bad", "good"]  # each model is tried once (the heavier weight first)
    assert models.count("good") >= 9, models
    stats = run.store.model_stats()
    assert stats["bad"].commits == 0 and stats["good"].commits == stats["good"].trials
    assert stats["good"].cost_usd == pytest.approx(stats["good"].trials * 0.01)
    assert stats["good"].tokens == stats["good"].trials * 1100
    run.close()

    with ea.Run.open(tmp_path / "run") as again:  # a new process would start here: the counts come from the store
        ea.evolve(again, _operator(), ea.Budget(trials=14))
        assert _models(again)[12] == "good"
    status = subprocess.run([sys.executable, "-m", "evoagent.cli", "status", str(tmp_path / "run"), "--json"],
                            capture_output=True, text=True, timeout=60)
    per_model = {m["model"]: m for m in json.loads(status.stdout)["models"]}
    assert per_model["good"]["trials"] + per_model["bad"]["trials"] == 14
    assert per_model["bad"]["commits"] == 0 and per_model["good"]["cost_usd"] > 0


def test_ucb_scores_prefer_untried_models_then_commits_per_dollar():
    ensemble = Ensemble([ToyModel("a", []), ToyModel("b", [])])
    assert ensemble.choose({}) == "a"
    stats = {"a": ea.ModelStats(model="a", trials=10, commits=1, cost_usd=1.0),
             "b": ea.ModelStats(model="b", trials=10, commits=4, cost_usd=1.0)}
    assert ensemble.choose(stats) == "b"
    cheap = {**stats, "a": ea.ModelStats(model="a", trials=10, commits=1, cost_usd=0.1)}  # 10 commits per $
    assert ensemble.choose(cheap) == "a"


def test_the_report_lists_each_model_with_its_trials_commits_tokens_and_cost(tmp_path):
    pytest.importorskip("plotly")
    from evoagent.report import build_report

    (tmp_path / "seed.py").write_text(SEED)
    with ea.Run.create(tmp_path / "run", evaluator=Quadratic(), seeds=[tmp_path / "seed.py"]) as run:
        ea.evolve(run, _operator(), ea.Budget(trials=3))
    page = build_report(tmp_path / "run")
    assert "model good" in page and "model bad" in page and "commits" in page
