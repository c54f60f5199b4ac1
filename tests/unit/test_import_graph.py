"""The modules of src/evoagent import each other one way: no cycle, counting every import statement."""

from __future__ import annotations

import ast
from pathlib import Path

import evoagent

PACKAGE_DIR = Path(evoagent.__file__).parent


def _module_names(package_dir: Path) -> dict[str, Path]:
    names = {}
    for path in package_dir.rglob("*.py"):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The package's modules one import statement loads.

    `a.b.c` loads the package `a.b` first, so that counts too; the root package is counted only when
    it is imported by name (every module passes through it, and it re-exports the public names).
    """
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    loaded = []
    for target in targets:
        parts = target.split(".")
        for end in range(1 if len(parts) == 1 else 2, len(parts) + 1):
            name = ".".join(parts[:end])
            if name in known and name != module and not module.startswith(name + "."):
                loaded.append(name)
    return loaded


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere: top level, in functions, under TYPE_CHECKING.

    Parsed with ast; nothing is imported.
    """
    known = _module_names(package_dir)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_imported(name, path, node, known))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_package_modules_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_a_function_or_type_checking_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n")
    (package / "c.py").write_text("def f():\n    from .a import A\n")
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(package)) == []


def test_a_subpackage_init_counts_as_imported():
    graph = import_graph()
    # `from ..records import Usage` in llm/base.py; `from .operators.base import ...` loads operators/__init__
    assert "evoagent.records" in graph["evoagent.llm.base"]
    assert {"evoagent.operators", "evoagent.operators.base"} <= graph["evoagent.engine"]
