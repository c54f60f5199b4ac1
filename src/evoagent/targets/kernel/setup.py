"""What a kernel search starts from: the reference seed file and the problem's template document, written once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .problem import Problem, reference_seed
from .templates import recipe_document


def work_dir(problem: Problem) -> Path:
    """$EVOAGENT_CACHE_DIR/kernel/<problem digest>: the generated seed and template document of a problem."""
    root = os.environ.get("EVOAGENT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evoagent")
    return Path(root) / "kernel" / f"{problem.name}-{problem.digest}"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def seed_file(problem: Problem) -> Path:
    """The reference seed (the problem's Model as ModelNew) as a file a run can start from."""
    return _write(work_dir(problem) / "seed" / "kernel.py", reference_seed(problem))


def template_dir(problem: Problem) -> Path | None:
    """A folder holding the problem's template recipe document, or None when no template fits its forward."""
    document = recipe_document(problem)
    if document is None:
        return None
    _write(work_dir(problem) / "templates" / f"{problem.name}-templates.md", document)
    return work_dir(problem) / "templates"


def run_tables(problem_path: str, *, shape: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The built-in kernel run's config tables (`evoagent run kernel PROBLEM.py`): the reference seed, chain."""
    problem = Problem.load(problem_path)
    params: dict[str, Any] = {"problem": str(problem.path)}
    if shape:
        params["shape"] = dict(shape)
    return {
        "seeds": [str(seed_file(problem))],
        "evaluator": {"target": "kernel", "params": params},
        "population": {"kind": "chain", "confirm": 1},  # timings are noisy: re-measure once before committing
        "budget": {"trials": 6, "usd": 20.0},
        "operator": {"kind": "agentic"},
    }
