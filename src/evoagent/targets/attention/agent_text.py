"""What an agent reads of the attention target: the task and its rules, its brief, and results as compact tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...result import EvalResult
from ...tables import cell, text_table
from .ncu import read_rows, summarise, summary_table
from .reference import TOLERANCES
from .suites import Suite

DESCRIPTION = """\
Write the forward pass of multi-head / grouped-query attention as Triton kernels (or CUDA C++ with inline
PTX, see the rules), in one file `kernel.py` that defines

    def attention(q, k, v, *, causal: bool, sm_scale: float) -> torch.Tensor

q is (B, H_Q, N, D); k and v are (B, H_KV, N, D) with H_Q % H_KV == 0 (GQA: query head h uses key/value
head h // (H_Q // H_KV)); all contiguous, any N >= 1 (not a multiple of any block size in general).
The contract allows fp16 or bf16 and D in {64, 128}; which of them this run tests and times is the
suite's scope below. Return a NEW (B, H_Q, N, D) tensor of q's dtype holding
softmax(sm_scale * q @ k^T, masked to keys j <= i when causal) @ v. The score is the geometric mean
TFLOPS over the suite's configurations, each weighing the same (FLOPs = 4*B*H_Q*N^2*D, halved when
causal); a version that fails any check scores nothing.
"""

RULES = """\
- The work is done by @triton.jit kernels defined in kernel.py and launched as kernel[grid](...);
  the Python wrapper may only allocate, take views and launch (no torch matmul/softmax/attention,
  no torch.ops, no torch.compile).
- Imports: torch, triton (and triton.language), math, typing, functools, itertools, dataclasses,
  enum, collections, numbers. No eval/exec/compile/getattr/__import__/__dict__, no os, sys, files,
  threads, subprocesses, ctypes, gc, timers, CUDA streams, CUDA graphs or events.
- Never modify q, k or v, never return or write into an input, write every output element, keep no
  state between calls that changes results, and never patch torch, triton or any other module.
- Numerics: compared with an fp64 reference on fresh random inputs (several seeds, ragged N, GQA
  ratios, both causal modes): |out - ref| <= atol*rms(ref) + rtol*|ref| per element and a relative L2
  error bound (fp16: 1e-2, 1e-2, 2e-3; bf16: 6e-2, 5e-2, 1e-2). Accumulate in fp32.
