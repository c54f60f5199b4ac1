"""Static compile report of a CUDA candidate: nvcc compiles CUDA_SOURCE to a cubin per arch, no GPU needed.

nvcc runs here, in the trusted process's machine, on text that passed `cuda_legality` (only CUDA and
standard headers, so the compile reads nothing of the candidate's choosing), with the flags the
build on a GPU uses (`cuda_build.nvcc_flags`) plus `-cubin -Xptxas -v --keep` (the PTX comes from
the kept intermediates). The cubin is examined with cuobjdump as Triton's are (`static.sass_mix`,
`static.resource_usage`, `static.ptx_mix`), one entry per `__global__` kernel, and the report has
the same shape as the Triton report (`static.summarise`), so the agent, the report and the offline
policy read both alike. Compiler messages name kernel.py lines (the `#line` directive of
`CudaSource.for_compiler`). Reports are cached by (source, arch, nvcc version, flags).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...result import StageResult, Status
from .cuda_build import nvcc_flags
from .cuda_source import TORCH_NVCC_FLAGS, CudaSource, constexpr_ints
from .static import StaticCompiler, compact_report, ptx_mix, resource_usage, sass_mix, tool_path

REPORT_VERSION = 2
CONFIG = "any shape"  # a CUDA kernel is compiled once, whatever the shapes it is launched for
_CUDA_BIN = Path("/usr/local/cuda/bin")
_MESSAGE = re.compile(r"^(?P<file>[^\s:()]+)\((?P<line>\d+)\): (?P<kind>error|catastrophic error)[^:]*: (?P<msg>.*)$",
                      re.M)
_PTXAS_ERROR = re.compile(r"^ptxas (?:error|fatal)\s*:\s*(?P<msg>.*)$", re.M)
_SASS_FUNCTION = re.compile(r"^\s*Function : (\S+)\s*$", re.M)
_PTX_ENTRY = re.compile(r"\.entry\s+([\w$]+)\s*\(")


def cuda_tool(name: str) -> str | None:
    """A CUDA toolkit binary: on PATH, else /usr/local/cuda/bin (cuobjdump: also Triton's copy)."""
    if name == "cuobjdump" and tool_path(name) is not None:
        return str(tool_path(name))
    found = shutil.which(name) or (str(_CUDA_BIN / name) if (_CUDA_BIN / name).is_file() else None)
    return found


@functools.cache
def nvcc_version() -> str:
    """The last line of `nvcc --version` ('Build cuda_13.0...'), or 'none' without nvcc."""
    nvcc = cuda_tool("nvcc")
    if nvcc is None:
        return "none"
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    return (out.strip().splitlines() or ["unknown"])[-1]


def cache_key(text: str, arch: str) -> str:
    blob = json.dumps([REPORT_VERSION, "cuda", text, arch, nvcc_version(), TORCH_NVCC_FLAGS, nvcc_flags(arch)])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def demangle(name: str) -> str:
    """The qualified name of an Itanium-mangled C++ function, without its parameters ('_Z3fooPf' -> 'foo')."""
    if not name.startswith("_Z"):
        return name
    rest, parts = name[2:], []
    nested = rest.startswith("N")
    rest = rest[1:] if nested else rest
    while (match := re.match(r"(\d+)", rest)) is not None:
        size = int(match.group(1))
        start = len(match.group(1))
        parts.append(rest[start:start + size])
        rest = rest[start + size:]
        if not nested:
            break
    return "::".join(parts) or name


def kernel_names(mangled: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{mangled: (kernel, config)}: a template's arguments are its config ('attention_kernel', '__half, 128, true'),
    a plain kernel's config is CONFIG. Uses c++filt when present, else names without template arguments."""
    filt = shutil.which("c++filt") or shutil.which("cu++filt")
    shown = list(mangled)
    if filt is not None and mangled:
        out = subprocess.run([filt, *mangled], capture_output=True, text=True, timeout=60).stdout.splitlines()
        shown = out if len(out) == len(mangled) else shown
    return {name: _kernel_and_config(name, text) for name, text in zip(mangled, shown)}


def _kernel_and_config(mangled: str, text: str) -> tuple[str, str]:
    if text == mangled:
        return demangle(mangled), CONFIG
    depth, head = 0, text
    for i, char in enumerate(text):  # drop the parameter list: the last '(' at template depth 0
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "(" and depth == 0:
            head = text[:i]
    head = re.sub(r"^(?:void|int|float)\s+", "", head.strip())
    kernel, _, args = head.partition("<")
    return kernel.strip(), args[:-1].strip() if args.endswith(">") else CONFIG


def nvcc_errors(log: str, entry: str) -> list[dict[str, Any]]:
    """Compiler errors as {line, error}: nvcc's `kernel.py(21): error: ...` and ptxas's (which have no line)."""
    errors: list[dict[str, Any]] = [
        {"line": int(m.group("line")) if Path(m.group("file")).name == entry else None,
         "error": m.group("msg").strip()} for m in _MESSAGE.finditer(log)]
    errors += [{"line": None, "error": f"ptxas: {m.group('msg').strip()}"} for m in _PTXAS_ERROR.finditer(log)]
    if not errors and log.strip():
        errors.append({"line": None, "error": log.strip().splitlines()[-1]})
    return errors


def compile_cubin(text: str, arch: str, *, entry: str = "kernel.py", timeout_s: float = 180.0) -> dict[str, Any]:
    """nvcc -cubin for `arch`: {ok, cubin (bytes or None), ptx, log, errors [{line, error}], seconds}."""
    nvcc = cuda_tool("nvcc")
    if nvcc is None:
        missing = "nvcc not found (install the CUDA toolkit to check CUDA candidates)"
        return {"ok": False, "cubin": None, "ptx": "", "log": "", "seconds": 0.0, "missing_tool": True,
                "errors": [{"line": None, "error": missing}]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evoagent-nvcc-") as tmp:
        source, cubin = Path(tmp) / "candidate.cu", Path(tmp) / "candidate.cubin"
        source.write_text(text)
        command = [nvcc, "-cubin", *TORCH_NVCC_FLAGS, *nvcc_flags(arch), "-Xptxas", "-v", "--keep", "--keep-dir", tmp,
                   "-o", str(cubin), str(source)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"ok": False, "cubin": None, "ptx": "", "log": "", "seconds": timeout_s,
                    "errors": [{"line": None, "error": f"nvcc took longer than {timeout_s:g} s"}]}
        log = done.stdout + done.stderr
        ok = done.returncode == 0 and cubin.is_file()
        ptx = next((p.read_text(errors="replace") for p in Path(tmp).glob("*.ptx")), "")
        return {"ok": ok, "cubin": cubin.read_bytes() if ok else None, "ptx": ptx, "log": log,
                "errors": [] if ok else nvcc_errors(log, entry), "seconds": round(time.perf_counter() - started, 3)}


def _split(text: str, pattern: re.Pattern[str]) -> dict[str, str]:
    """Sections of a listing keyed by the name each header line (matched by `pattern`) gives."""
    marks = list(pattern.finditer(text))
    return {m.group(1): text[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)]
            for i, m in enumerate(marks)}


def analyse_cubin(cubin: bytes, timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """{mangled function: {resources, sass}} of every kernel in one cubin (empty without cuobjdump)."""
    cuobjdump = cuda_tool("cuobjdump")
    if cuobjdump is None:
        return {}
    with tempfile.TemporaryDirectory(prefix="evoagent-cubin-") as tmp:
        path = Path(tmp) / "candidate.cubin"
        path.write_bytes(cubin)
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", str(path)], capture_output=True, text=True,
                               timeout=timeout_s).stdout
        sass = subprocess.run([cuobjdump, "--dump-sass", str(path)], capture_output=True, text=True,
                              timeout=timeout_s).stdout
    listings = _split(sass, _SASS_FUNCTION)
    return {name: {"resources": resources, "sass": sass_mix(listings.get(name, ""))}
            for name, resources in resource_usage(usage).items()}


def cuda_report(cuda: CudaSource, arch: str, *, entry: str = "kernel.py", timeout_s: float = 180.0) -> dict[str, Any]:
    """One arch's static report of a CUDA candidate, in the shape of `static.summarise`'s."""
    compiled = compile_cubin(cuda.for_compiler(entry), arch, entry=entry, timeout_s=timeout_s)
    kernels = []
    if compiled["ok"]:
        ptx = _split(compiled["ptx"], _PTX_ENTRY)
        analysed = analyse_cubin(compiled["cubin"])
        names = kernel_names(list(analysed))
        constants = constexpr_ints(cuda.text)  # BLOCK_*, NUM_WARPS, NUM_STAGES by convention (docs/cuda.md)
        for name, found in analysed.items():
            resources = found["resources"]
            kernel, config = names[name]
            kernels.append({
                "kernel": kernel, "config": config, "num_warps": constants.get("NUM_WARPS"),
                "num_stages": constants.get("NUM_STAGES"), "shared_bytes": resources.get("static_shared_bytes", 0),
                "blocks": {k: v for k, v in constants.items() if k.startswith("BLOCK_")}, "tmem_bytes": 0,
                "registers": resources.get("registers"), "stack_bytes": resources.get("stack_bytes"),
                "local_bytes": resources.get("local_bytes"), "sass": found["sass"], "ptx": ptx_mix(ptx.get(name, "")),
                "compile_seconds": compiled["seconds"], "autotune": None, "autotune_rank": None})
    errors = [{"kernel": "CUDA_SOURCE", "config": "nvcc", **e} for e in compiled["errors"]]
    registers = [k["registers"] for k in kernels if k["registers"] is not None]
    return {
        "ok": compiled["ok"] and bool(kernels), "oom": False, "language": "cuda", "errors": errors,
        "wrapper_errors": [], "kernels": kernels, "skipped": [], "describes": _describes(kernels),
        "shared_bytes": max((k["shared_bytes"] for k in kernels), default=0),
        "registers": max(registers, default=None),
        "spill_bytes": sum(k["stack_bytes"] or 0 for k in kernels),
        "spill_instructions": sum(k["sass"].get("spill_instructions", 0) for k in kernels),
        "compile_seconds": compiled["seconds"], "cuobjdump": cuda_tool("cuobjdump") is not None,
        "missing_tool": bool(compiled.get("missing_tool")),
        "compiler_output": "\n".join(compiled["log"].strip().splitlines()[-40:]),
    }


def _describes(kernels: Sequence[dict[str, Any]]) -> str:
    if not kernels:
        return ""
    counts = Counter(k["kernel"] for k in kernels)
    names = ", ".join(f"{name} ({n} template instantiations)" if n > 1 else name for name, n in counts.items())
    return (f"{names}: every __global__ kernel of CUDA_SOURCE, each compiled once for every shape it is launched "
            "for; shared memory is the static part (dynamic shared memory is set at launch). Totals are the largest "
            "shared memory and registers and the summed spills over them.")


def first_error(reports: dict[str, Any], entry: str = "kernel.py") -> str | None:
    """The first nvcc/ptxas error across archs as one line naming its kernel.py line, or None."""
    for arch, report in reports.items():
        errors = report.get("errors") or []
        if errors:
            first = errors[0]
            where = f"{entry} line {first['line']}: " if first.get("line") else ""
            more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
            return f"{arch}: nvcc: {where}{first['error']}{more}"
    return None


class CudaStaticCompiler:
    """Compiles CUDA candidates for target archs with nvcc and caches the reports beside the Triton ones."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 180.0) -> None:
        self.cache = StaticCompiler(cache_dir)
        self.timeout_s = timeout_s

    def report(self, cuda: CudaSource, archs: Sequence[str], entry: str = "kernel.py") -> dict[str, Any]:
        """{arch: report} for `archs`, from the cache where the same text was compiled before."""
        reports = {}
        for arch in archs:
            key = cache_key(cuda.for_compiler(entry), arch)
            cached = self.cache.load_cached(key)
            if cached is not None:
                reports[arch] = {**cached, "cached": True}
                continue
            report = cuda_report(cuda, arch, entry=entry, timeout_s=self.timeout_s)
            if not report["missing_tool"]:
                self.cache.store_cached(key, report)
            reports[arch] = {**report, "cached": False}
        return reports


def check_stage(reports: dict[str, Any], entry: str = "kernel.py") -> StageResult:
    """The check stage's verdict on a legal CUDA candidate's reports: ok, compile_error (with the line) or illegal."""
    details = {"language": "cuda", "legality": [], "static": {arch: compact_report(r) for arch, r in reports.items()}}
    error = first_error(reports, entry)
    if error:
        missing = any(r.get("missing_tool") for r in reports.values())
        return StageResult.fail(Status.NEEDS_DEVICE if missing else Status.COMPILE_ERROR, error, details=details,
                                logs="\n".join(r.get("compiler_output", "") for r in reports.values()))
    if not any(r["kernels"] for r in reports.values()):
        return StageResult.fail(Status.ILLEGAL, "CUDA_SOURCE compiled to no __global__ kernel; the work must be done "
                                                "by kernels defined in it", details=details)
    return StageResult(details=details)


def check_candidate(source: str, findings: Sequence[Any], compiler: CudaStaticCompiler, archs: Sequence[str],
                    entry: str) -> StageResult:
    """A CUDA candidate's whole check stage (attention and kernel targets): how it builds CUDA_SOURCE, the
    Python scan's `findings` joined with the CUDA legality scan, then nvcc for each arch."""
    from ...errors import KernelSourceError
    from . import cuda_legality
    from .cuda_source import find_cuda_source
    from .judge import illegal

    try:
        cuda = find_cuda_source(source)
    except KernelSourceError as exc:
        return StageResult.fail(Status.COMPILE_ERROR, str(exc))
    problem = cuda_legality.check_build(source, cuda)
    if problem:
        return StageResult.fail(Status.COMPILE_ERROR, problem)
    found = sorted([*findings, *cuda_legality.scan_source(cuda)], key=lambda f: f.line)
    if found:
        return illegal(found)
    return check_stage(compiler.report(cuda, archs, entry), entry)
