"""AttentionEvaluator: check (legality + static compile) -> test -> benchmark -> profile, verdicts trusted-side."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...candidate import Candidate
from ...confinement import cache_environment
from ...errors import ConfigError, EvaluatorError
from ...evaluator import EXPERIMENT_FILE, Evaluator, environment
from ...records import Descriptors
from ...result import EvalResult, StageResult, Status
from . import agent_text, cuda_inprocess, cuda_static, legality, stages
from .compile_caches import GIB, CompileCaches
from .cuda_build import CACHE_ENV
from .cuda_source import Language, detect_language
from .judge import (
    bench_row,
    dense_peak_tflops,
    hardware_or,
    illegal,
    judge_benchmark,
    sandbox_failure,
    static_check,
)
from .reference import sample_rows
from .static import (
    DESCRIPTOR_BINS,
    SUPPORTED_ARCHS,
    StaticCompiler,
    candidate_caches,
    compact_report,
    kernel_descriptors,
)
from .suites import AttentionConfig, Suite, get_suite, make_config
from .target_view import TARGET_ARCH_ENV

if TYPE_CHECKING:
    from ...channel import Driver
    from ...executors import Executor
    from ...sandbox import SandboxConfig, SandboxResult

# Baseline implementations as the benchmark names them -> as people know them (cuDNN first: the reference).
BASELINE_NAMES = {"sdpa-cudnn": "cuDNN", "sdpa-flash": "FLASH", "sdpa-efficient": "EFFICIENT",
                  "flash-attn": "FlashAttention-2", "flash-attn-3": "FlashAttention-3"}

_CPU_MAX_TEST_SEQLEN = 80
# Output rows sampled from every timed repetition (in at most two (batch, head) slices, whose inputs
# the child rebuilds from each repetition's seed and the trusted side rebuilds to check them).
_TIMED_ROWS = 256
_CPU_LABEL = "cpu-interpreter"


def _versions() -> dict[str, str | None]:
    """Python, torch (and the CUDA it was built with, when torch is loaded), Triton."""
    env = environment()
    torch = sys.modules.get("torch")
    cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    return {"python": env["python"], "torch": env["versions"].get("torch"), "CUDA": cuda,
            "triton": env["versions"].get("triton")}


def _ncu_install() -> tuple[str, ...]:
    """Nsight Compute's folder (its launcher runs helpers and libraries from there), for a confined child."""
    found = shutil.which("ncu")
    if found is None:
        return ()
    real = Path(found).resolve()
    return tuple(dict.fromkeys(str(p) for p in (Path(found).parent, real.parent.parent if real.parent.name == "bin"
                                                else real.parent)))


def _gpu_ids() -> tuple[str, ...]:
    """One pinned sandbox worker per visible CUDA device (none without CUDA)."""
    if not cuda_available():
        return ()
    import torch

    return tuple(str(i) for i in range(torch.cuda.device_count()))


@functools.cache
def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def default_suite() -> str:
    """'h100-mha' when a CUDA device is visible, else 'smoke'."""
    return "h100-mha" if cuda_available() else "smoke"


