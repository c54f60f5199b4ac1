"""Object references: "module:Name" or "file.py:Name" strings that name a class or function (a leaf module).

Specs stored with a run name their evaluator, operator and score functions this way, so that a
run can be rebuilt in another process.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .errors import ConfigError

# Built-in targets: name -> (evaluator class, default seed files shipped with the package).
BUILTIN_TARGETS = {"attention": "evoagent.targets.attention:AttentionEvaluator",
                   "kernel": "evoagent.targets.kernel:KernelEvaluator"}


def load_object(reference: str, base_dir: str | os.PathLike[str] | None = None) -> Any:
    """Imports "package.module:Name" or "path/to/file.py:Name" (relative to base_dir)."""
    if reference in BUILTIN_TARGETS:
        reference = BUILTIN_TARGETS[reference]
    module_part, sep, name = reference.partition(":")
    if not sep or not name:
        raise ConfigError(f"cannot load {reference!r}: expected 'module:Name', 'file.py:Name' or a built-in target "
                          f"({', '.join(sorted(BUILTIN_TARGETS))})")
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise ConfigError(f"cannot load {reference!r}: file {str(path)!r} does not exist")
        module = _load_file(reference, path)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ConfigError(f"cannot load {reference!r}: {exc}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigError(f"cannot load {reference!r}: {module_part} has no attribute {name!r}") from None


def _load_file(reference: str, path: Path) -> Any:
    """Executes a user's module file once, with its folder on sys.path (so it may import its neighbours)."""
    module_name = f"evoagent_user_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # like `python evaluator.py`: `from helpers import x` finds helpers.py beside it
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None  # Check internal correctness.
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        what = (f"has a syntax error: {exc.msg}" if isinstance(exc, SyntaxError)
                else f"raised {type(exc).__name__}: {exc}")
        raise ConfigError(f"cannot load {reference!r}: {_where(exc, path)} {what}{_hint(exc, path)}") from None
    return module


def _where(exc: BaseException, path: Path) -> str:
    """'file.py line N' of the deepest frame in the user's folder (the module itself when none is)."""
    frames = traceback.extract_tb(exc.__traceback__)
    folder = path.resolve().parent
    mine = [f for f in frames if Path(f.filename).resolve().parent == folder] if frames else []
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{Path(exc.filename).name} line {exc.lineno}"
    if mine:
        return f"{Path(mine[-1].filename).name} line {mine[-1].lineno}"
    return path.name


def _hint(exc: BaseException, path: Path) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return (f" (hint: install {exc.name!r} in this Python, or put {exc.name}.py beside {path.name}: "
                f"its folder {str(path.resolve().parent)!r} is on sys.path)")
    return " (hint: run `python " + str(path) + "` to see the full traceback)"


def class_reference(obj: Any) -> str:
    """'module:QualName' for importable classes and functions, 'path/file.py:QualName' otherwise."""
    module = sys.modules.get(obj.__module__)
    spec = getattr(module, "__spec__", None)
    if module is not None and spec is not None and spec.name == obj.__module__ and not obj.__module__.startswith(
            "evoagent_user_") and obj.__module__ != "__main__":
        return f"{obj.__module__}:{obj.__qualname__}"
    return f"{inspect.getfile(obj)}:{obj.__qualname__}"
