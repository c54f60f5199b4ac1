"""Every example problem: its honest ModelNew passes; one calling the reference's ops, a wrong one and one
reusing its results do not (the dishonest ones are built here from the honest file and the problem)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.kernel import KernelEvaluator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "kernels"
PROBLEMS = ("softmax", "layer_norm", "bias_gelu", "matmul_relu", "sum_reduction")
# One edit per example that makes its honest kernel wrong (each a mistake an agent could make).
WRONG = {
    "softmax": ('other=-float("inf")', "other=0.0"),  # masked lanes join the sum on ragged rows
    "layer_norm": ("tl.sum(centred * centred, axis=0)", "tl.sum(x * x, axis=0)"),  # variance without centring
    "bias_gelu": ("offsets % n_cols", "offsets % 7"),  # the wrong bias element
    "matmul_relu": ("acc = tl.maximum(acc, 0.0)", "acc = acc"),  # the epilogue forgotten
    "sum_reduction": ("rows[:, None] < R)", "rows[:, None] < R - 1)"),  # the last row skipped
}
REUSE = '''

_Kernel = ModelNew
_MEMORY = {}


class ModelNew(_Kernel):
    def forward(self, *inputs):
        key = tuple(tuple(x.shape) for x in inputs)
        if key not in _MEMORY:
            _MEMORY[key] = _Kernel.forward(self, *inputs)
        return _MEMORY[key]
'''


def calls_reference(honest: str, problem: str) -> str:
    """The honest file whose forward launches its kernels, then returns the reference's own computation."""
    tree = ast.parse(problem)
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model")
    forward = next(n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    text = textwrap.dedent(ast.get_source_segment(problem, forward) or "").replace("def forward(", "def _reference(", 1)
    return (honest + "\nimport torch.nn.functional as F  # noqa\n\n" + text
            + "\n\n_Kernel = ModelNew\n\n\nclass ModelNew(_Kernel):\n    def forward(self, *inputs):\n"
            "        _Kernel.forward(self, *inputs)\n        return _reference(self, *inputs)\n")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(KernelEvaluator(EXAMPLES / "softmax.py").sandbox_config()) as sb:
        yield sb


@pytest.fixture(scope="module")
def evaluators(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KernelEvaluator]:
    cache = tmp_path_factory.getbasetemp() / "kernel-examples-cache" / "static"
    return {name: KernelEvaluator(EXAMPLES / f"{name}.py", cache_dir=cache, seed=11, baselines=False)
            for name in PROBLEMS}


def _check_and_test(evaluator: KernelEvaluator, sandbox: Sandbox, source: str):
    return evaluator.evaluate(Candidate.from_source(source, entry="kernel.py"), sandbox, stages=("check", "test"))


@pytest.mark.parametrize("name", PROBLEMS)
def test_each_example_judges_honest_ok_and_the_dishonest_variants_not_ok(
        name: str, sandbox: Sandbox, evaluators: dict[str, KernelEvaluator]) -> None:
    evaluator = evaluators[name]
    honest = (EXAMPLES / "solutions" / f"{name}.py").read_text()
    result = _check_and_test(evaluator, sandbox, honest)
    assert result.status is Status.OK, result.reason

    old, new = WRONG[name]
    assert honest.count(old) == 1
    result = _check_and_test(evaluator, sandbox, honest.replace(old, new))
    assert result.status is Status.INCORRECT, result.reason

    result = _check_and_test(evaluator, sandbox, calls_reference(honest, (EXAMPLES / f"{name}.py").read_text()))
    assert result.status is Status.ILLEGAL, result.reason

    result = _check_and_test(evaluator, sandbox, honest + REUSE)
    assert result.status in (Status.ILLEGAL, Status.INCORRECT), result.reason