class AttentionEvaluator(Evaluator):
    """Scores attention kernels: legality and a static compile report, correctness, throughput, profile.

    Args:
        suite: the configuration suite (default: 'h100-mha' with CUDA, else 'smoke').
        archs: architectures the check stage compiles for, without a GPU ('sm_90a', 'sm_100a').
        seeds: input seeds per test shape (each shape is called this many times in a row).
        extra_shapes: random shapes per evaluation besides the suite's (ragged N, GQA ratios).
        reps: timed repetitions per configuration (default 30 on GPU, 5 in the interpreter, where the
            score uses the fastest repetition: noise from other processes only adds time).
        warmup: untimed calls before timing (default 3 on GPU, 1 in the interpreter).
        timeout_s: limit of one sandboxed call (a stage) in seconds.
        cache_dir: where static reports are cached (default $EVOAGENT_CACHE_DIR/static).
        seed: fixes the random draws (test shapes and inputs) for reproducible runs; None draws fresh ones.
        baselines: time PyTorch SDPA / flash-attn next to the candidate on a GPU.
        ncu: in the profile stage on a GPU, also run Nsight Compute (slow: up to two minutes) when present.
        compile_cache_gib: bound on the candidates' compile caches (`<cache root>/compile/`), least recently
            used removed first after each evaluation (`compile_caches.CompileCaches`).
    """

    name = "attention"
    score_unit = "TFLOPS"
    description = agent_text.DESCRIPTION
    rules = agent_text.RULES
    timing_stages = ("benchmark",)
    builtin_knowledge = True
    entry = "kernel.py"
    stages = ("check", "test", "benchmark", "profile")

    def __init__(self, suite: str | None = None, *, archs: Sequence[str] = ("sm_90a",), seeds: int = 3,
                 extra_shapes: int = 4, reps: int | None = None, warmup: int | None = None,
                 timeout_s: float = 600.0, cache_dir: str | os.PathLike[str] | None = None,
                 seed: int | None = None, baselines: bool = True, ncu: bool = False,
                 compile_cache_gib: float = 20.0) -> None:
        self.suite: Suite = get_suite(suite or default_suite())
        if isinstance(archs, str) or not archs or any(a not in SUPPORTED_ARCHS for a in archs):
            raise ConfigError(f"AttentionEvaluator archs must be a non-empty list from {list(SUPPORTED_ARCHS)} "
                              f"(got {archs!r})")
        for name, value, low in (("seeds", seeds, 1), ("extra_shapes", extra_shapes, 0), ("reps", reps, 1),
                                 ("warmup", warmup, 0)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ConfigError(f"AttentionEvaluator {name} must be an int >= {low} (got {value!r})")
        if not isinstance(compile_cache_gib, (int, float)) or not compile_cache_gib > 0:
            raise ConfigError(f"AttentionEvaluator compile_cache_gib must be a positive number of GiB "
                              f"(got {compile_cache_gib!r})")
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ConfigError(f"AttentionEvaluator timeout_s must be a positive number of seconds (got {timeout_s!r})")
        self.archs = tuple(archs)
        self.seeds, self.extra_shapes, self.reps, self.warmup = seeds, extra_shapes, reps, warmup
        self.timeout_s = float(timeout_s)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed, self.baselines, self.ncu = seed, baselines, ncu
        self._draws = np.random.default_rng(seed)
        self._timing_draws = np.random.default_rng(None if seed is None else [seed, 1])  # keeps _draws' stream
        self._draws_lock = threading.Lock()  # the engine may evaluate several candidates at once
        self.static = StaticCompiler(self.cache_dir)
        self.cuda_static = cuda_static.CudaStaticCompiler(self.cache_dir)
        self.compile_cache_gib = float(compile_cache_gib)
        self.compile_caches = CompileCaches(self.static.cache_dir.parent / "compile",
                                            limit_bytes=int(self.compile_cache_gib * GIB))

    # -- settings ------------------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        return {"class": "evoagent.targets.attention:AttentionEvaluator", "params": {
            "suite": self.suite.name, "archs": list(self.archs), "seeds": self.seeds,
            "extra_shapes": self.extra_shapes, "reps": self.reps, "warmup": self.warmup,
            "timeout_s": self.timeout_s, "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "seed": self.seed, "baselines": self.baselines, "ncu": self.ncu,
            "compile_cache_gib": self.compile_cache_gib,
        }}

    def evaluate(self, candidate: Candidate, sandbox: Executor, *,
                 stages: Sequence[str] | None = None) -> EvalResult:
        """The stages in order (`Evaluator.evaluate`); afterwards the compile caches are pruned to their bound."""
        with self.compile_caches.use(candidate.id):
            return super().evaluate(candidate, sandbox, stages=stages)

    def sandbox_config(self) -> SandboxConfig:
        from ...sandbox import SandboxConfig

        return SandboxConfig(timeout_s=self.timeout_s, memory_mb=None if cuda_available() else 8192,
                             preload=("numpy", "torch", "triton", "evoagent.targets.attention.child", "torch._dynamo"),
                             gpus=_gpu_ids(),
                             read_paths=_ncu_install() if self.ncu and cuda_available() else ())

    def device_label(self) -> str:
        return _gpu_name() if cuda_available() else _CPU_LABEL

    @classmethod
    def score_caption(cls, device: str = "") -> str:
        if device == _CPU_LABEL:
            return "TFLOPS (cpu-interpreter: not GPU speed)"
        return f"TFLOPS on {device}" if device else "TFLOPS"

    @classmethod
    def baseline_metrics(cls, result: EvalResult) -> dict[str, dict[str, float]]:
        """The library attentions timed next to the candidate (GPU only), cuDNN first."""
        table: list[dict[str, Any]] = next(
            (s.details.get("table", []) for s in result.stages if s.name == "benchmark"), [])
        found: dict[str, dict[str, float]] = {}
        for row in table:
            for impl, tflops in row.get("tflops", {}).items():
                if impl != "candidate":
                    found.setdefault(BASELINE_NAMES.get(impl, impl), {})[row["config"]] = float(tflops)
        order = list(BASELINE_NAMES.values())
        return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))

    @classmethod
    def profile_summary(cls, result: EvalResult) -> dict[str, float]:
        """The static compile report of the first architecture: registers, spills, shared memory, MMA count."""
        static: dict[str, Any] = next((s.details.get("static", {}) for s in result.stages if s.name == "check"), {})
        if not static:
            return {}
        report = next(iter(static.values()))
        summary = {"registers": report.get("registers"), "spill bytes": report.get("spill_bytes"),
                   "shared memory bytes": report.get("shared_bytes"),
                   "tensor-core instructions": sum(sum(k.get("tensor_core", {}).values())
                                                   for k in report.get("kernels", []))}
        return {name: float(value) for name, value in summary.items() if isinstance(value, (int, float))}

    @property
    def on_gpu(self) -> bool:
        return cuda_available()

    def _triton_cache(self, candidate: Candidate) -> str:
        """The candidate's own Triton cache (`static.candidate_caches`), which only its calls may write."""
        return str(candidate_caches(self.static.cache_dir, candidate.id) / "triton")

    def _call(self, sandbox: Executor, fn: Any, *args: Any, candidate: Candidate,
              timeout_s: float | None = None, scope: str | None = None, driver: Driver | None = None) -> SandboxResult:
        """A sandboxed call of the candidate's files that may write only the compile caches of `scope` (its id):
        Triton's, CUDA's and the CUDA candidates' builds (cuda_build.load_extension reads $EVOAGENT_CUDA_CACHE)."""
        gpu = bool(getattr(sandbox, "gpus", ())) and self.on_gpu
        caches = candidate_caches(self.static.cache_dir, scope or candidate.id)
        env = {"TRITON_INTERPRET": "0" if self.on_gpu else "1", TARGET_ARCH_ENV: self.archs[0],
               **cache_environment(caches, home=None), CACHE_ENV: str(caches / "cuda-build")}
        return sandbox.call(fn, *args, files=dict(candidate.files), timeout_s=timeout_s or self.timeout_s, env=env,
                            gpu=gpu, write_paths=(caches,), driver=driver)

    # -- what an agent reads and may try ---------------------------------------------------------------

    def agent_brief(self) -> str:
        max_n = self.suite.max_test_seqlen if self.on_gpu else min(self.suite.max_test_seqlen, _CPU_MAX_TEST_SEQLEN)
        ncu = ("ncu: " + ("runs in `profile`" if self.ncu else "installed, off for this run (evaluator ncu=false)")
               if shutil.which("ncu") else "ncu: not installed here (`profile` gives kernel times only)")
        return agent_text.brief(self.suite, device=self.device_label(), archs=self.archs, on_gpu=self.on_gpu,
                                extra_shapes=self.extra_shapes, max_test_seqlen=max_n,
                                test_dtypes=self.suite.dtypes if self.on_gpu else ("float16",),
                                reps=self.reps or (30 if self.on_gpu else 5),
                                warmup=self.warmup if self.warmup is not None else (3 if self.on_gpu else 1),
                                versions=_versions(), ncu=ncu)

    def result_sections(self, result: EvalResult) -> list[tuple[str, str]]:
        return agent_text.sections(result)

    def traits(self) -> frozenset[str]:
        """The timed suite's traits: mha and/or gqa, its dtypes (bf16...), head dims (d128...), causal and/or full."""
        short = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
        traits = {"gqa" if c.heads_kv < c.heads_q else "mha" for c in self.suite.configs}
        traits |= {short[c.dtype] for c in self.suite.configs} | {f"d{c.head_dim}" for c in self.suite.configs}
        return frozenset(traits | {"causal" if c.causal else "full" for c in self.suite.configs})

    def supervisor_directions(self) -> tuple[str, ...]:
        return ("Re-read the profile of the best version and attack its largest cost (memory traffic, occupancy, "
                "spills).",
                "Revisit the launch parameters (block sizes, warps, stages) of the best version one at a time.",
                "Simplify: remove a recent change that did not pay off and measure again.")

    def configurations(self) -> tuple[str, ...]:
        return self.suite.config_names

    def restricted(self, configs: Sequence[str]) -> AttentionEvaluator:
        """A copy timing and testing only the named configurations of the suite (same draws, same cache)."""
        unknown = [c for c in configs if c not in self.suite.config_names]
        if unknown or not configs:
            raise EvaluatorError(f"configs must name configurations of suite {self.suite.name!r} "
                                 f"({', '.join(self.suite.config_names)}); got {list(configs)}")
        subset = copy.copy(self)
        chosen = tuple(c for c in self.suite.configs if c.name in configs)
        subset.suite = dataclasses.replace(self.suite, configs=chosen)
        return subset

    def experiment(self, candidate: Candidate, script: str, sandbox: Executor, *, timeout_s: float) -> SandboxResult:
        """Runs the script beside kernel.py with the stages' environment (the interpreter without a GPU)."""
        from ...sandbox import run_script

        files = {**candidate.files, EXPERIMENT_FILE: script}
        # Experiments (unscanned scripts) share a cache of their own, never the one the candidate's stages read.
        scope = f"{candidate.id}.experiments"
        with self.compile_caches.use(scope):
            return self._call(sandbox, run_script, EXPERIMENT_FILE, candidate=candidate.with_files(files),
                              timeout_s=timeout_s, scope=scope)

    def equivalence_key(self, candidate: Candidate, first: EvalResult) -> str | None:
        """Identical cubins and host code (`equivalence.equivalence_key`): a later such version is a duplicate."""
        from .equivalence import equivalence_key

        check = first.stage("check")
        source = candidate.files.get(self.entry)
        static = (check.details if check is not None else {}).get("static")
        return equivalence_key(source, static) if source is not None and isinstance(static, dict) else None

    def inspect(self, candidate: Candidate, sandbox: Executor, *, what: str, grep: str = "",
                kernel: str = "") -> str:
        """SASS, PTX or TTGIR of the kernels the wrapper launches, compiled for the first arch (no GPU needed)."""
        from .inspect_code import WHAT, compiled_code, inspect_text

        if what not in WHAT:
            raise EvaluatorError(f"inspect shows one of {', '.join(WHAT)}; got {what!r}")
        source = candidate.files.get(self.entry)
        if source is None or detect_language(source) is not Language.TRITON:
            raise EvaluatorError("inspect reads Triton kernels; the check stage's static report covers CUDA_SOURCE")
        arch = self.archs[0]
        caches = candidate_caches(self.static.cache_dir, candidate.id)
        with self.compile_caches.use(candidate.id):
            out = sandbox.call(compiled_code, self.entry, [c.to_dict() for c in self.suite.static_configs()], arch,
                               str(caches / "triton"), files={self.entry: source}, timeout_s=self.static.timeout_s,
                               write_paths=(caches,), env=cache_environment(caches, home=None))
        if not out.ok:
            return f"status: {out.status.value}\nthe compile failed: {(out.error or out.reason).strip()[:2000]}"
        return inspect_text(out.value, what=what, arch=arch, grep=grep, kernel=kernel)

    def descriptors(self, candidate: Candidate, result: EvalResult) -> Descriptors:
        """MAP-Elites descriptors from the first arch's static report (`static.kernel_descriptors`)."""
        check = result.stage("check")
        report = ((check.details if check else {}).get("static") or {}).get(self.archs[0], {})
        return Descriptors(values=kernel_descriptors(report), bins=DESCRIPTOR_BINS)

    # -- stages --------------------------------------------------------------------------------------

    def check(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Parse, the signature, the static legality scan, then the AOT compile for each arch."""
        source = candidate.files.get(self.entry)
        if source is None:
            return StageResult.fail(Status.COMPILE_ERROR, f"the candidate has no {self.entry} "
                                                          f"(its files: {sorted(candidate.files)})")
        try:
            findings = legality.scan(source)
        except SyntaxError as exc:
            return StageResult.fail(Status.COMPILE_ERROR, f"line {exc.lineno}: SyntaxError: {exc.msg}")
        problem = legality.check_contract(source)
        if problem:
            return StageResult.fail(Status.COMPILE_ERROR, problem)
        if detect_language(source) is Language.CUDA:
            return self._check_cuda(source, findings)
        if findings:
            return illegal(findings)
        reports, failed = self.static.report(source, self.entry, self.suite.static_configs(), self.archs, sandbox,
                                             scope=candidate.id)
        if failed is not None:
            return StageResult.fail(hardware_or(failed), f"static compile: {sandbox_failure(failed, self.entry)}",
                                    logs=failed.logs + "\n" + failed.reason)
        return static_check(reports, "attention()")

    def _check_cuda(self, source: str, findings: list[legality.Finding]) -> StageResult:
        """A CUDA candidate's check: how it builds CUDA_SOURCE, the CUDA legality scan, nvcc for each arch."""
        return cuda_static.check_candidate(source, findings, self.cuda_static, self.archs, self.entry)

    def _cuda_without_gpu(self, candidate: Candidate) -> StageResult | None:
        """`needs_device` for a CUDA candidate on a machine without a GPU (it cannot run here), else None."""
        source = candidate.files.get(self.entry, "")
        try:
            cuda = not self.on_gpu and detect_language(source) is Language.CUDA
        except SyntaxError:
            return None
        if not cuda:
            return None
        return StageResult.fail(Status.NEEDS_DEVICE, "a CUDA candidate runs only on a GPU and this machine has none; "
                                                     "its check stage (nvcc, static report) is all that ran here: "
                                                     "test and time it on a GPU")

    def test(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Correctness on the suite's shapes and fresh random ones, judged on trusted replays of the launch plans.

        The wrapper runs once per case in a capture child, its launches recorded and not run (`stages.py`);
        the plans are replayed on new inputs by the trusted side, which checks every output."""
        no_gpu = self._cuda_without_gpu(candidate)
        if no_gpu is not None:
            return no_gpu
        if self.on_gpu and self._is_cuda(candidate):
            return cuda_inprocess.test(self, candidate, sandbox)
        with self._draws_lock:
            cases = self.test_cases()
            seeds = [int(self._timing_draws.integers(2**31)) for _ in cases]
            extra = stages.twins(self, cases)
        captured = stages.capture(self, candidate, sandbox, cases + extra)
        if isinstance(captured, StageResult):
            return captured
        jobs = [{"plan": i, "config": case["config"], "sm_scale": case["sm_scale"], "seeds": [seed], "untimed": 1,
                 "warmup": 0, "reps": 1, "rows": 256} for i, (case, seed) in enumerate(zip(cases, seeds))]
        replayed = stages.replay(self, candidate, sandbox, captured, jobs)
        shapes = sorted({AttentionConfig.from_dict(c["config"]).name for c in cases})
        details = {"cases": len(cases), "shapes": shapes, "device": self.device_label(),
                   "kernels_launched": _kernels_launched(captured.plans[:len(cases)])}
        if isinstance(replayed, StageResult):
            return dataclasses.replace(replayed, details={**replayed.details, **details})
        return StageResult(details=details, logs=captured.logs)

    def benchmark(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """TFLOPS per configuration, timed trusted-side on a replay of the kernels alone, every call checked.

        On a GPU: CUDA events around each repetition in a process that never saw the candidate's Python,
        baselines after it (median). Without one: the trusted clock around each interpreter call (minimum)."""
        no_gpu = self._cuda_without_gpu(candidate)
        if no_gpu is not None:
            return no_gpu
        if self.suite.gpu and not self.on_gpu:
            return StageResult(details={"note": f"suite {self.suite.name!r} is timed on a GPU only; "
                                                "no CUDA device here (use suite 'smoke' for an interpreter time)"})
        if self.on_gpu and self._is_cuda(candidate):
            return cuda_inprocess.benchmark(self, candidate, sandbox)
        reps = self.reps or (30 if self.on_gpu else 5)
        warmup = self.warmup if self.warmup is not None else (3 if self.on_gpu else 1)
        with self._draws_lock:
            cases = [self._case(c, with_rows=False) for c in self.suite.configs]
            seeds = [[int(self._timing_draws.integers(2**31)) for _ in range(warmup + reps)] for _ in cases]
            extra = stages.twins(self, cases)
        captured = stages.capture(self, candidate, sandbox, cases + extra)
        if isinstance(captured, StageResult):
            return captured
        jobs = [{"plan": i, "config": case["config"], "sm_scale": case["sm_scale"], "seeds": seeds[i],
                 "untimed": warmup, "warmup": warmup, "reps": reps} for i, case in enumerate(cases)]
        replayed = stages.replay(self, candidate, sandbox, captured, jobs, baselines=self.baselines)
        if isinstance(replayed, StageResult):
            return replayed
        device = self.device_label()
        metrics: dict[str, float] = {}
        rows: list[dict[str, Any]] = []
        for job, result in zip(jobs, replayed):
            config = AttentionConfig.from_dict(job["config"])
            verdict, timings = judge_benchmark(config, result, result["region_s"], device, use_min=not self.on_gpu)
            if not verdict.ok:
                return StageResult.fail(verdict.status, verdict.reason, details={"device": device, "table": rows})
            metrics[config.name] = timings["candidate"].tflops
            rows.append(bench_row(config, timings, result["errors"]))
        timing = ("CUDA events in a trusted replay process, after a GPU spin; median of the repetitions"
                  if self.on_gpu else "the trusted clock around each replayed interpreter call; the fastest call "
                                      "(not GPU speed)")
        launches = {job["config"]["name"]: [{"kernel": launch["kernel"], "grid": launch["grid"]}
                                            for launch in captured.plans[job["plan"]]["launches"]] for job in jobs}
        details = {"device": device, "peak_tflops": dense_peak_tflops(device), "table": rows, "timing": timing,
                   "launches": launches}
        return StageResult(metrics=metrics, details=details, logs=captured.logs)

    def _is_cuda(self, candidate: Candidate) -> bool:
        try:
            return detect_language(candidate.files.get(self.entry, "")) is Language.CUDA
        except SyntaxError:
            return False

    def profile(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Per-kernel GPU times (and Nsight Compute when present); without a GPU, the static profile."""
        if not self.on_gpu:
            source = candidate.files.get(self.entry, "")
            if self._cuda_without_gpu(candidate) is not None:
                check = self.check(candidate, sandbox)
                return dataclasses.replace(check, details={**check.details, "device": _CPU_LABEL})
            reports, failed = self.static.report(source, self.entry, self.suite.static_configs(), self.archs, sandbox,
                                                 scope=candidate.id)
            if failed is not None:
                return StageResult.fail(hardware_or(failed), f"static compile: {failed.reason.splitlines()[0]}")
            static = {arch: compact_report(report) for arch, report in reports.items()}
            return StageResult(details={"device": _CPU_LABEL, "static": static})
        from .timing import profile

        largest = max(self.suite.configs, key=lambda c: c.flops())
        with self._draws_lock:
            case = self._case(largest, with_rows=False)
        out = self._call(sandbox, profile, self.entry, case, False,
                         self._triton_cache(candidate), self.ncu, candidate=candidate)
        if not out.ok:
            return StageResult.fail(out.status, sandbox_failure(out, self.entry), logs=out.logs)
        return StageResult(details={"device": self.device_label(), **out.value})

    # -- inputs ----------------------------------------------------------------------------------------

    def test_cases(self) -> list[dict[str, Any]]:
        """The test stage's cases: the suite's shapes (GPU, or an interpreter-sized suite) and fresh random ones."""
        configs: list[tuple[AttentionConfig, int]] = []
        if self.on_gpu or not self.suite.gpu:
            configs += [(c, self.seeds if not self.suite.gpu else 1) for c in self.suite.configs]
        configs += [(c, self.seeds) for c in self.extra_configs()]
        return [self._case(config) for config, repeats in configs for _ in range(repeats)]

    def extra_configs(self) -> list[AttentionConfig]:
        """Random shapes the candidate cannot know in advance: ragged N, GQA ratios, both causal modes."""
        rng, suite = self._draws, self.suite
        max_n = suite.max_test_seqlen if self.on_gpu else min(suite.max_test_seqlen, _CPU_MAX_TEST_SEQLEN)
        dtypes = suite.dtypes if self.on_gpu else ("float16",)  # bf16 arithmetic is wrong in the interpreter
        configs = []
        for i in range(self.extra_shapes):
            group = int(rng.choice(suite.gqa_groups))
            heads_kv = int(rng.integers(1, 4 if self.on_gpu else 2))
            seqlen = int(rng.integers(1, max_n + 1))
            if i < 2 and seqlen % 16 == 0:
                seqlen = max(1, seqlen - 1)  # the first two are always ragged
            batch = int(rng.integers(1, 3)) if self.on_gpu else 1
            configs.append(make_config(batch, heads_kv * group, heads_kv, seqlen, int(rng.choice(suite.head_dims)),
                                       i % 2 == 1, dtypes[i % len(dtypes)]))
        return configs

    def _case(self, config: AttentionConfig, *, with_rows: bool = True, max_rows: int = 4096,
              max_heads: int = 4) -> dict[str, Any]:
        rng = self._draws
        scale = float(rng.uniform(0.5, 2.0)) / math.sqrt(config.head_dim)
        rows = (sample_rows(config, rng, max_rows=max_rows, max_heads=max_heads) if with_rows
                else np.zeros((0, 3), dtype=np.int64))
        return {"config": config.to_dict(), "seed": int(rng.integers(2**31)), "sm_scale": scale, "rows": rows}


def _kernels_launched(plans: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for plan in plans:
        for launch in plan["launches"]:
            counts[launch["kernel"]] = counts.get(launch["kernel"], 0) + 1
    return counts


@functools.cache
def _gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))
