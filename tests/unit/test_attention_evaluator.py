"""AttentionEvaluator without a sandbox: settings, test shapes, early check-stage verdicts, CLI formatting."""

from __future__ import annotations

import argparse
import json

import pytest

from evoagent.candidate import Candidate
from evoagent.errors import ConfigError
from evoagent.evaluator import Evaluator
from evoagent.result import EvalResult, StageResult, Status
from evoagent.targets.attention import AttentionEvaluator, default_seed, default_suite
from evoagent.targets.attention.cli import add_bench_parser, add_check_parser, check_json, format_bench_table
from evoagent.targets.attention.evaluator import cuda_available


class _NoSandbox:
    """Fails the test if a stage reaches for the sandbox when it should have decided already."""

    gpus = ()

    def call(self, *args, **kwargs):
        raise AssertionError("the sandbox should not be needed for this verdict")


@pytest.fixture
def evaluator(tmp_path) -> AttentionEvaluator:
    return AttentionEvaluator("smoke", cache_dir=tmp_path, seed=1)


def test_it_is_an_evaluator_with_the_four_stages(evaluator: AttentionEvaluator) -> None:
    assert isinstance(evaluator, Evaluator)
    assert evaluator.stages == ("check", "test", "benchmark", "profile")
    assert evaluator.entry == "kernel.py" and evaluator.name == "attention"
    assert "attention(q, k, v, *, causal: bool, sm_scale: float)" in evaluator.description
    assert "getattr" in evaluator.rules


def test_spec_rebuilds_an_equal_evaluator(evaluator: AttentionEvaluator) -> None:
    spec = evaluator.spec()
    assert spec["class"] == "evoagent.targets.attention:AttentionEvaluator"
    again = AttentionEvaluator(**spec["params"])
    assert again.spec() == spec


def test_without_cuda_the_default_suite_is_smoke_and_the_device_the_interpreter() -> None:
    if cuda_available():
        pytest.skip("a CUDA device is visible")
    assert default_suite() == "smoke"
    evaluator = AttentionEvaluator()
    assert evaluator.suite.name == "smoke" and evaluator.device_label() == "cpu-interpreter"
    assert "triton" in evaluator.sandbox_config().preload


@pytest.mark.parametrize("kwargs, word", [
    ({"suite": "nope"}, "unknown attention suite"),
    ({"archs": ("sm_80",)}, "archs"),
    ({"archs": "sm_90a"}, "archs"),
    ({"seeds": 0}, "seeds"),
    ({"reps": 0}, "reps"),
    ({"timeout_s": -1}, "timeout_s"),
])
def test_bad_settings_are_rejected_at_construction(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        AttentionEvaluator(**kwargs)


def test_test_cases_repeat_each_shape_and_add_fresh_ragged_gqa_shapes(evaluator: AttentionEvaluator) -> None:
    cases = evaluator.test_cases()
    names = [c["config"]["name"] for c in cases]
    suite_names = [c.name for c in evaluator.suite.configs]
    assert all(names.count(n) == 3 for n in suite_names)
    extras = [c["config"] for c in cases if c["config"]["name"] not in suite_names]
    assert len({e["name"] for e in extras}) <= 4 and len(extras) == 12
    assert all(e["dtype"] == "float16" for e in extras)  # bf16 is not trusted in the interpreter
    assert extras[0]["seqlen"] % 16 != 0
    assert {e["causal"] for e in extras} == {True, False}
    assert len({c["seed"] for c in cases}) == len(cases)  # fresh inputs for every call


def test_two_evaluations_draw_different_shapes_and_seeds(tmp_path) -> None:
    evaluator = AttentionEvaluator("smoke", cache_dir=tmp_path)
    first, second = evaluator.test_cases(), evaluator.test_cases()
    assert [c["seed"] for c in first] != [c["seed"] for c in second]


def _check(evaluator: AttentionEvaluator, files: dict[str, str]) -> StageResult:
    return evaluator.check(Candidate(files=files, entry=next(iter(files))), _NoSandbox())


def test_missing_entry_file_is_a_compile_error(evaluator: AttentionEvaluator) -> None:
    result = _check(evaluator, {"other.py": "x = 1\n"})
    assert result.status is Status.COMPILE_ERROR and "no kernel.py" in result.reason


def test_syntax_error_names_the_line(evaluator: AttentionEvaluator) -> None:
    result = _check(evaluator, {"kernel.py": "import torch\ndef attention(q, k, v, *, causal, sm_scale:\n"})
    assert result.status is Status.COMPILE_ERROR and result.reason.startswith("line 2: SyntaxError")


def test_wrong_signature_is_a_compile_error(evaluator: AttentionEvaluator) -> None:
    result = _check(evaluator, {"kernel.py": "def attention(q, k):\n    return q\n"})
    assert result.status is Status.COMPILE_ERROR and "(q, k, v, *, causal, sm_scale)" in result.reason


def test_illegal_source_lists_every_finding(evaluator: AttentionEvaluator) -> None:
    source = "import os\nimport torch\ndef attention(q, k, v, *, causal, sm_scale):\n    return torch.matmul(q, k)\n"
    result = _check(evaluator, {"kernel.py": source})
    assert result.status is Status.ILLEGAL and "(and 1 more)" in result.reason
    assert len(result.details["legality"]) == 2


def test_the_cli_registers_check_and_bench() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_check_parser(sub)
    add_bench_parser(sub)
    args = parser.parse_args(["check", "attention", "k.py", "--arch", "sm_90a", "--arch", "sm_100a", "--json"])
    assert args.arch == ["sm_90a", "sm_100a"] and args.json and callable(args.func)
    args = parser.parse_args(["bench", "attention", str(default_seed()), "--suite", "h100-mha"])
    assert args.suite == "h100-mha" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["check", "matmul", "k.py"])


