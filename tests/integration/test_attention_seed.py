"""The shipped seed kernel through the real stages: sandbox, Triton interpreter, AOT compile for sm_90a/sm_100a."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator, default_seed
from evoagent.targets.attention.cli import add_check_parser


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "attention-cache" / "static"


@pytest.fixture(scope="module")
def sandbox(cache_dir: Path):
    with Sandbox(AttentionEvaluator("smoke", cache_dir=cache_dir).sandbox_config()) as sb:
        yield sb


def test_the_seed_passes_every_stage_on_the_smoke_suite(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=5)
    result = evaluator.evaluate(Candidate.from_path(default_seed(), entry="kernel.py"), sandbox)
    assert result.status is Status.OK, result.reason
    assert set(result.metrics) == {c.name for c in evaluator.suite.configs}
    assert all(v > 0 for v in result.metrics.values()) and result.score > 0
    assert result.device == "cpu-interpreter"
    test = result.stage("test")
    assert test.details["cases"] == 3 * 3 + 4 * 3
    assert test.details["kernels_launched"]["_attention_forward"] == test.details["cases"]
    bench = result.stage("benchmark")
    assert [row["config"] for row in bench.details["table"]] == list(result.metrics)


def test_the_static_report_shows_tensor_core_instructions_for_both_archs(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", archs=("sm_90a", "sm_100a"), cache_dir=cache_dir)
    stage = evaluator.check(Candidate.from_path(default_seed(), entry="kernel.py"), sandbox)
    assert stage.ok, stage.reason
    hopper, blackwell = stage.details["static"]["sm_90a"], stage.details["static"]["sm_100a"]
    for report in (hopper, blackwell):
        assert report["ok"] and 0 < report["shared_bytes"] <= 232448
        assert 0 < report["registers"] <= 255
        assert [k["config"] for k in report["kernels"]] == [c.name for c in evaluator.suite.static_configs()]
        assert report["kernels"][0]["global_access_bits"].get("LDGSTS.128", 0) > 0  # SASS: once per kernel
    assert hopper["kernels"][0]["tensor_core"].get("HGMMA", 0) > 0
    assert blackwell["kernels"][0]["tensor_core"].get("UTCHMMA", 0) > 0
    assert all(k["ptx"]["wgmma.mma_async"] > 0 for k in hopper["kernels"])  # PTX: every variant
    assert all(k["ptx"]["tcgen05.mma"] > 0 for k in blackwell["kernels"])


def test_a_second_check_of_the_same_source_is_served_from_the_cache(sandbox: Sandbox, cache_dir: Path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir)
    candidate = Candidate.from_path(default_seed(), entry="kernel.py")
    evaluator.check(candidate, sandbox)
    again = evaluator.check(candidate, sandbox)
    assert again.ok and again.details["static"]["sm_90a"]["cached"] is True


def test_check_command_prints_json_and_exits_zero_for_the_seed(cache_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EVOAGENT_CACHE_DIR", str(cache_dir.parent))
    parser = argparse.ArgumentParser()
    add_check_parser(parser.add_subparsers())
    args = parser.parse_args(["check", "attention", str(default_seed()), "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ok" and data["reason"] == ""
    assert [s["name"] for s in data["stages"]] == ["check", "test", "benchmark", "profile"]
    assert data["static"]["sm_90a"]["registers"] > 0


def test_the_seed_file_runs_its_own_reference_check_under_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "TRITON_DEFAULT_FP_FUSION": "1"}
    done = subprocess.run([sys.executable, str(default_seed())], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok (interpreter)" in done.stdout
