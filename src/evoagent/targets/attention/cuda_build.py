"""Builds a CUDA candidate's `CUDA_SOURCE` into a Python module on a GPU, cached by source hash and architecture.

A CUDA kernel.py imports `load_extension` from here and calls it with its CUDA_SOURCE literal and
the names of its host functions (see docs/cuda.md). It wraps `torch.utils.cpp_extension.load_inline`
(nvcc and ninja): the declarations and the Python binding are generated from the source, the nvcc
flags are fixed (`cuda_source.NVCC_FLAGS` plus the device's `-gencode`), and the build directory is
keyed by sha256 of (source, functions, flags, torch version) under `$EVOAGENT_CUDA_CACHE` (set by
the attention evaluator to a directory the sandbox may write), so a second call with the same text
loads the built module. Nothing is imported from torch until a build is asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import KernelSourceError
from .cuda_source import GENCODE, NVCC_FLAGS, find_cuda_source, host_declarations

CACHE_ENV = "EVOAGENT_CUDA_CACHE"
# Called with a host function's name before each call through an Extension: the evaluator's child
# counts these as launches (as it counts Triton launches), so a wrapper that computes nothing is caught.
CALL_HOOKS: list[Callable[[str], None]] = []
BUILD_VERSION = 1  # bump when the generated files change, so old builds are not reused


def build_directory_root() -> Path:
    """$EVOAGENT_CUDA_CACHE, else $EVOAGENT_CACHE_DIR/cuda, else ~/.cache/evoagent/cuda."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    root = os.environ.get("EVOAGENT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evoagent")
    return Path(root) / "cuda"


def toolkit_root(nvcc: str | None = None) -> Path | None:
    """The CUDA toolkit that holds the `nvcc` on PATH (links resolved), else the first of /usr/local/cuda,
    /usr/local/cuda-*, /opt/cuda that has bin/nvcc and include/cuda_runtime.h. A toolkit is recognised
    by those two files, so an `nvcc` that is a wrapper script outside the toolkit is not taken for one."""
    found = nvcc or shutil.which("nvcc")
    candidates = [Path(os.path.realpath(found)).parent.parent] if found else []
    candidates += [Path("/usr/local/cuda"), *sorted(Path("/usr/local").glob("cuda-*"), reverse=True), Path("/opt/cuda")]
    return next((c for c in candidates
                 if (c / "bin" / "nvcc").is_file() and (c / "include" / "cuda_runtime.h").is_file()), None)


def ensure_build_tools() -> dict[str, str]:
    """CUDA_HOME and ninja for torch's extension build; returns what it set.

    torch derives CUDA_HOME from the `nvcc` on PATH (its parent's parent): where that nvcc is a wrapper
    outside the toolkit the build compiles and then fails at link, so CUDA_HOME is set from the
    toolkit (`toolkit_root`) unless the environment sets it. ninja is looked for on PATH, then beside
    this Python (a venv's bin) and in the `ninja` package (`pip install 'evoagent[cuda]'`); its folder
    is put on PATH.
    """
    changed: dict[str, str] = {}
    if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
        root = toolkit_root()
        if root is not None:
            os.environ["CUDA_HOME"] = changed["CUDA_HOME"] = str(root)
            extension = sys.modules.get("torch.utils.cpp_extension")  # read CUDA_HOME when it was imported
            if extension is not None and getattr(extension, "CUDA_HOME", None) != str(root):
                extension.CUDA_HOME = str(root)  # type: ignore[attr-defined]
    if shutil.which("ninja") is None:
        folders = [Path(sys.executable).parent, Path(sys.prefix) / "bin"]
        try:
            import ninja  # type: ignore[import-not-found,unused-ignore]

            folders.append(Path(ninja.BIN_DIR))
        except (ImportError, AttributeError):
            pass
        found = next((f for f in folders if (f / "ninja").is_file() and os.access(f / "ninja", os.X_OK)), None)
        if found is None:
            raise RuntimeError("building a CUDA candidate needs ninja, found neither on PATH nor beside this Python; "
                               "pip install 'evoagent[cuda]' (or ninja), or apt-get install ninja-build")
        os.environ["PATH"] = changed["PATH"] = f"{found}{os.pathsep}{os.environ.get('PATH', '')}"
    return changed


