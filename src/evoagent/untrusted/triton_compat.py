"""Fixes to older Triton interpreters (the GPU machine's Triton 3.6) so candidates run and are measured without a GPU.

Two gaps of Triton 3.6.0's interpreter, both fixed in later releases, stop a kernel on the CPU:

- `tensor.__index__` is `int(handle.data)`, and NumPy 2.5 no longer converts a one-element array of
  one or more dimensions to a Python int (`range(lo, hi, BLOCK_N)` over program-id arithmetic
  fails with "only 0-dimensional arrays can be converted to Python scalars"); Triton 3.9 squeezes
  the array first, as the patch here does (`.item()`);
- the autotuner benchmarks its configs even when pruning left one, and benchmarking needs a GPU
  driver ("0 active drivers"); Triton 3.9 skips the benchmark for a lone config. Under the
  interpreter there is nothing to time: the patch gives every config the same time without
  running it, so the autotuner keeps the first surviving one.

`patch_interpreter()` applies only the fixes the imported Triton lacks (read from its own source),
once per import of Triton, and is a no-op for a Triton that needs neither.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

_MARK = "_evoagent_compat"


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() not in ("", "0", "false", "off")


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # no source on disk: assume a current Triton
        return ""


def patch_interpreter() -> list[str]:
    """Patches the imported Triton's interpreter and autotuner where they need it; returns what was patched."""
    if "triton" not in sys.modules:
        return []
    from triton.runtime import autotuner, interpreter

    applied = getattr(interpreter, _MARK, None)
    if applied is not None:
        return list(applied)
    applied = []
    lang_tensor = getattr(interpreter, "_patch_lang_tensor", None)
    if lang_tensor is not None and "int(self.handle.data)" in _source(lang_tensor):
        interpreter._patch_lang_tensor = _index_fixed(lang_tensor)
        applied.append("tensor.__index__ of a one-element array")
    tuner = getattr(autotuner, "Autotuner", None)
    run_source = _source(getattr(tuner, "run", None))
    if tuner is not None and "def benchmark" in run_source and "len(pruned_configs) == 1" not in run_source:
        tuner._bench = _bench_skipped_when_interpreting(tuner._bench)
        applied.append("autotuner benchmark under the interpreter")
    setattr(interpreter, _MARK, tuple(applied))
    return applied


def _index_fixed(original: Any) -> Any:
    def _patch_lang_tensor(tensor: Any, scope: Any) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    return _patch_lang_tensor


def _bench_skipped_when_interpreting(original: Any) -> Any:
    def _bench(self: Any, *args: Any, config: Any, **meta: Any) -> Any:
        if _interpreting():
            return [0.0, 0.0, 0.0]  # (median, 20th, 80th percentile): nothing to time without a GPU
        return original(self, *args, config=config, **meta)

    return _bench
