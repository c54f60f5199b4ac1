"""Static compile report: AOT-compile the launched Triton kernels per arch and profile the cubins, no GPU.

The candidate's kernels are captured and compiled in the sandbox child (`child.compile_launches`);
the cubins come back as bytes and are examined here, in the trusted process, with the `cuobjdump`
that Triton's NVIDIA backend ships: registers, stack (spills) and the SASS instruction mix, plus
counts from the PTX. Reports are cached on disk by (source hash, arch, Triton version, shapes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...confinement import cache_environment
from .suites import AttentionConfig

if TYPE_CHECKING:
    from ...executors import Executor

REPORT_VERSION = 6
SUPPORTED_ARCHS = ("sm_90a", "sm_100a")
# Largest dynamic shared memory one block may use (CUDA programming guide, compute capabilities table).
SHARED_LIMIT_BYTES = {"sm_90a": 232448, "sm_90": 232448, "sm_100a": 232448, "sm_100": 232448,
                      "sm_80": 166912, "sm_86": 101376, "sm_89": 101376}

_SASS_LINE = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)((?:\.[A-Z0-9_]+)*)")
_RESOURCE = re.compile(r"Function ([\w$.]+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_TENSOR_CORE_SASS = ("HGMMA", "HMMA", "IMMA", "QGMMA", "IGMMA", "BGMMA", "UTCHMMA", "UTCQMMA", "UTCIMMA",
                     "UTCOMMA", "UTCBAR")
_MEMORY_SASS = ("LDG", "LDGSTS", "STG", "LDS", "STS", "LDSM", "STSM", "UTMALDG", "UTMASTG", "UBLKCP",
                "LDL", "STL", "MUFU", "BAR")
_PTX_PATTERNS = {
    "wgmma.mma_async": r"\bwgmma\.mma_async\b",
    "mma.sync": r"\bmma\.sync\b",
    "tcgen05.mma": r"\btcgen05\.mma\b",
    "cp.async.bulk.tensor": r"\bcp\.async\.bulk\.tensor\b",
    "cp.async": r"\bcp\.async\.c[ag]\b",
    "ld.global": r"\bld\.global\b",
    "st.global": r"\bst\.global\b",
    "setmaxnreg": r"\bsetmaxnreg\b",
}
# Instructions an attention kernel's reader counts besides tensor cores and TMA: exponentials (MUFU),
# barriers, shared-memory matrix loads and stores, and register reallocation between warp groups
# (USETMAXREG: `setmaxnreg`, the sign of warp specialisation on Hopper).
MIX_SASS = ("MUFU", "BAR", "LDSM", "STSM", "USETMAXREG")


def default_cache_dir() -> Path:
    """$EVOAGENT_CACHE_DIR/static, or ~/.cache/evoagent/static."""
    root = os.environ.get("EVOAGENT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evoagent")
    return Path(root) / "static"


def candidate_caches(static_dir: Path, scope: str) -> Path:
    """The compile caches of one candidate (`scope`: its id): `<cache root>/compile/<scope>`, beside
    `static/`. Each candidate's calls may write only their own folder (`Sandbox.call(write_paths=...)`),
    so no candidate can plant a compiled kernel where another candidate, or a baseline, reads."""
    if not scope or not all(c.isalnum() or c in "-_." for c in scope) or scope.startswith("."):
        raise ValueError(f"a cache scope must be a candidate id like '3f2a9c' (got {scope!r})")
    return static_dir.parent / "compile" / scope


def triton_version() -> str:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def tool_path(name: str) -> Path | None:
    """A CUDA binary tool (cuobjdump, nvdisasm) from Triton's NVIDIA backend, if it ships one."""
    try:
        import triton
    except ImportError:
        return None
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def cache_key(source: str, arch: str, configs: Sequence[AttentionConfig]) -> str:
    text = json.dumps([REPORT_VERSION, source, arch, triton_version(), [c.to_dict() for c in configs]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sass_mix(sass: str) -> dict[str, Any]:
    """Instruction counts from a SASS listing: tensor-core ops, memory ops by width, spills, total."""
    opcodes: Counter[str] = Counter()
    widths: Counter[str] = Counter()
    code = hashlib.sha256()  # the instruction stream: equal for kernels that differ only in line info
    for line in sass.splitlines():
        match = _SASS_LINE.match(line)
        if not match:
            continue
        code.update(line.split("*/", 1)[-1].split("/*", 1)[0].strip().encode() + b"\n")
        opcode, suffix = match.group(1), match.group(2)
        opcodes[opcode] += 1
        if opcode in ("LDG", "LDGSTS", "STG"):
            widths[f"{opcode}.{_access_bits(suffix)}"] += 1
    tensor_core = {op: n for op, n in opcodes.items() if op in _TENSOR_CORE_SASS or op.startswith("UTC")}
    return {
        "total": sum(opcodes.values()),
        "code": code.hexdigest()[:16],
        "mix": {op: opcodes[op] for op in MIX_SASS if opcodes[op]},
        "tensor_core": dict(sorted(tensor_core.items())),
        "memory": {op: opcodes[op] for op in _MEMORY_SASS if opcodes[op]},
        "global_access_bits": dict(sorted(widths.items())),
        "spill_instructions": opcodes["LDL"] + opcodes["STL"],
    }


def _access_bits(suffix: str) -> int:
    for part, bits in ((".128", 128), (".64", 64), (".U16", 16), (".S16", 16), (".U8", 8), (".S8", 8)):
        if part + "." in suffix + ".":
            return bits
    return 32


def ptx_mix(ptx: str) -> dict[str, int]:
    """Counts of tensor-core, async-copy and global memory instructions in PTX text."""
    counts = {name: len(re.findall(pattern, ptx)) for name, pattern in _PTX_PATTERNS.items()}
    vector = re.findall(r"\bld\.global(?:\.[a-z0-9:]+)*?\.v(\d)\.[bfsu](\d+)", ptx)
    for lanes, bits in vector:
        key = f"ld.global.{int(lanes) * int(bits)}bit"
        counts[key] = counts.get(key, 0) + 1
    return {k: v for k, v in counts.items() if v}


def resource_usage(text: str) -> dict[str, dict[str, int]]:
    """cuobjdump --dump-resource-usage output -> {function: {registers, stack_bytes, ...}}."""
    return {
        name: {"registers": int(reg), "stack_bytes": int(stack), "static_shared_bytes": int(shared),
               "local_bytes": int(local)}
        for name, reg, stack, shared, local in _RESOURCE.findall(text)
    }


def analyse_cubins(cubins: Sequence[bytes], *, sass: Sequence[bool] | None = None,
                   timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Resource usage of each cubin and, where `sass` says so (default: all), its SASS mix.

    Empty dicts if cuobjdump is missing. A SASS dump takes ~0.4 s, the resource usage milliseconds.
    """
    cuobjdump = tool_path("cuobjdump")
    if cuobjdump is None or not cubins:
        return [{} for _ in cubins]
    with tempfile.TemporaryDirectory(prefix="evoagent-cubin-") as tmp:
        paths = []
        for i, blob in enumerate(cubins):
            path = Path(tmp) / f"k{i}.cubin"
            path.write_bytes(blob)
            paths.append(path)
        # SASS dumps take ~0.4 s each: start them all, then read the (fast) resource usage meanwhile.
        wanted = list(sass) if sass is not None else [True] * len(paths)
        sass_procs = [subprocess.Popen([str(cuobjdump), "--dump-sass", str(p)], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True) if want else None
                      for p, want in zip(paths, wanted)]
        results = []
        for path, proc in zip(paths, sass_procs):
            usage = subprocess.run([str(cuobjdump), "--dump-resource-usage", str(path)], capture_output=True,
                                   text=True, timeout=timeout_s).stdout
            functions = resource_usage(usage)
            results.append({"resources": next(iter(functions.values()), {}),
                            "sass": sass_mix(_communicate(proc, timeout_s)) if proc is not None else {}})
        return results


def _communicate(proc: subprocess.Popen[str], timeout_s: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def summarise(arch: str, compiled: list[dict[str, Any]], wrapper_errors: list[dict[str, Any]]) -> dict[str, Any]:
    """One arch's report from the child's compile records (cubins analysed here, then dropped).

    Every autotune config that survived pruning was compiled and is listed with its own registers
    and spills. A config that autotuning would skip on the device (over the shared-memory limit,
    a failed `tl.static_assert`, a ptxas resource error) is listed under `skipped` when another
    config of the same kernel compiled; otherwise it is an error. The report's totals (largest
    shared memory and registers, summed spills) cover every listed kernel and config.
    """
    limit = SHARED_LIMIT_BYTES.get(arch)
    for record in compiled:
        if record.get("ok") and limit is not None and record["shared_bytes"] > limit:
            record.update(ok=False, skippable=True, line=None,
                          error=f"needs {record['shared_bytes']} bytes of shared memory, over the {arch} limit "
                                f"of {limit} (the launch would fail with OutOfResources); use smaller blocks or "
                                "fewer pipeline stages (num_stages)")
    good = [r for r in compiled if r.get("ok")]
    digests = [cubin_digest(r["cubin"]) for r in good]
    first = [d not in digests[:i] for i, d in enumerate(digests)]
    analyses = analyse_cubins([r["cubin"] for r in good], sass=first)  # SASS once per distinct cubin
    by_digest = {d: a for d, a, f in zip(digests, analyses, first) if f}
    kernels = [_kernel_entry(record, {**analysis, "sass": by_digest[digest].get("sass", {})}) | {"cubin": digest}
               for record, analysis, digest in zip(good, analyses, digests)]
    compiled_kernels = {r["kernel"] for r in good}
    errors, skipped = [], []
    for r in compiled:
        if r.get("ok"):
            continue
        entry = {k: r.get(k) for k in ("kernel", "config", "line", "error", "oom")}
        if r.get("autotune") and r.get("skippable") and r["kernel"] in compiled_kernels:
            skipped.append(entry | {"autotune": r["autotune"]["config"]})
        else:
            errors.append(entry | ({"autotune": r["autotune"]["config"]} if r.get("autotune") else {}))
    registers = [k["registers"] for k in kernels if k["registers"] is not None]
    return {
        "ok": not errors and not wrapper_errors and bool(kernels),
        "oom": any(e.get("oom") for e in [*errors, *wrapper_errors]),
        "errors": errors, "wrapper_errors": wrapper_errors, "kernels": kernels, "skipped": skipped,
        "describes": describes(kernels),
        "shared_bytes": max((k["shared_bytes"] for k in kernels), default=0),
        "registers": max(registers, default=None),
        "spill_bytes": sum(k["stack_bytes"] or 0 for k in kernels),
        "spill_instructions": sum(k["sass"].get("spill_instructions", 0) for k in kernels),
        "compile_seconds": round(sum(r.get("seconds", 0.0) for r in compiled), 3),
        "cuobjdump": tool_path("cuobjdump") is not None,
    }


def cubin_digest(cubin: bytes) -> str:
    """A compiled kernel's identity: the sha256 of its cubin (16 hex digits)."""
    return hashlib.sha256(cubin).hexdigest()[:16]


def _kernel_entry(record: dict[str, Any], analysis: dict[str, Any]) -> dict[str, Any]:
    resources = analysis.get("resources", {})
    tune = record.get("autotune")
    return {
        "kernel": record["kernel"], "config": record["config"], "num_warps": record["num_warps"],
        "num_stages": record["num_stages"], "shared_bytes": record["shared_bytes"], "blocks": record.get("blocks", {}),
        "tmem_bytes": record.get("tmem_bytes", 0), "registers": resources.get("registers"),
        "stack_bytes": resources.get("stack_bytes"), "local_bytes": resources.get("local_bytes"),
        "sass": analysis.get("sass", {}), "ptx": ptx_mix(record["ptx"]),
        "compile_seconds": round(record["seconds"], 3),
        "autotune": tune["config"] if tune else None,
        "autotune_rank": f"{tune['index'] + 1} of {tune['count']}" if tune else None,
    }


def describes(kernels: Sequence[dict[str, Any]]) -> str:
    """Which launches and autotune configs the report covers, in one line."""
    names = sorted({k["kernel"] for k in kernels})
    parts = []
    for name in names:
        configs = sorted({k["autotune"] for k in kernels if k["kernel"] == name and k.get("autotune")})
        parts.append(f"{name}: every autotune config that survives pruning ({len(configs)}: "
                     + "; ".join(configs) + ")" if configs else f"{name}: its launch configuration")
    if not parts:
        return ""
    tuned = any(k.get("autotune") for k in kernels)
    return ("; ".join(parts) + ". Totals are the largest shared memory and registers and the summed spills over "
            "them" + ("; the interpreter runs the first config that survives pruning." if tuned else "."))


class StaticCompiler:
    """Compiles a candidate's kernels for target archs in the sandbox and caches the reports on disk."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 180.0) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout_s = timeout_s

    def report(self, source: str, entry: str, configs: Sequence[AttentionConfig], archs: Sequence[str],
               sandbox: Executor, *, scope: str) -> tuple[dict[str, Any], Any]:
        """{arch: report} for `archs` (cached ones reused), and the failed SandboxResult if the call failed.

        The compile runs with the compile caches of `scope` (the candidate's id; `candidate_caches`).
        """
        from .child import compile_launches

        reports: dict[str, Any] = {}
        missing = []
        for arch in archs:
            cached = self.load_cached(cache_key(source, arch, configs))
            if cached is not None:
                reports[arch] = {**cached, "cached": True}
            else:
                missing.append(arch)
        if not missing:
            return reports, None
        caches = candidate_caches(self.cache_dir, scope)
        out = sandbox.call(compile_launches, entry, [c.to_dict() for c in configs], list(missing),
                           str(caches / "triton"), files={entry: source}, timeout_s=self.timeout_s,
                           write_paths=(caches,), env=cache_environment(caches, home=None))
        if not out.ok:
            return reports, out
        value = out.value
        for arch in missing:
            compiled = [r for r in value["launches"] if r["arch"] == arch]
            report = summarise(arch, compiled, value["wrapper_errors"])
            report["kernels_defined"] = value["kernels_defined"]
            if not report["oom"]:  # running out of memory says nothing lasting about the source
                self.store_cached(cache_key(source, arch, configs), report)
            reports[arch] = {**report, "cached": False}
        return {arch: reports[arch] for arch in archs}, None

    def load_cached(self, key: str) -> dict[str, Any] | None:
        """The report stored under `key`, or None."""
        try:
            return dict(json.loads((self.cache_dir / f"{key}.json").read_text()))
        except (OSError, ValueError):
            return None

    def store_cached(self, key: str, report: dict[str, Any]) -> None:
        """Stores a report under `key` (atomically; a cache that cannot be written only costs time)."""
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(report, sort_keys=True))
            os.replace(tmp, self.cache_dir / f"{key}.json")
        except OSError:
            pass  # a cache that cannot be written only costs time


# Suggested MAP-Elites bin edges; tile sizes, warps and stages get one bin per value.
DESCRIPTOR_BINS = {"registers": (96.0, 160.0, 224.0), "shared_kib": (48.0, 96.0, 160.0),
                   "tensor_core_ops": (8.0, 16.0, 32.0, 64.0)}


def kernel_descriptors(report: dict[str, Any]) -> dict[str, float | None]:
    """MAP-Elites descriptors from one arch's compact static report (None where it has no number).

    The main kernel is the one with the most tensor-core instructions; its first listed launch
    (first shape, first autotune config that survives pruning) gives the tile sizes (BLOCK_M,
    BLOCK_N), warps, stages and tensor-core instruction count; registers and shared memory are
    the report's largest over every kernel.
    """
    kernels = report.get("kernels") or []
    values: dict[str, float | None] = dict.fromkeys(
        ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages", "registers", "shared_kib", "tensor_core_ops"))
    if not kernels:
        return values
    main_name = max(kernels, key=lambda k: sum((k.get("tensor_core") or {}).values()))["kernel"]
    main = next(k for k in kernels if k["kernel"] == main_name)
    blocks = dict(main.get("blocks") or {})
    for part in (main.get("autotune") or "").split(","):  # an autotune config names its block sizes
        name, _, value = part.strip().partition("=")
        if name.startswith("BLOCK") and value.strip().isdigit():
            blocks.setdefault(name, int(value))
    values.update(BLOCK_M=blocks.get("BLOCK_M"), BLOCK_N=blocks.get("BLOCK_N"), num_warps=main.get("num_warps"),
                  num_stages=main.get("num_stages"), registers=report.get("registers"),
                  shared_kib=report["shared_bytes"] / 1024 if report.get("shared_bytes") is not None else None,
                  tensor_core_ops=sum((main.get("tensor_core") or {}).values()) if main.get("sass_analysed") else None)
    return {k: None if v is None else float(v) for k, v in values.items()}


def first_error(reports: dict[str, Any], subject: str = "attention()") -> str | None:
    """The first compile problem across archs as one actionable line, or None (`subject`: what was called)."""
    for arch, report in reports.items():
        for err in report.get("wrapper_errors", []):
            return (f"{arch}: {subject} failed while its launches were captured (config {err['config']}): "
                    f"{err['error']}")
        for err in report.get("errors", []):
            where = f"line {err['line']}: " if err.get("line") else ""
            return f"{arch}: kernel {err['kernel']} (config {err['config']}): {where}{err['error']}"
    return None


def compact_report(report: dict[str, Any]) -> dict[str, Any]:
    """A static report without bulky fields, for stage details an agent reads (one entry per autotune config)."""
    kernels = [{k: kern.get(k) for k in ("kernel", "config", "autotune", "autotune_rank", "blocks", "num_warps",
                                          "num_stages",
                                          "shared_bytes", "registers", "stack_bytes", "tmem_bytes", "compile_seconds")}
               | {"sass_analysed": bool(kern.get("sass")), "tensor_core": kern.get("sass", {}).get("tensor_core", {}),
                  "tma": {op: n for op, n in kern.get("sass", {}).get("memory", {}).items() if op.startswith("UTMA")},
                  "mix": kern.get("sass", {}).get("mix", {}), "cubin": kern.get("cubin"),
                  "code": kern.get("sass", {}).get("code"),
                  "global_access_bits": kern.get("sass", {}).get("global_access_bits", {}),
                  "spill_instructions": kern.get("sass", {}).get("spill_instructions"),
                  "ptx": kern.get("ptx", {})}
               for kern in report.get("kernels", [])]
    keep = ("language", "describes", "shared_bytes", "registers", "spill_bytes", "spill_instructions",
            "compile_seconds", "cached", "errors", "skipped", "wrapper_errors")
    # One line per compiled kernel and autotune config first: a reader that truncates still sees them all.
    return ({"ok": report.get("ok"), "per_config": [_config_line(k) for k in kernels]}
            | {k: report.get(k) for k in keep} | {"kernels": kernels})


def _config_line(kern: dict[str, Any]) -> str:
    """'_attn [shape] BLOCK_M=128, ... : 187 registers, 0 B spilled, 164864 B shared, HGMMA 32, UTMALDG 9'."""
    tune = f" {kern['autotune']} ({kern['autotune_rank']})" if kern.get("autotune") else ""
    mix = {**kern["tensor_core"], **kern["tma"]} or kern["ptx"]
    return (f"{kern['kernel']} [{kern['config']}]{tune}: {kern['registers']} registers, {kern['stack_bytes']} B "
            f"spilled, {kern['shared_bytes']} B shared" + "".join(f", {op} {n}" for op, n in mix.items()))
