"""A KernelBench-format problem file read without running it: its size constants, shape rule and reference seed."""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError

# Without a GPU, size constants are halved (largest first) until the inputs hold at most this many elements.
CPU_INPUT_ELEMENTS = 2**16
# On a GPU the test stage uses the same rule with this budget (the benchmark times the problem's own sizes).
GPU_TEST_INPUT_ELEMENTS = 2**22
# Constants at or below this are not sizes the rule scales (kernel sizes, strides, dims, groups).
MIN_SCALED_SIZE = 16
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REFERENCE_MARK = "# evoagent: the reference, as the starting point (scored as the baseline, never a kernel)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem file: `class Model(nn.Module)`, `get_inputs()`, `get_init_inputs()` and size constants.

    Attributes:
        path: the file (absolute).
        source: its text.
        constants: module-level `NAME = <int>` assignments, in file order (the sizes `--shape` may set).
    """

    path: Path
    source: str
    constants: Mapping[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Problem:
        """Reads and checks a problem file; a ConfigError says what is missing."""
        file = Path(path).resolve()
        if not file.is_file():
            raise ConfigError(f"kernel problem file {str(path)!r} does not exist")
        source = file.read_text()
        try:
            tree = ast.parse(source, filename=str(file))
        except SyntaxError as exc:
            raise ConfigError(f"kernel problem {str(path)!r} line {exc.lineno}: SyntaxError: {exc.msg}") from None
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if n not in names]
        if missing:
            raise ConfigError(f"kernel problem {str(path)!r} lacks {', '.join(missing)}; a problem file defines "
                              "class Model(nn.Module), get_inputs() and get_init_inputs() (the KernelBench format)")
        return cls(path=file, source=source, constants=size_constants(tree))

    def with_shape(self, overrides: Mapping[str, int]) -> dict[str, int]:
        """The constants with `--shape name=value` overrides applied; unknown names are refused."""
        unknown = [n for n in overrides if n not in self.constants]
        if unknown:
            raise ConfigError(f"--shape {unknown[0]}: problem {self.name!r} has no integer constant {unknown[0]!r}; "
                              f"its constants are {', '.join(self.constants) or 'none'}")
        bad = [n for n, v in overrides.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1]
        if bad:
            raise ConfigError(f"--shape {bad[0]}={overrides[bad[0]]!r}: a size must be a positive integer")
        return {**self.constants, **overrides}


def size_constants(tree: ast.Module) -> dict[str, int]:
    """Module-level `NAME = <int literal>` assignments (the last one of a name wins, as when run)."""
    found: dict[str, int] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and type(node.value.value) is int):
            found[node.targets[0].id] = node.value.value
    return found


def parse_shape_overrides(items: list[str] | None) -> dict[str, int]:
    """`--shape name=value` arguments as a dict; a malformed one is refused with the expected form."""
    out: dict[str, int] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not _NAME.match(name.strip()) or not value.strip().lstrip("-").isdigit():
            raise ConfigError(f"--shape {item!r}: expected NAME=INTEGER, e.g. --shape dim=1024")
        out[name.strip()] = int(value)
    return out


def scaled_constants(constants: Mapping[str, int], elements: int, budget: int,
                     fixed: frozenset[str] = frozenset()) -> tuple[dict[str, int], str | None]:
    """One step of the shape rule: the largest constant above MIN_SCALED_SIZE (not in `fixed`) halved,
    or None when the inputs fit `budget` or nothing can be halved. Returns (constants, the name halved)."""
    if elements <= budget:
        return dict(constants), None
    scalable = [(v, n) for n, v in constants.items() if v > MIN_SCALED_SIZE and n not in fixed]
    if not scalable:
        return dict(constants), None
    _, name = max(scalable)
    return {**constants, name: max(MIN_SCALED_SIZE, constants[name] // 2)}, name


def reference_seed(problem: Problem) -> str:
    """The first version of a search: the reference's Model renamed ModelNew (it computes with torch ops, so
    it is scored as the baseline and is never a kernel the lineage keeps)."""
    tree = ast.parse(problem.source)
    inputs = ("get_inputs", "get_init_inputs")
    body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name in inputs)]
    lines = problem.source.splitlines()
    kept: list[str] = []
    for node in body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        assert node.end_lineno is not None  # Check internal correctness.
        kept.append("\n".join(lines[start - 1:node.end_lineno]))
    text = "\n".join(kept)
    text = re.sub(r"\bclass Model\b", "class ModelNew", text, count=1)
    text = re.sub(r"\bsuper\(Model, self\)", "super(ModelNew, self)", text)
    return f"{REFERENCE_MARK}\n{text}\n"


def is_reference_seed(problem: Problem, source: str) -> bool:
    """Whether `source` is exactly the reference seed of `problem` (scored as the baseline)."""
    return source == reference_seed(problem)


def source_with(source: str, constants: Mapping[str, int]) -> str:
    """The problem's source with its size constants set to `constants` (the assignment's value replaced)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and type(node.value.value) is int
                and node.targets[0].id in constants and node.value.lineno == node.value.end_lineno):
            edits.append((node.value.lineno, node.value.col_offset, node.value.end_col_offset,
                          str(int(constants[node.targets[0].id]))))
    for line, start, end, text in sorted(edits, reverse=True):
        raw = lines[line - 1].encode()  # ast offsets count UTF-8 bytes
        lines[line - 1] = (raw[:start] + text.encode() + raw[end or len(raw):]).decode()
    return "".join(lines)
