"""The test tree's layout: pytest imports test modules by basename (no packages under tests/)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_python_files_under_tests_share_a_basename() -> None:
    # Two `test_x.py` in unit/ and integration/ fail collection with "import file mismatch", and a
    # helper module shadows another of its name, since tests/integration is on sys.path (conftest).
    places: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name not in ("conftest.py", "__init__.py") and "__pycache__" not in path.parts:
            if not {"cheats", "hostile", "honest"} & set(path.relative_to(TESTS).parts[:-1]):
                places[path.name].append(str(path.relative_to(TESTS)))
    shared = {name: sorted(paths) for name, paths in places.items() if len(paths) > 1}
    assert not shared, f"rename one of each: {shared}"