def test_check_json_has_status_reason_stages_and_static() -> None:
    check = StageResult(name="check", seconds=1.5, details={"static": {"sm_90a": {
        "ok": True, "shared_bytes": 131072, "registers": 194, "spill_bytes": 0, "spill_instructions": 0,
        "compile_seconds": 1.2, "cached": False, "kernels": []}}})
    test = StageResult(name="test", status=Status.INCORRECT, reason="wrong", seconds=2.0)
    result = EvalResult(status=Status.INCORRECT, reason="test: wrong", stages=(check, test), device="cpu-interpreter")
    data = json.loads(json.dumps(check_json(result)))
    assert data["status"] == "incorrect" and data["reason"] == "test: wrong"
    assert [s["name"] for s in data["stages"]] == ["check", "test"]
    assert set(data["stages"][0]) >= {"name", "status", "seconds", "details"}
    assert data["static"]["sm_90a"]["shared_bytes"] == 131072 and data["static"]["sm_90a"]["registers"] == 194


def test_bench_table_shows_baselines_and_ratio_to_cudnn() -> None:
    rows = [{"config": "c1", "tflops": {"candidate": 400.0, "sdpa-cudnn": 500.0}, "ratio_to_cudnn": 0.8,
             "baseline_errors": {"sdpa-flash": "RuntimeError: no"}},
            {"config": "c2", "tflops": {"candidate": 300.0, "sdpa-flash": 310.0}, "ratio_to_cudnn": None,
             "baseline_errors": {"sdpa-cudnn": "x"}}]
    table = format_bench_table(rows, "NVIDIA H100").splitlines()
    assert table[1] == "| config | candidate | sdpa-cudnn | sdpa-flash | vs cuDNN |"
    assert table[3] == "| c1 | 400 | 500 | error | 0.800x |"
    assert table[4] == "| c2 | 300 | error | 310 | - |"


def test_the_seed_marks_its_tuning_knobs_for_parameter_mutation() -> None:
    from evoagent.operators.mutation import find_parameters

    found = {p.name for p in find_parameters({"kernel.py": default_seed().read_text()})}
    assert {"BLOCK_M", "BLOCK_N", "NUM_WARPS", "NUM_STAGES"} <= found


def test_seeds_are_chosen_by_name_and_an_unknown_name_lists_the_shipped_ones() -> None:
    from evoagent.errors import ConfigError
    from evoagent.targets.attention import SEEDS, seed_names, seed_path

    assert seed_names()[0] == "fa2" and set(seed_names()) == set(SEEDS) >= {"fa2", "hopper-tma"}
    assert seed_path("hopper-tma").name == "hopper_tma.py" and default_seed() == seed_path("fa2")
    with pytest.raises(ConfigError, match=r"'hoper-tma'.*did you mean 'hopper-tma'"):
        seed_path("hoper-tma")


def test_a_run_config_names_shipped_seeds_as_target_colon_name(tmp_path) -> None:
    import dataclasses

    from evoagent import assemble
    from evoagent.errors import ConfigError
    from evoagent.targets.attention import seed_path

    config = assemble.with_builtin_seeds(assemble.builtin_config("attention", suite="smoke"), ["hopper-tma", "fa2"])
    assert config.seeds == ["attention:hopper-tma", "attention:fa2"]
    assert assemble.seed_paths(config) == [seed_path("hopper-tma"), seed_path("fa2")]
    local = dataclasses.replace(config, seeds=["my_seed.py"], base_dir=str(tmp_path))
    assert assemble.seed_paths(local) == [tmp_path / "my_seed.py"]
    with pytest.raises(ConfigError, match="unknown attention seed"):
        assemble.with_builtin_seeds(config, ["nope"])
    custom = dataclasses.replace(config, evaluator=dataclasses.replace(config.evaluator, target="my.py:Eval"))
    with pytest.raises(ConfigError, match="--seed"):
        assemble.with_builtin_seeds(custom, ["fa2"])


def test_run_takes_seeds_by_name_on_the_command_line() -> None:
    from evoagent.cli import build_parser

    args = build_parser().parse_args(["run", "attention", "--seed", "hopper-tma", "--seed", "fa2"])
    assert args.seeds == ["hopper-tma", "fa2"]


def test_the_compact_static_report_opens_with_one_line_per_autotune_config() -> None:
    import json

    from evoagent.targets.attention.evaluator import compact_report

    kernel = {"kernel": "_fwd", "config": "b1-h2-n64", "num_warps": 8, "num_stages": 2, "shared_bytes": 164864,
              "registers": 187, "stack_bytes": 0, "sass": {"tensor_core": {"HGMMA": 32}, "memory": {"UTMALDG": 9}},
              "ptx": {}, "autotune_rank": "1 of 2"}
    report = {"ok": True, "describes": "x" * 3000, "kernels": [
        kernel | {"autotune": "BLOCK_M=128, num_warps=8"}, kernel | {"autotune": "BLOCK_M=64, num_warps=4"}]}
    compact = compact_report(report)
    assert list(compact)[:2] == ["ok", "per_config"]
    assert compact["per_config"][0] == ("_fwd [b1-h2-n64] BLOCK_M=128, num_warps=8 (1 of 2): 187 registers, 0 B "
                                        "spilled, 164864 B shared, HGMMA 32, UTMALDG 9")
    assert "BLOCK_M=64" in json.dumps(compact)[:2000]  # a reader that cuts at 2000 characters sees every config