def device_arch() -> str:
    """The current CUDA device as an nvcc target: 'sm_90a' on Hopper, 'sm_100a' on B200, else e.g. 'sm_89'."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    name = f"sm_{major}{minor}"
    return f"{name}a" if f"{name}a" in GENCODE else name


def gencode(arch: str) -> str:
    """The -gencode option that builds machine code for `arch` ('sm_90a', 'sm_100a', 'sm_89', ...)."""
    if arch in GENCODE:
        return GENCODE[arch]
    number = arch.removeprefix("sm_")
    if not number.isdigit():
        raise KernelSourceError(f"unknown CUDA architecture {arch!r}; expected 'sm_' and digits, or one of "
                                f"{sorted(GENCODE)}")
    return f"-gencode=arch=compute_{number},code=sm_{number}"


def nvcc_flags(arch: str) -> list[str]:
    """Every candidate's nvcc flags for `arch` (the static check adds only -cubin and -Xptxas -v)."""
    return [*NVCC_FLAGS, gencode(arch)]


def build_key(text: str, functions: Sequence[str], flags: Sequence[str]) -> str:
    """16 hex digits of sha256 over what decides the built module."""
    import torch

    blob = json.dumps([BUILD_VERSION, text, list(functions), list(flags), torch.__version__])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _as_compiled(source: str, caller_file: str | None) -> str:
    """`source` with the #line directive the static check uses, when it is the caller's CUDA_SOURCE literal."""
    if caller_file is None:
        return source
    try:
        found = find_cuda_source(Path(caller_file).read_text())
    except (OSError, SyntaxError, KernelSourceError):
        return source
    return found.for_compiler(Path(caller_file).name) if found.text == source else source


class Extension:
    """A built CUDA_SOURCE: its host functions as attributes, each call reported to CALL_HOOKS."""

    def __init__(self, module: ModuleType, functions: Sequence[str]) -> None:
        for name in functions:
            setattr(self, name, _reported(name, getattr(module, name)))

    def __getattr__(self, name: str) -> Any:  # only reached for names that are not host functions
        raise AttributeError(f"the CUDA extension has no host function {name!r}; list it in "
                             "load_extension(CUDA_SOURCE, functions=[...])")


def _reported(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        for hook in CALL_HOOKS:
            hook(name)
        return function(*args)

    call.__name__ = name
    return call


def load_extension(source: str, *, functions: Sequence[str]) -> Extension:
    """Builds (or loads the cached build of) `source` for the current device; returns its host functions.

    Args:
        source: the candidate's CUDA_SOURCE (CUDA C++: kernels and host launch functions; no torch headers).
        functions: names of host functions defined in `source` to call from Python, each taking and
            returning plain numbers (tensors as `int64_t` data pointers, the stream as `int64_t`).

    Raises:
        KernelSourceError: `functions` names a function the source does not define as expected.
        RuntimeError: nvcc or the linker failed (torch's message holds the compiler output, whose
            lines name kernel.py when `source` is the caller's CUDA_SOURCE literal).
    """
    if isinstance(functions, str) or not functions:
        raise KernelSourceError(f"load_extension functions must be a non-empty list of host function names "
                                f"(got {functions!r})")
    declarations = host_declarations(source, functions)
    text = _as_compiled(source, sys._getframe(1).f_globals.get("__file__"))
    flags = nvcc_flags(device_arch())
    key = build_key(text, functions, flags)
    directory = build_directory_root() / key
    directory.mkdir(parents=True, exist_ok=True)
    ensure_build_tools()
    from torch.utils.cpp_extension import load_inline

    module: ModuleType = load_inline(  # type: ignore[no-untyped-call]
        name=f"evoagent_cuda_{key}", cpp_sources=["#include <torch/extension.h>", declarations],
        cuda_sources=[text], functions=list(functions), extra_cuda_cflags=flags,
        build_directory=str(directory), no_implicit_headers=True, verbose=False)
    return Extension(module, functions)
