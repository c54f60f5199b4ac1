"""Times the attention seeds against cuDNN, FlashAttention and FlexAttention per configuration, saving as it goes.

    python benchmarks/attention_bench.py --out benchmarks/out                  # every seed, default suites
    python benchmarks/attention_bench.py --seed kernels/attention/fa2.py --suite h100-mha --budget-s 200
    python benchmarks/attention_bench.py --dry-run                             # the plan (no GPU needed)

Every seed first passes the attention evaluator's check stage (legality scan and the static compile
for sm_90a, no GPU needed). Then, per configuration, on the GPU:

- inputs come from a seeded torch generator on the device, and the reference is computed there too:
  fp32 (no TF32) in query chunks, fp64 for small shapes; every implementation's first output is
  compared with it under the evaluator's tolerances, and a wrong one is not timed;
- each implementation is warmed up for at least `--warmup-ms` of its own calls (clocks ramp up, JIT
  and autotuning finish), the repetitions are chosen from the warm-up's time per call, and the
  timed calls are interleaved (each repetition runs every implementation once, in a rotating order)
  after zeroing a buffer twice the L2's size, between CUDA events;
- the median, 10th/90th percentiles and interquartile range are kept, and the SM clock is read
  (never set) before the run and after each configuration.

Without a GPU the same flow runs the Triton seeds in Triton's interpreter on the `smoke` suite
(wall-clock times, baselines recorded as missing with the reason); the CUDA seed (`cuda_fa2.py`) is a
default seed only on a GPU (named with --seed on a CPU, it gets its check stage, nvcc's static
profile, and is recorded as missing from the timings). The JSON and
Markdown files are rewritten after every configuration (see device_report.py), and each row is
printed as it is measured.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_report  # noqa: E402
from attention_baselines import BASELINES, Missing, build, first_line, unavailable  # noqa: E402
from bench_planner import Planner, Prepared  # noqa: E402

SEED_DIR = ROOT / "kernels" / "attention"
GPU_SUITES = ("h100-mha", "avo-gqa")
CPU_SUITES = ("smoke",)


# -- what to run ----------------------------------------------------------------------------------


def default_seeds(language: str | None = None) -> list[Path]:
    """Every kernels/attention/*.py that defines a module-level `attention` function (of one language:
    'triton' or 'cuda', as the evaluator detects it; None: both)."""
    seeds = []
    for path in sorted(SEED_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "attention" for node in tree.body):
            if language is None or seed_language(path) == language:
                seeds.append(path)
    return seeds


def seed_language(path: Path) -> str:
    """'cuda' for a kernel file with a module-level CUDA_SOURCE, else 'triton' (read, never run)."""
    from evoagent.targets.attention.cuda_source import detect_language

    return str(detect_language(path.read_text()))


def suite_configs(name: str) -> list[Any]:
    """A suite's configurations; 'NAME-gqa' keeps only its grouped-query ones (e.g. 'avo-gqa')."""
    from evoagent.targets.attention import get_suite

    if name.endswith("-gqa"):
        return [c for c in get_suite(name.removesuffix("-gqa")).configs if c.heads_q != c.heads_kv]
    return list(get_suite(name).configs)


def seed_name(path: Path) -> str:
    return path.stem


# -- the machine ----------------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "triton", "numpy", "flash_attn", "flash_attn_interface", "evoagent"):
        try:
            info[name] = str(getattr(importlib.import_module(name), "__version__", "present"))
        except Exception as exc:  # an optional baseline that is missing or broken
            info[name] = f"not importable ({type(exc).__name__})"
    import torch

    info["cuda_runtime"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return info


def device_facts() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"name": "cpu-interpreter", "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    props = torch.cuda.get_device_properties(0)
    return {"name": torch.cuda.get_device_name(0), "capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count, "memory_gib": round(props.total_memory / 2**30, 1),
            "l2_mib": round(getattr(props, "L2_cache_size", 0) / 2**20, 1), "driver": _smi("driver_version"),
            "clocks_before": read_clocks()}


def _smi(query: str) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "-i", "0", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def read_clocks() -> dict[str, str] | None:
    """SM and memory clocks (MHz), the SM clock's maximum, temperature and power, read with nvidia-smi."""
    fields = ("clocks.sm", "clocks.mem", "clocks.max.sm", "temperature.gpu", "power.draw")
    line = _smi(",".join(fields))
    if not line:
        return None
    names = ("sm_mhz", "mem_mhz", "max_sm_mhz", "temperature_c", "power_w")
    return dict(zip(names, (v.strip() for v in line.splitlines()[0].split(","))))


# -- the seeds' check stage -----------------------------------------------------------------------


def check_seeds(seeds: list[Path], suite: str) -> list[dict[str, Any]]:
    """The evaluator's check stage (legality, static compile for sm_90a) for each seed, in a CPU sandbox."""
    from evoagent.candidate import Candidate
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator
    from evoagent.targets.attention.cli import format_check

    evaluator = AttentionEvaluator(suite)
    records = []
    # The evaluator's own sandbox: the check stage runs on a CPU worker, which sees no GPU
    # (CUDA_VISIBLE_DEVICES="" beside a GPU worker), so the static check never starts CUDA.
    with Sandbox(evaluator.sandbox_config()) as sandbox:
        for path in seeds:
            started = time.perf_counter()
            result = evaluator.evaluate(Candidate.from_path(path, entry=evaluator.entry), sandbox, stages=("check",))
            check = result.stage("check")
            records.append({"name": seed_name(path), "path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT)
                            else str(path), "check": {
                                "status": result.status.value, "reason": result.reason,
                                "seconds": round(time.perf_counter() - started, 2),
                                "static": check.details.get("static") if check is not None else None,
                                "text": format_check(result)}})
            print(f"check {path.name}: {result.status.value} {result.reason}", flush=True)
    return records


def load_seed(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"seed_{path.stem}", path)
    assert spec is not None and spec.loader is not None  # Check internal correctness.
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- inputs, reference, correctness ---------------------------------------------------------------


def make_inputs(config: Any, device: str) -> tuple[Any, Any, Any]:
    """q, k, v from a torch generator on the device, seeded from the configuration's name."""
    import torch

    dtype = getattr(torch, config.dtype)
    gen = torch.Generator(device=device).manual_seed(zlib.crc32(config.name.encode()))
    return tuple(torch.randn(shape, generator=gen, device=device, dtype=dtype)  # type: ignore[return-value]
                 for shape in (config.q_shape, config.kv_shape, config.kv_shape))


_FP64_SCORE_ELEMENTS = 2**27  # B*H*N^2 up to this: the reference is computed in fp64
_CHUNK_SCORE_ELEMENTS = 2**28  # score elements per query chunk (1 GiB in fp32)


def reference(q: Any, k: Any, v: Any, *, causal: bool, sm_scale: float) -> Any:
    """softmax(sm_scale q k^T [causal]) v on q's device, fp64 for small shapes else fp32 without TF32."""
    import torch

    batch, heads, n, _ = q.shape
    acc = torch.float64 if batch * heads * n * n <= _FP64_SCORE_ELEMENTS else torch.float32
    group = heads // k.shape[1]
    kk = k.to(acc).repeat_interleave(group, dim=1).transpose(-1, -2)
    vv = v.to(acc).repeat_interleave(group, dim=1)
    out = torch.empty(q.shape, dtype=acc, device=q.device)
    chunk = max(1, min(n, _CHUNK_SCORE_ELEMENTS // (batch * heads * n)))
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for start in range(0, n, chunk):
            scores = (q[:, :, start:start + chunk].to(acc) @ kk) * sm_scale  # (B, H, chunk, N)
            if causal:
                rows = torch.arange(start, min(start + chunk, n), device=q.device)[:, None]
                scores.masked_fill_(torch.arange(n, device=q.device)[None, :] > rows, float("-inf"))
            out[:, :, start:start + chunk] = torch.softmax(scores, dim=-1) @ vv
            del scores
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return out


def compare(out: Any, ref: Any, dtype: str) -> dict[str, Any]:
    """The evaluator's tolerance (|err| <= atol*rms(ref) + rtol*|ref| and a relative L2 bound), on the device."""
    import torch

    from evoagent.targets.attention.reference import TOLERANCES

    tol = TOLERANCES[dtype]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(ref.shape):
        return {"ok": False, "reason": f"output is {type(out).__name__} {getattr(out, 'shape', '')}, "
                                       f"expected shape {tuple(ref.shape)}"}
    got = out.to(ref.dtype)
    err = (got - ref).abs()
    rms = ref.pow(2).mean().sqrt()
    bad = int((~(err <= tol.atol * rms + tol.rtol * ref.abs())).sum())  # NaN counts as bad
    rel_l2 = float(err.norm() / ref.norm())
    max_abs = float(err.max())
    ok = bad == 0 and rel_l2 <= tol.rel_l2
    reason = "" if ok else f"{bad} elements outside tolerance, relative L2 error {rel_l2:.3g} (bound {tol.rel_l2})"
    return {"ok": ok, "reason": reason, "rel_l2": float(f"{rel_l2:.3g}"), "max_abs_err": float(f"{max_abs:.3g}"),
            "reference": str(ref.dtype).replace("torch.", "")}


# -- timing ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Method:
    """How implementations are timed.

    Attributes:
        warmup_ms: untimed calls per implementation until this much wall time has passed.
        target_ms: timed time per implementation the repetitions aim at.
        min_reps: fewest timed repetitions.
        max_reps: most timed repetitions.
    """

    warmup_ms: float
    target_ms: float
    min_reps: int
    max_reps: int


GPU_METHOD = Method(warmup_ms=200.0, target_ms=300.0, min_reps=10, max_reps=100)
CPU_METHOD = Method(warmup_ms=200.0, target_ms=300.0, min_reps=3, max_reps=10)


def warm_up(fn: Callable[[], Any], sync: Callable[[], None], warmup_ms: float) -> float:
    """Calls fn until warmup_ms of wall time passed; returns the seconds per call of the later half."""
    started, calls, half_at, half_calls = time.perf_counter(), 0, None, 0
    while True:
        fn()
        sync()
        calls += 1
        elapsed = time.perf_counter() - started
        if half_at is None and elapsed >= warmup_ms / 2000:
            half_at, half_calls = time.perf_counter(), calls
        if elapsed >= warmup_ms / 1000:
            later = calls - half_calls
            return (time.perf_counter() - half_at) / later if half_at is not None and later else elapsed / calls


def time_interleaved(impls: dict[str, Callable[[], Any]], reps: int, gpu: bool) -> dict[str, list[float]]:
    """Milliseconds per call; each repetition calls every implementation once, in a rotating order."""
    import torch

    names = list(impls)
    if not gpu:
        times: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(reps):
            for i in range(len(names)):
                name = names[(rep + i) % len(names)]
                started = time.perf_counter()
                impls[name]()
                times[name].append((time.perf_counter() - started) * 1e3)
        return times
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 64 * 2**20
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
    events = {n: [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
              for n in names}
    torch.cuda.synchronize()
    for rep in range(reps):
        for i in range(len(names)):
            name = names[(rep + i) % len(names)]
            flush.zero_()  # the next call starts with a cold L2, as in a real model
            start, end = events[name][rep]
            start.record()
            impls[name]()
            end.record()
    torch.cuda.synchronize()
    return {n: [s.elapsed_time(e) for s, e in events[n]] for n in names}


def stats(times_ms: list[float], flops: float) -> dict[str, Any]:
    ordered = sorted(times_ms)
    q = statistics.quantiles(ordered, n=20, method="inclusive") if len(ordered) > 1 else ordered * 19
    median = statistics.median(ordered)
    return {"tflops": float(f"{flops / (median * 1e-3) / 1e12:.5g}"), "median_ms": round(median, 5),
            "p10_ms": round(q[1], 5), "p90_ms": round(q[17], 5), "iqr_ms": round(q[14] - q[4], 5),
            "min_ms": round(ordered[0], 5), "reps": len(ordered)}


# -- one configuration ----------------------------------------------------------------------------


class RealBackend:
    """Prepares (builds, compiles, autotunes, checks) and times the implementations on this machine.

    One configuration's inputs and reference are kept at a time; a prepared implementation keeps
    its callable (bound to its inputs) until its row is timed.
    """

    def __init__(self, modules: dict[str, Any], method: Method, gpu: bool) -> None:
        import torch

        self.modules, self.method, self.gpu = modules, method, gpu
        self.sync: Callable[[], None] = torch.cuda.synchronize if gpu else (lambda: None)
        self._inputs: tuple[str, Any, Any, Any, Any] | None = None
        self._ready: dict[tuple[str, str], Callable[[], Any]] = {}

    def inputs(self, config: Any) -> tuple[Any, Any, Any, Any]:
        """q, k, v and the reference of `config` (made once while the configuration is current)."""
        if self._inputs is None or self._inputs[0] != config.name:
            self._inputs = None  # free the last configuration's tensors first
            q, k, v = make_inputs(config, "cuda" if self.gpu else "cpu")
            ref = reference(q, k, v, causal=config.causal, sm_scale=1.0 / math.sqrt(config.head_dim))
            self._inputs = (config.name, q, k, v, ref)
        return self._inputs[1:]

    def prepare(self, config: Any, name: str) -> Prepared:
        started = time.perf_counter()
        check = None
        try:
            q, k, v, ref = self.inputs(config)
            sm_scale = 1.0 / math.sqrt(config.head_dim)
            if name in self.modules:
                fn = _seed_call(self.modules[name], q, k, v, config.causal, sm_scale)
            else:
                fn = build(name, q, k, v, causal=config.causal, sm_scale=sm_scale)
            check = compare(fn(), ref, config.dtype)
            self.sync()
            check["first_call_s"] = round(time.perf_counter() - started, 2)
            if not check["ok"]:
                return Prepared(ok=False, seconds=time.perf_counter() - started, check=check,
                                reason=f"wrong output: {check['reason']}")
        except Missing as exc:
            return Prepared(ok=False, seconds=time.perf_counter() - started, reason=str(exc))
        except Exception as exc:  # a compile error, a launch failure, out of memory
            return Prepared(ok=False, seconds=time.perf_counter() - started, reason=first_line(exc), check=check)
        self._ready[(config.name, name)] = fn
        return Prepared(ok=True, seconds=time.perf_counter() - started, check=check)

    def row_estimate_s(self, implementations: int) -> float:
        """Before any row was timed: warm-up and timed calls per implementation, and a second for the inputs."""
        return 1.0 + 1.5 * implementations * (self.method.warmup_ms + self.method.target_ms) / 1000

    def time_row(self, config: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Warm-up, then interleaved timed calls of the prepared `names`; their statistics (and rel_l2)."""
        impls = {n: self._ready.pop((config.name, n)) for n in names}
        per_call_s = {n: warm_up(fn, self.sync, self.method.warmup_ms) for n, fn in impls.items()}
        slowest_ms = max(per_call_s.values()) * 1e3
        method = self.method
        reps = int(min(method.max_reps, max(method.min_reps, method.target_ms / max(slowest_ms, 1e-6))))
        times = time_interleaved(impls, reps, self.gpu)
        return {n: stats(times[n], config.flops()) for n in impls}

    def clocks(self) -> dict[str, str] | None:
        return read_clocks() if self.gpu else None


def _seed_call(module: Any, q: Any, k: Any, v: Any, causal: bool, sm_scale: float) -> Callable[[], Any]:
    def run() -> Any:
        return module.attention(q, k, v, causal=causal, sm_scale=sm_scale)

    return run


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", action="append", type=Path, help="a kernel file (repeatable; default: every seed)")
    parser.add_argument("--suite", action="append", help=f"suite (repeatable; default {GPU_SUITES} on a GPU, "
                                                         f"{CPU_SUITES} without); 'NAME-gqa' keeps NAME's GQA rows")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out", help="folder of device_check.json/.md")
    parser.add_argument("--budget-s", type=float, default=200.0, help="start no configuration after this many seconds")
    parser.add_argument("--warmup-ms", type=float, help="warm-up per implementation (default 200)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit (no GPU needed)")
    args = parser.parse_args(argv)
    for path in args.seed or ():
        if not path.is_file():
            parser.error(f"seed file {str(path)!r} does not exist")
    import torch

    gpu = bool(torch.cuda.is_available()) and not args.dry_run
    # Without a GPU a CUDA seed could only be compiled (nvcc: tens of seconds of the CPU flow's budget,
    # and `evoagent check` shows the same); it is a default seed where it can run, and of the GPU plan.
    seeds = args.seed or default_seeds(None if gpu or args.dry_run else "triton")
    if not gpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before the seeds import triton
        from evoagent.targets.attention.child import _ensure_triton_mode

        _ensure_triton_mode(True)  # (re-)imports triton in interpreter mode, with Triton 3.6's interpreter fixes
    suites = args.suite or list(GPU_SUITES if (gpu or args.dry_run) else CPU_SUITES)
    try:
        plan = [(s, c) for s in suites for c in suite_configs(s)]
    except ValueError as exc:
        parser.error(str(exc))
    if args.dry_run:
        print("\n".join(dry_run_lines(plan, seeds)))
        return 0
    return run(plan, seeds, args.out, args.budget_s, gpu, args.warmup_ms)


def dry_run_lines(plan: list[tuple[str, Any]], seeds: list[Path]) -> list[str]:
    lines = [f"suite {suite}: {config.name} ({config.flops() / 1e9:.1f} GFLOP)" for suite, config in plan]
    lines += [f"seed {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}" for path in seeds]
    lines.append("baselines: " + ", ".join(BASELINES))
    for label, module in (("flash-attn", "flash_attn"), ("flash-attn-3", "flash_attn_interface")):
        found = importlib.util.find_spec(module) is not None
        lines.append(f"  {label}: {'importable' if found else 'not installed (recorded as missing)'}")
    return lines


def run(plan: list[tuple[str, Any]], seeds: list[Path], out: Path, budget_s: float, gpu: bool,
        warmup_ms: float | None) -> int:
    started = time.perf_counter()
    method = GPU_METHOD if gpu else CPU_METHOD
    if warmup_ms is not None:
        method = dataclasses.replace(method, warmup_ms=warmup_ms)
    report = device_report.load(out)
    names = [seed_name(p) for p in seeds]
    report.update(device=report.get("device", {}) | device_facts(), versions=report.get("versions", {}) | versions(),
                  candidates=names, baselines=list(BASELINES),
                  method=dataclasses.asdict(method) | {"interleaved": True, "l2_flush": gpu, "statistic": "median",
                                                       "timer": "cuda events" if gpu else "wall clock",
                                                       "deadline_s": budget_s},
                  rows=[], skipped=[], prepare={})
    device_report.save(report, out)
    print(f"device: {report['device'].get('name')}; versions: {report['versions']}", flush=True)
    report["seeds"] = check_seeds(seeds, plan[0][0] if plan else "smoke")
    modules, missing = load_modules(seeds, report["seeds"], gpu)
    missing |= {n: why for n in BASELINES if (why := unavailable(n, "cuda" if gpu else "cpu")) is not None}
    device_report.save(report, out)
    planner = Planner(backend=RealBackend(modules, method, gpu), clock=time.perf_counter, started=started,
                      deadline_s=budget_s, seeds=names, baselines=list(BASELINES), missing=missing, report=report,
                      save=lambda r: device_report.save(r, out), log=lambda line: print(line, flush=True))
    planner.run(plan)
    if gpu:
        report["device"]["clocks_after"] = read_clocks()
    device_report.save(report, out)
    problems = device_report.validate(report)
    print("\n".join(problems) if problems else f"wrote {device_report.json_path(out)} and {out}/device_check.md")
    return 1 if problems else 0


def load_modules(seeds: list[Path], records: list[dict[str, Any]], gpu: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The seeds that can be timed here (name -> module) and why the others cannot."""
    modules: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for path, record in zip(seeds, records):
        name = record["name"]
        if not gpu and seed_language(path) == "cuda":
            missing[name] = "a CUDA seed runs only on a GPU (its static profile is in the check above)"
        elif record["check"]["status"] != "ok":
            missing[name] = f"failed the check stage: {record['check']['reason']}"
        else:
            try:
                modules[name] = load_seed(path)
            except Exception as exc:
                missing[name] = f"could not be imported: {first_line(exc)}"
    return modules, missing


if __name__ == "__main__":
    # `timeout` stops a step with SIGTERM: exit through the context managers, so sandboxes close.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
