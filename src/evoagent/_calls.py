"""A sandboxed call checked and pickled in the trusted process: `prepare_call` and its `PreparedCall`.

`Sandbox.call` prepares every call here, and executors that run calls elsewhere (`ray_executor.py`)
send the prepared call to a worker's own `Sandbox`. A bad argument raises at once, in the caller.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .confinement import writable_dirs

if TYPE_CHECKING:
    from .channel import Driver

__all__ = ["PreparedCall", "prepare_call"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedCall:
    """One call, checked and pickled in the trusted process, ready for any sandbox to run.

    Attributes:
        blob: pickle of (fn, args), unpickled only in the sandboxed child.
        module_files: module name -> file of the modules the blob refers to (loaded by path if needed).
        files: relative path -> bytes for the child's working directory.
        timeout_s: the call's limit in seconds; None for the running sandbox's `config.timeout_s`.
        env: variables added to the call's environment.
        write_paths: absolute folders this call alone may also write (e.g. one candidate's compile caches).
        function: 'module.qualname' of the called function (named when its return value cannot be carried).
        driver: the trusted half of a driven call (`channel.Driver`), run beside the child where the call runs.
    """

    blob: bytes
    module_files: Mapping[str, str]
    files: Mapping[str, bytes]
    timeout_s: float | None
    env: Mapping[str, str]
    write_paths: tuple[str, ...] = ()
    function: str = ""
    driver: Driver | None = None


def prepare_call(fn: Callable[..., Any], args: tuple[Any, ...], *, files: Mapping[str, str | bytes] | None = None,
                 timeout_s: float | None = None, env: Mapping[str, str] | None = None,
                 write_paths: Sequence[str | os.PathLike[str]] = (), driver: Driver | None = None) -> PreparedCall:
    """Checks a call's arguments (raising at once on bad input) and pickles it; see `Sandbox.call`."""
    if driver is not None:
        from .channel import Driver as DriverType

        if not isinstance(driver, DriverType):
            raise TypeError(f"Sandbox.call driver must be a channel.Driver (got {driver!r})")
    blob, module_files = _pickle_call(fn, args)
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or not 0 < timeout_s < math.inf):
        raise ValueError(f"timeout_s must be a positive number of seconds (got {timeout_s!r})")
    return PreparedCall(blob=blob, module_files=module_files, files=_check_files(files),
                        timeout_s=None if timeout_s is None else float(timeout_s), env=_check_env(env),
                        write_paths=writable_dirs(write_paths, "Sandbox.call write_paths"),
                        function=f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}",
                        driver=driver)


def _check_function(fn: Any) -> None:
    """Raises TypeError unless `fn` can be imported by reference (module + qualified name) in the child."""
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    found: Any = sys.modules.get(module_name) if isinstance(module_name, str) else None
    for part in qualname.split(".") if isinstance(qualname, str) and found is not None else ():
        found = getattr(found, part, None)
    if not callable(fn) or found is not fn or "<" in str(qualname):
        what = ("a lambda" if qualname == "<lambda>" else "a nested function or closure"
                if "<locals>" in str(qualname) else f"a {type(fn).__name__} not found under its own name")
        raise TypeError(f"Sandbox.call needs a module-level function, imported by reference in the child "
                        f"(got {fn!r}, {what}); pass a module-level function defined with def")
    if module_name == "__main__" and not getattr(sys.modules["__main__"], "__file__", None):
        raise TypeError(f"Sandbox.call cannot import {qualname!r} from an interactive __main__ (a notebook?); "
                        "pass a module-level function defined in a module file")


class _RecordingPickler(pickle.Pickler):
    """Notes the modules of the functions, classes and objects it pickles (to load them by path if needed)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        owner = obj if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) else type(obj)
        module = getattr(owner, "__module__", None)
        if isinstance(module, str):
            self.modules.add(module)
        return NotImplemented


def _pickle_call(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bytes, dict[str, str]]:
    _check_function(fn)
    buffer = io.BytesIO()
    pickler = _RecordingPickler(buffer)
    try:
        pickler.dump((fn, args))
    except Exception as exc:
        raise TypeError(f"Sandbox.call arguments of {fn.__qualname__} must be picklable "
                        f"({type(exc).__name__}: {exc})") from None
    files = {}
    for name in pickler.modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(path, str):
            files[name] = os.path.abspath(path)
    return buffer.getvalue(), files


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str) for k, v in env.items()
    ):
        raise TypeError(f"Sandbox.call env must map variable names to strings (got {env!r})")
    return dict(env)


def _check_files(files: Mapping[str, str | bytes] | None) -> dict[str, bytes]:
    checked: dict[str, bytes] = {}
    for name, data in (files or {}).items():
        pure = PurePosixPath(name) if isinstance(name, str) else None
        if pure is None or not name or pure.is_absolute() or ".." in pure.parts or "\\" in name:
            raise ValueError(f"Sandbox.call file name {name!r} must be a relative path without '..'")
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"Sandbox.call file {name!r} must be str or bytes (got {type(data).__name__})")
        checked[str(pure)] = data.encode() if isinstance(data, str) else data
    return checked
