"""Templates the offline policy applies to a problem's reference seed; the suite's table and fast_p; the CLI wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoagent import assemble
from evoagent.cli import build_parser
from evoagent.errors import ConfigError
from evoagent.knowledge import KnowledgeBase
from evoagent.targets.kernel import Problem, knowledge_dir, reference_seed
from evoagent.targets.kernel.suite import SuiteRow, fast_p, problems, table
from evoagent.targets.kernel.templates import kernel_for, recipe_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"


@pytest.mark.parametrize(("name", "family"), [("softmax", "row-softmax"), ("layer_norm", "row-layer-norm"),
                                              ("bias_gelu", "elementwise"), ("sum_reduction", "row-sum"),
                                              ("matmul_relu", None)])
def test_the_reference_forward_is_read_as_its_operator_family(name: str, family: str | None) -> None:
    found = kernel_for(Problem.load(EXAMPLES / f"{name}.py"))
    assert (found[0] if found else None) == family
    if found:
        assert "class ModelNew(nn.Module)" in found[1] and "@triton.jit" in found[1]
        assert "# evo: choices" in found[1]  # knobs the offline policy moves after the template


def test_the_template_recipe_applies_to_the_reference_seed_only(tmp_path: Path) -> None:
    problem = Problem.load(EXAMPLES / "softmax.py")
    (tmp_path / "t.md").write_text(recipe_document(problem) or "")
    recipe = next(r for r in KnowledgeBase([tmp_path], builtin=False).recipes() if r.id == "template-row-softmax")
    seed = reference_seed(problem)
    assert recipe.applies(seed)
    assert recipe.apply(seed) == kernel_for(problem)[1]  # type: ignore[index]
    assert not recipe.applies(kernel_for(problem)[1])  # type: ignore[index]


def test_the_kernel_documents_load_and_name_their_families() -> None:
    kb = KnowledgeBase([knowledge_dir()], builtin=False)
    text = " ".join(doc.text for doc in kb.documents)
    for word in ("elementwise", "reduction", "softmax", "epilogue", "implicit GEMM"):
        assert word.lower() in text.lower()


def test_fast_p_counts_correct_problems_faster_than_p() -> None:
    rows = [SuiteRow(problem="a", trials=3, correct=True, speedup_vs_eager=2.0),
            SuiteRow(problem="b", trials=3, correct=True, speedup_vs_eager=1.2, speedup_vs_compile=0.5),
            SuiteRow(problem="c", trials=3, correct=False),
            SuiteRow(problem="d", trials=3, correct=True, speedup_vs_eager=0.5)]
    assert fast_p(rows, 1.0) == 0.5 and fast_p(rows, 1.5) == 0.25 and fast_p([], 1.0) == 0.0
    text = table(rows)
    assert "| b | 3 | yes | 1.2 | 0.5 |" in text and "| c | 3 | no | - | - |" in text
    assert "fast_1 = 0.50, fast_1.5 = 0.25 over 4 problems" in text


def test_a_suite_folder_lists_its_problem_files_only() -> None:
    names = [p.name for p in problems(EXAMPLES)]
    assert names == ["bias_gelu", "layer_norm", "matmul_relu", "softmax", "sum_reduction"]
    with pytest.raises(ConfigError, match="does not exist"):
        problems(EXAMPLES / "missing")


def test_the_cli_parses_run_check_and_suite_for_the_kernel_target() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "kernel", "p.py", "--shape", "dim=64", "--trials", "2"])
    assert args.config == "kernel" and args.problem == "p.py" and args.shape == ["dim=64"]
    args = parser.parse_args(["check", "kernel", "p.py", "c.py", "--json", "--no-compile"])
    assert args.target == "kernel" and args.problem == "p.py" and args.file == "c.py" and args.no_compile
    args = parser.parse_args(["suite", "kernel", "examples/kernels", "--trials", "3"])
    assert args.folder == "examples/kernels" and args.trials == 3


def test_the_builtin_kernel_config_starts_from_the_reference_seed() -> None:
    config = assemble.builtin_config("kernel", problem=str(EXAMPLES / "softmax.py"), shape={"dim": 64})
    assert config.evaluator.target == "kernel" and config.evaluator.params["shape"] == {"dim": 64}
    seed = assemble.seed_paths(config)[0]
    assert seed.read_text() == reference_seed(Problem.load(EXAMPLES / "softmax.py"))
    same = assemble.builtin_config(f"kernel:{EXAMPLES / 'softmax.py'}")
    assert same.seeds == config.seeds
    with pytest.raises(ConfigError, match="needs a problem file"):
        assemble.builtin_config("kernel")
    with pytest.raises(ConfigError, match="--suite is for the attention target"):
        assemble.builtin_config("kernel", problem=str(EXAMPLES / "softmax.py"), suite="smoke")
    with pytest.raises(ConfigError, match="for the kernel target"):
        assemble.builtin_config("attention", problem="p.py")
