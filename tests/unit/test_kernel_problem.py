"""Problem files read without running them: size constants, the shape rule, --shape, the reference seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoagent.errors import ConfigError
from evoagent.targets.kernel.evaluator import check_contract
from evoagent.targets.kernel.problem import (
    Problem,
    is_reference_seed,
    parse_shape_overrides,
    reference_seed,
    scaled_constants,
    source_with,
)

SOFTMAX = Path(__file__).resolve().parents[2] / "examples" / "kernels" / "softmax.py"


def test_size_constants_are_the_module_level_integer_assignments() -> None:
    assert Problem.load(SOFTMAX).constants == {"batch_size": 16, "dim": 16384}


def test_a_file_without_the_problem_functions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    path.write_text("class Model: pass\n")
    with pytest.raises(ConfigError, match="lacks get_inputs, get_init_inputs"):
        Problem.load(path)


def test_the_shape_rule_halves_the_largest_size_above_16_until_the_inputs_fit() -> None:
    constants = {"batch_size": 16, "dim": 16384}
    assert scaled_constants(constants, 16 * 16384, 2**16) == ({"batch_size": 16, "dim": 8192}, "dim")
    assert scaled_constants(constants, 2**16, 2**16) == (constants, None)
    assert scaled_constants({"k": 3, "n": 16}, 10**9, 2**16) == ({"k": 3, "n": 16}, None)
    assert scaled_constants({"m": 64, "n": 32}, 10**9, 10, frozenset({"m"}))[1] == "n"


def test_shape_overrides_are_parsed_and_unknown_names_refused() -> None:
    assert parse_shape_overrides(["dim=1024", " batch_size = 4"]) == {"dim": 1024, "batch_size": 4}
    with pytest.raises(ConfigError, match="expected NAME=INTEGER"):
        parse_shape_overrides(["dim"])
    with pytest.raises(ConfigError, match="has no integer constant 'width'"):
        Problem.load(SOFTMAX).with_shape({"width": 3})


def test_source_with_replaces_only_the_constants_values() -> None:
    text = source_with(SOFTMAX.read_text(), {"dim": 100})
    assert "dim = 100\n" in text and "batch_size = 16\n" in text and "torch.softmax(x, dim=1)" in text


def test_the_reference_seed_is_the_model_renamed_without_the_input_functions() -> None:
    problem = Problem.load(SOFTMAX)
    seed = reference_seed(problem)
    assert "class ModelNew(nn.Module)" in seed and "get_inputs" not in seed and "class Model(" not in seed
    assert check_contract(seed) is None and is_reference_seed(problem, seed)
    assert not is_reference_seed(problem, seed + "\n")


def test_a_candidate_without_modelnew_forward_breaks_the_contract() -> None:
    assert "no module-level class 'ModelNew'" in (check_contract("class Model: pass\n") or "")
    assert "has no forward" in (check_contract("class ModelNew:\n    x = 1\n") or "")
