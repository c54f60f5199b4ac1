"""Runs in the sandboxed child: Triton's language module in the mode (interpreter or compiler) a call needs."""

from __future__ import annotations

import importlib
import sys

from .triton_compat import patch_interpreter


def ensure_triton_mode(interpret: bool) -> None:
    """Makes triton.language match the mode: its own @jit helpers (tl.zeros...) are built at import,
    as interpreter functions only if TRITON_INTERPRET was set then. A fork server that pre-imported
    triton in the other mode gets a fresh import (the compiled extension triton._C is kept)."""
    if "triton" not in sys.modules:
        if interpret:  # imported now, so the interpreter fixes below are in place before the candidate runs
            importlib.import_module("triton.language")
            patch_interpreter()
        return
    import triton.language as tl

    if (type(tl.zeros).__name__ == "InterpretedFunction") != interpret:
        stale = [m for m in sys.modules if m.split(".")[0] == "triton" and not m.startswith("triton._C")]
        for name in stale:
            del sys.modules[name]
        importlib.import_module("triton.language")
    if interpret:
        patch_interpreter()  # Triton 3.6's interpreter under NumPy 2.5, its autotuner without a driver