- Tunable module constants may be marked `NAME = value  # evo: choices a b c`.
- Rulings: device queries (torch.cuda.get_device_properties, the SM count, triton's active driver) are
  allowed; reading the environment (os.environ, files) is not. @triton.autotune and per-shape dispatch
  (choosing kernels or block sizes from B, H, N, D, causal, dtype) are allowed. Caching launch metadata
  across calls (grids, tensor descriptors' layouts, chosen configs keyed by shape) is allowed; caching
  data (inputs, outputs, partial results) never is. Operands: q, k and v enter the tensor cores in
  their own dtype and P may be cast to it for P@V (as FlashAttention does), with fp32 accumulation;
  fp8 or lower operands are outside the tolerance. triton.set_allocator (scratch memory for on-device
  tensor descriptors) is configuration, not a patch, and is allowed.
- CUDA instead of Triton: put the CUDA C++ in one module-level literal `CUDA_SOURCE = r'''...'''` (kernels and
  plain host functions taking int64_t data pointers, sizes and the stream as numbers; no torch/ATen, cuBLAS,
  cuDNN, CUTLASS/CuTe, CUB/Thrust headers or calls; no streams, events, graphs, cudaMalloc/cudaMemcpy,
  device syncs or clock reads), build it with
  `from evoagent.targets.attention.cuda_build import load_extension` and
  `load_extension(CUDA_SOURCE, functions=["host_fn"])` in attention(), which allocates the output with torch
  and calls `ext.host_fn(q.data_ptr(), ..., torch.cuda.current_stream().cuda_stream)`.
"""

_SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
# Stage details that vary between identical versions (timings, cache hits): left out, so that an
# unchanged static report reads the same and is not shown twice.
_VOLATILE = {"compile_seconds", "cached", "seconds_in_child", "device"}  # the device is in the header


def brief(suite: Suite, *, device: str, archs: Sequence[str], on_gpu: bool, extra_shapes: int,
          max_test_seqlen: int, test_dtypes: Sequence[str], reps: int = 30, warmup: int = 3,
          versions: Mapping[str, str | None] | None = None, ncu: str = "") -> str:
    """The facts an agent needs before its first edit: hardware, scope, configurations, timing and its noise."""
    timing = (f"timing: CUDA events around each call, {reps} repetitions per configuration after {warmup} warm-up "
              "calls, interleaved with the baselines, inputs refilled before every repetition; the score uses the "
              "median; the benchmark table's IQR (spread of the middle half) is the noise: differences below "
              "about twice it are not real, compare versions with `benchmark compare`" if on_gpu else
              f"timing: wall time in Triton's CPU interpreter ({reps} repetitions after {warmup} warm-up), the "
              "score uses the fastest repetition (noise only adds time); it checks correctness but says little "
              "about speed on a GPU")
    rows = [(c.name, c.batch, c.heads_q, c.heads_kv, c.seqlen, c.head_dim, "yes" if c.causal else "no",
             _SHORT[c.dtype]) for c in suite.configs]
    tolerances = "; ".join(f"{_SHORT[d]} atol {t.atol:g}, rtol {t.rtol:g}, rel_l2 {t.rel_l2:g}"
                           for d, t in TOLERANCES.items() if d in (*suite.dtypes, *test_dtypes))
    return "\n".join([
        f"device: {device}; {timing}",
        scope(suite, test_dtypes),
        *([f"environment: {_versions(versions)}" + (f"; {ncu}" if ncu else "")] if versions else []),
        f"target architecture of the static compile report (no GPU needed): {', '.join(archs)}",
        f"suite {suite.name!r}: {suite.description}; the score is the geometric mean TFLOPS over these "
        "configurations, each weighing the same:",
        text_table(("configuration", "B", "H_Q", "H_KV", "N", "D", "causal", "dtype"), rows),
        f"test stage: the suite's shapes{'' if on_gpu or not suite.gpu else ' (GPU suite: not on this machine)'}"
        f" plus {extra_shapes} random shapes drawn afresh per evaluation from one distribution, for your `test` "
        f"and for the authoritative evaluation alike (ragged N up to {max_test_seqlen}, GQA groups "
        f"{', '.join(map(str, suite.gqa_groups))}, dtypes {', '.join(_SHORT[d] for d in test_dtypes)}, "
        f"head dims {', '.join(map(str, suite.head_dims))})",
        f"correctness tolerance against the fp64 reference: {tolerances}",
        _languages(on_gpu),
    ])


def scope(suite: Suite, test_dtypes: Sequence[str]) -> str:
    """What this suite really times and tests, against what the contract allows."""
    timed = "/".join(_SHORT[d] for d in suite.dtypes)
    dims = "/".join(map(str, suite.head_dims))
    mha = all(c.heads_q == c.heads_kv for c in suite.configs)
    tested = "/".join(_SHORT[d] for d in test_dtypes)
    return (f"scope: this suite times {timed} only, head dim D = {dims} only"
            + (", multi-head only (H_Q == H_KV; GQA shapes are tested for correctness, never timed)" if mha else "")
            + f"; tests run in {tested}. Optimise for exactly that: other dtypes and head dims of the contract "
            "only need to stay correct if you keep them at all (a kernel may assert its scope).")


def _versions(versions: Mapping[str, str | None]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items() if version)


# The knowledge base's CUDA/PTX documents (src/evoagent/knowledge/docs/cuda-*.md), named in the brief.
CUDA_DOCUMENTS = ("cuda-inline-ptx", "cuda-mma-fragments", "cuda-cp-async", "cuda-tma-mbarrier", "cuda-wgmma",
                  "cuda-registers", "cuda-shared-memory")


def _languages(on_gpu: bool) -> str:
    """How the two kernel languages are checked on this machine."""
    cuda = ("a CUDA candidate is built on the GPU and tested and timed like a Triton one" if on_gpu else
            "without a GPU a CUDA candidate gets only the check stage (nvcc compiles CUDA_SOURCE for the target "
            "architectures: the same static report of registers, spills, shared memory and SASS instruction mix; "
            "compile errors name kernel.py lines); it cannot be tested here and ends `needs_device`, never `ok`")
    return ("kernel languages: Triton (@triton.jit kernels) or CUDA C++ (a module-level CUDA_SOURCE = r\"\"\"...\"\"\" "
            f"literal built with load_extension, see the rules); {cuda}; for CUDA the knowledge base has "
            f"{', '.join(CUDA_DOCUMENTS)} (inline PTX, mma.sync/ldmatrix fragments, cp.async, TMA and mbarriers, "
            "wgmma, registers, shared memory); the seed kernels (fa2, hopper-tma, cuda-fa2) are reference "
            "documents: read_knowledge seed-<name>")


def sections(result: EvalResult) -> list[tuple[str, str]]:
    """Benchmark table, static report per architecture, test coverage, GPU profile, other details."""
    out: list[tuple[str, str]] = []
    done: set[tuple[str, str]] = set()
    bench = result.stage("benchmark")
    if bench is not None and (bench.details or bench.metrics):
        out.append(("benchmark", _benchmark(bench.details, bench.metrics)))
        done |= {("benchmark", k) for k in bench.details}
    static_stage = next((s for s in (result.stage("profile"), result.stage("check"))
                         if s is not None and isinstance(s.details.get("static"), Mapping)), None)
    if static_stage is not None:
        for arch, report in static_stage.details["static"].items():
            out.append((f"static report {arch}", static_report(report)))
    for stage in result.stages:
        if stage.name == "benchmark" or not stage.details:
            continue
        rest = {k: v for k, v in stage.details.items()
                if k not in _VOLATILE and k != "static" and (stage.name, k) not in done}
        kernels = rest.pop("kernels", None) if stage.name == "profile" else None
        ncu_rows = _ncu_rows(rest.get("ncu")) if stage.name == "profile" else None
        if ncu_rows:
            rest["ncu"] = "Nsight Compute, per kernel:\n" + summary_table(summarise(read_rows(ncu_rows)))
        lines = [f"{k}: {cell(v)}" if not isinstance(v, str) or "\n" not in v else f"{k}: {v}"
                 for k, v in rest.items() if v not in ([], {}, None)]
        if isinstance(kernels, list) and kernels:
            lines.append(text_table(("kernel", "calls", "device ms total"),
                                    [(k.get("name"), k.get("calls"), k.get("device_ms_total")) for k in kernels]))
        if lines:
            out.append((stage.name, "\n".join(lines)))
    return out


def _ncu_rows(ncu: Any) -> list[str] | None:
    """The CSV lines of a profile's ncu record, when ncu ran (`ncu.summarise` reads them)."""
    if isinstance(ncu, Mapping) and isinstance(ncu.get("csv"), list) and ncu["csv"]:
        return [str(line) for line in ncu["csv"]]
    return None


def _benchmark(details: Mapping[str, Any], metrics: Mapping[str, float]) -> str:
    rows = details.get("table") or []
    if not rows:
        lines = [f"{k}: {cell(v)}" for k, v in details.items()]
        if metrics:
            lines.append(text_table(("configuration", "TFLOPS"), list(metrics.items())))
        return "\n".join(lines)
    baselines = list(dict.fromkeys(name for row in rows for name in row.get("tflops", {}) if name != "candidate"))
    ratio = any(row.get("ratio_to_cudnn") is not None for row in rows)
    header = ("configuration", "TFLOPS", *(f"{b} TFLOPS" for b in baselines), *(("x cuDNN",) if ratio else ()),
              "median ms", "IQR ms")
    table = [(row.get("config"), row.get("tflops", {}).get("candidate"),
              *(row.get("tflops", {}).get(b) for b in baselines), *((row.get("ratio_to_cudnn"),) if ratio else ()),
              row.get("median_ms", {}).get("candidate"), row.get("iqr_ms", {}).get("candidate")) for row in rows]
    lines = [text_table(header, table), "TFLOPS come from the median time on a GPU, the fastest repetition in the "
             "CPU interpreter; IQR is the spread of the middle half of the candidate's times (its noise)."]
    if details.get("peak_tflops"):
        lines.append(f"dense peak of {details.get('device')}: {cell(details['peak_tflops'])} TFLOPS")
    errors = {f"{row.get('config')}: {name}": error for row in rows
              for name, error in (row.get("baseline_errors") or {}).items()}
    lines += [f"baseline error, {where}: {str(error)[:200]}" for where, error in errors.items()]
    return "\n".join(lines)


def static_report(report: Mapping[str, Any]) -> str:
    """One compiled architecture: totals (registers, spills, shared memory), then one row per kernel."""
    compiler = "CUDA_SOURCE compiled by nvcc; " if report.get("language") == "cuda" else ""
    lines = [f"{compiler}registers {cell(report.get('registers'))}, spills {cell(report.get('spill_bytes'))} bytes "
             f"({cell(report.get('spill_instructions'))} spill instructions), shared memory "
             f"{cell(report.get('shared_bytes'))} bytes (largest over the kernels below)"]
    kernels = report.get("kernels") or []
    tuned = any(k.get("autotune") for k in kernels)  # one row per autotune config, named
    rows = [(k.get("kernel"), k.get("config"), *((k.get("autotune") or "-",) if tuned else ()), k.get("num_warps"),
             k.get("num_stages"), k.get("registers"), k.get("shared_bytes"), k.get("stack_bytes"),
             k.get("spill_instructions"), _counts(k.get("tensor_core")), _counts(k.get("tma")), *_mix(k),
             _counts(k.get("global_access_bits"))) for k in kernels]
    if rows:
        lines.append(text_table(("kernel", "for", *(("autotune config",) if tuned else ()), "warps", "stages", "regs",
                                 "smem B", "stack B", "spill instr", "tensor core", "TMA", "MUFU", "BAR",
                                 "LDSM/STSM", "setmaxnreg", "global access"), rows))
    for key in ("errors", "skipped", "wrapper_errors"):
        lines += [f"{key}: {item}" for item in report.get(key) or []]
    return "\n".join(lines)


def _mix(kernel: Mapping[str, Any]) -> tuple[Any, ...]:
    """MUFU, BAR, LDSM/STSM counts and warp specialisation (setmaxnreg) of one kernel row; '-' if no SASS."""
    if not kernel.get("sass_analysed"):
        return ("-",) * 4
    mix = kernel.get("mix") or {}
    ptx = kernel.get("ptx") or {}
    specialised = "yes" if mix.get("USETMAXREG") or ptx.get("setmaxnreg") else "no"
    return mix.get("MUFU", 0), mix.get("BAR", 0), f"{mix.get('LDSM', 0)}/{mix.get('STSM', 0)}", specialised


def _counts(counts: Any) -> str:
    if not isinstance(counts, Mapping) or not counts:
        return "-"
    return " ".join(f"{name}x{n}" for name, n in counts.items())
