"""KernelEvaluator: a KernelBench-format problem as a target: check -> test -> benchmark, verdicts trusted-side."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...candidate import Candidate
from ...confinement import cache_environment
from ...errors import ConfigError
from ...evaluator import Evaluator
from ...result import EvalResult, StageResult, Status
from ..attention import cuda_static, legality
from ..attention.cuda_build import CACHE_ENV
from ..attention.cuda_source import Language, detect_language
from ..attention.evaluator import cuda_available
from ..attention.judge import (
    hardware_or,
    illegal,
    judge_timers,
    malformed_report,
    sandbox_failure,
    static_check,
)
from ..attention.static import SUPPORTED_ARCHS, StaticCompiler, candidate_caches, summarise
from ..attention.target_view import TARGET_ARCH_ENV
from . import agent_text
from .judge import judge_case
from .problem import (
    CPU_INPUT_ELEMENTS,
    GPU_TEST_INPUT_ELEMENTS,
    MIN_SCALED_SIZE,
    Problem,
    is_reference_seed,
    scaled_constants,
    source_with,
)
from .reference_child import PROBLEM_FILE

if TYPE_CHECKING:
    from ...executors import Executor
    from ...sandbox import SandboxConfig, SandboxResult

CPU_LABEL = "cpu-interpreter"
CONFIG = "problem"  # the one configuration a problem is timed on: its (scaled) shape
MODES = ("problem", "signed", "normal")  # the problem's own inputs, centred and scaled, redrawn normal
STATIC_VERSION = 1


class KernelEvaluator(Evaluator):
    """Scores a `ModelNew` (Triton or CUDA) against a KernelBench-format problem's `Model`.

    Args:
        problem: the problem file (class Model, get_inputs(), get_init_inputs(), size constants).
        shape: size constants to set (`--shape name=value`); they are kept as given by the scaling rule.
        archs: architectures the check stage compiles for without a GPU ('sm_90a', 'sm_100a').
        seeds: random seeds per test shape (each runs the three input modes: the problem's own inputs,
            centred and scaled, and redrawn normal).
        ragged: extra test shapes with odd sizes (where the problem allows them).
        reps, warmup: timed and untimed calls (default 30/3 on a GPU, 5/1 in the interpreter).
        timeout_s: limit of one sandboxed call in seconds.
        cache_dir: where static reports are cached (default $EVOAGENT_CACHE_DIR/static).
        seed: fixes the random draws for reproducible runs; None draws fresh ones.
        baselines: time torch.compile next to eager (eager is always timed: the score is relative to it).
    """

    name = "kernel"
    score_unit = "speedup vs eager"
    description = agent_text.DESCRIPTION
    rules = agent_text.RULES
    timing_stages = ("benchmark",)
    entry = "kernel.py"
    stages = ("check", "test", "benchmark")

    def __init__(self, problem: str | os.PathLike[str], *, shape: Mapping[str, int] | None = None,
                 archs: Sequence[str] = ("sm_90a",), seeds: int = 2, ragged: int = 1, reps: int | None = None,
                 warmup: int | None = None, timeout_s: float = 600.0,
                 cache_dir: str | os.PathLike[str] | None = None, seed: int | None = None,
                 baselines: bool = True) -> None:
        self.problem = Problem.load(problem)
        self.shape = dict(shape or {})
        self.problem.with_shape(self.shape)  # unknown names are refused now
        if isinstance(archs, str) or not archs or any(a not in SUPPORTED_ARCHS for a in archs):
            raise ConfigError(f"KernelEvaluator archs must be a non-empty list from {list(SUPPORTED_ARCHS)} "
                              f"(got {archs!r})")
        for name, value, low in (("seeds", seeds, 1), ("ragged", ragged, 0), ("reps", reps, 1), ("warmup", warmup, 0)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ConfigError(f"KernelEvaluator {name} must be an int >= {low} (got {value!r})")
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ConfigError(f"KernelEvaluator timeout_s must be a positive number of seconds (got {timeout_s!r})")
        self.archs, self.seeds, self.ragged = tuple(archs), seeds, ragged
        self.reps, self.warmup, self.timeout_s = reps, warmup, float(timeout_s)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed, self.baselines = seed, baselines
        self.static = StaticCompiler(self.cache_dir)
        self.cuda_static = cuda_static.CudaStaticCompiler(self.cache_dir)
        self._draws = np.random.default_rng(seed)
        self._lock = threading.Lock()  # the engine may evaluate several candidates at once
        self._plans: dict[str, dict[str, Any]] = {}
        self._baseline: dict[str, Any] | None = None

    # -- settings ------------------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        return {"class": "evoagent.targets.kernel:KernelEvaluator", "params": {
            "problem": str(self.problem.path), "shape": dict(self.shape), "archs": list(self.archs),
            "seeds": self.seeds, "ragged": self.ragged, "reps": self.reps, "warmup": self.warmup,
            "timeout_s": self.timeout_s, "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "seed": self.seed, "baselines": self.baselines}}

    @property
    def on_gpu(self) -> bool:
        return cuda_available()

    def sandbox_config(self) -> SandboxConfig:
        from ...sandbox import SandboxConfig

        return SandboxConfig(timeout_s=self.timeout_s, memory_mb=None if self.on_gpu else 8192,
                             preload=("numpy", "torch", "triton", "evoagent.targets.kernel.child",
                                      "evoagent.targets.kernel.reference_child"),
                             gpus=("0",) if self.on_gpu else ())

    def device_label(self) -> str:
        if not self.on_gpu:
            return CPU_LABEL
        import torch

        return str(torch.cuda.get_device_name(0))

    @classmethod
    def score_caption(cls, device: str = "") -> str:
        if device == CPU_LABEL:
            return "speedup vs eager PyTorch (cpu-interpreter: not GPU speed)"
        return f"speedup vs eager PyTorch on {device}" if device else "speedup vs eager PyTorch"

    @classmethod
    def baseline_metrics(cls, result: EvalResult) -> dict[str, dict[str, float]]:
        """torch.compile's speedup over eager, next to the candidate's (eager itself is 1 by definition)."""
        stage = result.stage("benchmark")
        ratio = (stage.details.get("compile_speedup") if stage is not None else None)
        return {"torch.compile": {CONFIG: float(ratio)}} if isinstance(ratio, (int, float)) else {}

    def configurations(self) -> tuple[str, ...]:
        return (CONFIG,)

    # -- what an agent reads -----------------------------------------------------------------------

    def knowledge_paths(self) -> list[Path]:
        """The kernel documents (operator families) and this problem's template recipes, for the knowledge base."""
        from . import knowledge_dir
        from .setup import template_dir

        templates = template_dir(self.problem)
        return [knowledge_dir(), *([templates] if templates is not None else [])]

    def agent_brief(self) -> str:
        plan = self._plan("test")
        return agent_text.brief(self.problem, plan, device=self.device_label(), archs=self.archs,
                                on_gpu=self.on_gpu)

    def result_sections(self, result: EvalResult) -> list[tuple[str, str]]:
        return agent_text.sections(result)

    # -- the calls -----------------------------------------------------------------------------------

    def _env(self, caches: Path) -> dict[str, str]:
        return {"TRITON_INTERPRET": "0" if self.on_gpu else "1", TARGET_ARCH_ENV: self.archs[0],
                **cache_environment(caches, home=None), CACHE_ENV: str(caches / "cuda-build")}

    def _gpu(self, sandbox: Executor) -> bool:
        return bool(getattr(sandbox, "gpus", ())) and self.on_gpu

    def _reference_call(self, sandbox: Executor, fn: Any, *args: Any, constants: Mapping[str, int]) -> SandboxResult:
        """A sandboxed call of the problem alone (never a candidate's file): its numbers are trusted."""
        caches = candidate_caches(self.static.cache_dir, f"reference-{self.problem.digest}")
        out = None
        for _ in range(2):  # a fork server lost under load is restarted: the problem's call is tried once more
            out = sandbox.call(fn, *args, files={PROBLEM_FILE: source_with(self.problem.source, constants)},
                               timeout_s=self.timeout_s, env=self._env(caches), gpu=self._gpu(sandbox),
                               write_paths=(caches,))
            if out.ok or "fork server" not in out.reason:
                break
        assert out is not None  # Check internal correctness.
        return out

    def _candidate_call(self, sandbox: Executor, fn: Any, *args: Any, candidate: Candidate,
                        driver: Any = None) -> SandboxResult:
        caches = candidate_caches(self.static.cache_dir, candidate.id)
        extra = {"driver": driver} if driver is not None else {}
        call: Any = sandbox.call
        return call(fn, *args, files=dict(candidate.files), timeout_s=self.timeout_s, env=self._env(caches),  # type: ignore[no-any-return]
                    gpu=self._gpu(sandbox), write_paths=(caches,), **extra)

    def _triton_cache(self, candidate: Candidate) -> str:
        return str(candidate_caches(self.static.cache_dir, candidate.id) / "triton")

    # -- shapes --------------------------------------------------------------------------------------

    def _plan(self, purpose: str, sandbox: Executor | None = None) -> dict[str, Any]:
        """The constants, input specs and init inputs for 'test' or 'benchmark' (the shape rule, cached)."""
        with self._lock:
            if purpose in self._plans:
                return self._plans[purpose]
        budget = None if purpose == "benchmark" and self.on_gpu else (
            GPU_TEST_INPUT_ELEMENTS if self.on_gpu else CPU_INPUT_ELEMENTS)
        plan = self._scale(budget, sandbox)
        with self._lock:
            self._plans[purpose] = plan
        return plan

    def _scale(self, budget: int | None, sandbox: Executor | None) -> dict[str, Any]:
        from .reference_child import input_elements, plan_inputs

        constants = self.problem.with_shape(self.shape)
        halved: list[str] = []
        own = sandbox is None
        executor = self._own_sandbox() if own else sandbox
        assert executor is not None  # Check internal correctness.
        try:
            for _ in range(64):
                out = self._reference_call(executor, plan_inputs, constants=constants)
                if not out.ok:
                    raise ConfigError(f"problem {self.problem.name!r}: get_inputs()/get_init_inputs() failed at "
                                      f"{constants}: {out.reason.splitlines()[0] if out.reason else out.status}")
                elements = input_elements(out.value["inputs"])
                if budget is None:
                    break
                constants, name = scaled_constants(constants, elements, budget, frozenset(self.shape))
                if name is None:
                    break
                halved.append(name)
        finally:
            if own:
                executor.close()
        return {"constants": constants, "inputs": out.value["inputs"], "init_inputs": out.value["init_inputs"],
                "elements": elements, "halved": halved, "budget": budget}

    def _own_sandbox(self) -> Executor:
        from ...sandbox import Sandbox

        return Sandbox(self.sandbox_config(), gpus=(0,) if self.on_gpu else ())

    def test_shapes(self, sandbox: Executor) -> list[dict[str, int]]:
        """The planned test constants, then `ragged` variants with odd sizes drawn fresh each evaluation."""
        constants = self._plan("test", sandbox)["constants"]
        shapes = [dict(constants)]
        for _ in range(self.ragged):
            variant = dict(constants)
            for name, value in constants.items():
                if value > MIN_SCALED_SIZE and name not in self.shape:
                    variant[name] = max(MIN_SCALED_SIZE + 1, value - 1 - 2 * int(self._draws.integers(0, value // 8)))
            if variant != constants:
                shapes.append(variant)
        return shapes

    # -- stages --------------------------------------------------------------------------------------

    def evaluate(self, candidate: Candidate, sandbox: Executor, *,
                 stages: Sequence[str] | None = None) -> EvalResult:
        """The stages in order; the reference seed (the problem's Model as ModelNew) is scored as the baseline."""
        if is_reference_seed(self.problem, candidate.files.get(self.entry, "")):
            try:
                return self._reference_result(sandbox)
            except Exception as exc:  # our side failed (the problem's own calls): data, as at a stage boundary
                from ...evaluator import environment

                return EvalResult(status=Status.HARNESS_ERROR, reason=f"the reference: {type(exc).__name__}: {exc}",
                                  env=environment(), device=self.device_label())
        return super().evaluate(candidate, sandbox, stages=stages)

    def _reference_result(self, sandbox: Executor) -> EvalResult:
        from ...evaluator import environment

        baseline = self._baselines(sandbox)
        details = {"reference": True, **baseline}
        stage = StageResult(name="benchmark", details=details)
        if baseline.get("error"):
            return EvalResult(status=Status.HARNESS_ERROR, reason=f"benchmark: the reference: {baseline['error']}",
                              stages=(stage,), env=environment(), device=self.device_label())
        return EvalResult(status=Status.OK, metrics={CONFIG: 0.0}, score=0.0, stages=(stage,), env=environment(),
                          device=self.device_label(),
                          reason="the reference itself (eager PyTorch), the search's starting point: its score is 0 "
                                 "by convention so that the first correct kernel is kept whatever its speed; the "
                                 "eager and torch.compile times are in its benchmark details")

    def check(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Parse, the contract (class ModelNew with forward), the static legality scan, the AOT compile."""
        source = candidate.files.get(self.entry)
        if source is None:
            return StageResult.fail(Status.COMPILE_ERROR, f"the candidate has no {self.entry} "
                                                          f"(its files: {sorted(candidate.files)})")
        try:
            findings = legality.scan(source, entry="ModelNew")
        except SyntaxError as exc:
            return StageResult.fail(Status.COMPILE_ERROR, f"line {exc.lineno}: SyntaxError: {exc.msg}")
        problem = check_contract(source)
        if problem:
            return StageResult.fail(Status.COMPILE_ERROR, problem)
        if detect_language(source) is Language.CUDA:
            return self._check_cuda(source, findings)
        if findings:
            return illegal(findings)
        reports, failed = self._static_reports(source, candidate, sandbox)
        if failed is not None:
            return StageResult.fail(hardware_or(failed), f"static compile: {sandbox_failure(failed, self.entry)}",
                                    logs=failed.logs + "\n" + failed.reason)
        return static_check(reports, "ModelNew.forward")

    def _check_cuda(self, source: str, findings: list[legality.Finding]) -> StageResult:
        """A CUDA candidate's check: how it builds CUDA_SOURCE, the CUDA legality scan, nvcc for each arch."""
        return cuda_static.check_candidate(source, findings, self.cuda_static, self.archs, self.entry)

    def _static_reports(self, source: str, candidate: Candidate, sandbox: Executor) -> tuple[dict[str, Any], Any]:
        from .child import compile_launches

        plan = self._plan("benchmark", sandbox)
        shapes = [{"name": CONFIG, "inputs": plan["inputs"], "init_inputs": plan["init_inputs"]}]
        reports: dict[str, Any] = {}
        keys = {arch: _static_key(source, arch, shapes) for arch in self.archs}
        missing = []
        for arch in self.archs:
            cached = self.static.load_cached(keys[arch])
            if cached is not None:
                reports[arch] = {**cached, "cached": True}
            else:
                missing.append(arch)
        if missing:
            out = self._candidate_call(sandbox, compile_launches, self.entry, shapes, missing,
                                       self._triton_cache(candidate), candidate=candidate)
            if not out.ok:
                return reports, out
            for arch in missing:
                report = summarise(arch, [r for r in out.value["launches"] if r["arch"] == arch],
                                   out.value["wrapper_errors"])
                report["kernels_defined"] = out.value["kernels_defined"]
                if not report["oom"]:
                    self.static.store_cached(keys[arch], report)
                reports[arch] = {**report, "cached": False}
        return {arch: reports[arch] for arch in self.archs}, None

    def _cuda_without_gpu(self, candidate: Candidate) -> StageResult | None:
        try:
            cuda = not self.on_gpu and detect_language(candidate.files.get(self.entry, "")) is Language.CUDA
        except SyntaxError:
            return None
        if not cuda:
            return None
        return StageResult.fail(Status.NEEDS_DEVICE, "a CUDA candidate runs only on a GPU and this machine has none; "
                                                     "its check stage (nvcc, static report) is all that ran here")

    def test(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Correctness on fresh inputs: each test shape x seeds x input modes, against the reference process."""
        from .child import run_cases
        from .reference_child import reference_cases

        no_gpu = self._cuda_without_gpu(candidate)
        if no_gpu is not None:
            return no_gpu
        references, wheres, skipped, names = [], [], [], []
        for shape in self.test_shapes(sandbox):
            with self._lock:
                cases = [{"seed": int(self._draws.integers(2**31)), "mode": mode,
                          "scale": float(10 ** self._draws.uniform(-1, 1))}
                         for _ in range(self.seeds) for mode in MODES]
            out = self._reference_call(sandbox, reference_cases, cases, constants=shape)
            if not out.ok:
                return StageResult.fail(Status.HARNESS_ERROR, f"the reference failed: {out.reason.splitlines()[0]}")
            for case, ref in zip(cases, out.value):
                if "error" in ref:
                    skipped.append(f"{_shape_name(shape)}: {ref['error']}")
                    continue
                references.append(ref)
                names.append(_shape_name(shape))
                wheres.append(f"shape {_shape_name(shape)}, {case['mode']} inputs (seed {case['seed']})")
        if not references:
            return StageResult.fail(Status.HARNESS_ERROR, f"the reference ran on no test shape: {skipped[:2]}")
        sent = [{k: ref[k] for k in ("init_inputs", "inputs", "state")} for ref in references]
        out = self._candidate_call(sandbox, run_cases, self.entry, sent, not self.on_gpu,
                                   self._triton_cache(candidate), candidate=candidate)
        if not out.ok:
            return StageResult.fail(hardware_or(out), sandbox_failure(out, self.entry),
                                    logs=out.logs + "\n" + out.reason)
        malformed = malformed_report(out.value, "cases", len(sent))
        if malformed:
            return StageResult.fail(Status.ILLEGAL, malformed, logs=out.logs)
        verdict = judge_timers(out.value["timers_changed"])
        for where, ref, result in zip(wheres, references, out.value["cases"]):
            if not verdict.ok:
                break
            verdict = judge_case(where, ref, result)
        details = {"cases": len(references), "shapes": list(dict.fromkeys(names)),
                   "skipped_shapes": sorted(set(skipped)), "kernels_launched": out.value["kernels"],
                   "device": self.device_label(), "seconds_in_child": round(out.wall_s, 3)}
        if not verdict.ok:
            return StageResult.fail(verdict.status, verdict.reason, details=details, logs=out.logs)
        return StageResult(details=details, logs=out.logs)

    def _baselines(self, sandbox: Executor) -> dict[str, Any]:
        """Eager and torch.compile times of the reference at the benchmark shape (measured once per evaluator)."""
        from .reference_child import time_reference

        with self._lock:
            if self._baseline is not None:
                return self._baseline
        plan = self._plan("benchmark", sandbox)
        reps, warmup = self._reps()
        out = self._reference_call(sandbox, time_reference, 0, reps, warmup, "cuda" if self.on_gpu else "cpu",
                                   self.baselines, constants=plan["constants"])
        if not out.ok:
            return {"error": out.reason.splitlines()[0] if out.reason else out.status.value}
        times = out.value["times_ms"]
        if "eager" not in times:
            return {"error": f"eager reference failed: {out.value['errors'].get('eager')}"}
        baseline = {"shape": _shape_name(plan["constants"]), "eager_ms": min(times["eager"]),
                    "compile_ms": min(times["compile"]) if "compile" in times else None,
                    "baseline_errors": out.value["errors"]}
        with self._lock:
            self._baseline = baseline
        return baseline

    def _reps(self) -> tuple[int, int]:
        reps = self.reps or (30 if self.on_gpu else 5)
        return reps, self.warmup if self.warmup is not None else (3 if self.on_gpu else 1)

    def benchmark(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        """Speedup over eager PyTorch (torch.compile's beside it) at the problem's shape (scaled without a GPU)."""
        from .child import serve_candidate, time_candidate
        from .measure import drive_candidate, driver_class
        from .reference_child import reference_cases

        no_gpu = self._cuda_without_gpu(candidate)
        if no_gpu is not None:
            return no_gpu
        baseline = self._baselines(sandbox)
        if baseline.get("error"):
            return StageResult.fail(Status.HARNESS_ERROR, f"the reference's timing failed: {baseline['error']}")
        plan = self._plan("benchmark", sandbox)
        reps, warmup = self._reps()
        with self._lock:
            seed = int(self._draws.integers(2**31))
            sets = [{"seed": seed, "input_seed": int(self._draws.integers(2**31)), "mode": "signed", "scale": 1.0}
                    for _ in range(reps)]
        ref = self._reference_call(sandbox, reference_cases, sets, constants=plan["constants"])
        if not ref.ok or any("error" in r for r in ref.value):
            return StageResult.fail(Status.HARNESS_ERROR, "the reference failed at the benchmark shape")
        references = ref.value
        driver = driver_class()
        if driver is not None and not self.on_gpu:  # the trusted process drives each call and times it
            out = self._candidate_call(sandbox, serve_candidate, self.entry, references[0]["init_inputs"],
                                       references[0]["state"], True, self._triton_cache(candidate),
                                       candidate=candidate,
                                       driver=driver(drive_candidate, ([r["inputs"] for r in references], warmup)))
        else:
            out = self._candidate_call(sandbox, time_candidate, self.entry, references[0]["init_inputs"],
                                       references[0]["state"], [r["inputs"] for r in references], warmup,
                                       not self.on_gpu, self._triton_cache(candidate), candidate=candidate)
        if not out.ok:
            return StageResult.fail(hardware_or(out), sandbox_failure(out, self.entry),
                                    logs=out.logs + "\n" + out.reason)
        return self._judge_benchmark(baseline, references, out)

    def _judge_benchmark(self, baseline: dict[str, Any], references: list[dict[str, Any]],
                         out: SandboxResult) -> StageResult:
        from .judge import check_outputs

        value = out.value
        if (not isinstance(value, dict) or not isinstance(value.get("times_ms"), list)
                or len(value["times_ms"]) != len(references) or not isinstance(value.get("outputs"), list)
                or len(value["outputs"]) != len(references)):
            return StageResult.fail(Status.ILLEGAL, "the timing report from the candidate's process is malformed")
        driven = value.get("driven") is True
        if value.get("error"):
            return StageResult.fail(Status.CRASH, f"the driven benchmark failed: {value['error']}", logs=out.logs)
        verdict = judge_timers([] if driven else value.get("timers_changed", []))
        for index, (reference, outputs) in enumerate(zip(references, value["outputs"])):
            if not verdict.ok:
                break
            verdict = check_outputs(f"the benchmark's timed call {index + 1} of {len(references)} (fresh inputs "
                                    "copied into the same tensors)", reference, outputs)
        times = [float(t) for t in value["times_ms"]]
        total_s = sum(times) / 1e3
        if verdict.ok and not driven and (min(times) <= 0 or total_s > out.wall_s * 1.05 + 0.05):
            verdict = type(verdict)(status=Status.ILLEGAL, reason=f"reported times ({total_s:.3f} s) do not fit the "
                                                                  f"sandbox's own clock ({out.wall_s:.3f} s)")
        candidate_ms = min(times) if not self.on_gpu else float(np.median(times))
        speedup = baseline["eager_ms"] / candidate_ms
        compile_ms = baseline.get("compile_ms")
        details = {**baseline, "candidate_ms": round(candidate_ms, 6), "speedup": round(speedup, 6),
                   "compile_speedup": None if not compile_ms else round(baseline["eager_ms"] / compile_ms, 6),
                   "speedup_vs_compile": None if not compile_ms else round(compile_ms / candidate_ms, 6),
                   "device": self.device_label(), "authoritative": False,
                   "timed_in": "the trusted process's clock (a driven call: fresh inputs in, outputs out per call)"
                   if driven else "the candidate's process (interim; see docs/kernels.md)"}
        if not verdict.ok:
            return StageResult.fail(verdict.status, verdict.reason, details=details, logs=out.logs)
        return StageResult(metrics={CONFIG: speedup}, details=details, logs=out.logs)


def check_contract(source: str) -> str | None:
    """Why `source` does not define `class ModelNew` with a `forward` method, or None if it does."""
    import ast

    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelNew"]
    if not found:
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        return (f"no module-level class 'ModelNew'; define `class ModelNew(nn.Module)` with the reference Model's "
                f"constructor and forward (classes found: {classes or 'none'})")
    if not any(isinstance(n, ast.FunctionDef) and n.name == "forward" for n in found[-1].body):
        return f"line {found[-1].lineno}: class ModelNew has no forward method"
    return None


def _shape_name(constants: Mapping[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in constants.items()) or "as given"


def _static_key(source: str, arch: str, shapes: list[dict[str, Any]]) -> str:
    from ..attention.static import triton_version

    text = json.dumps(["kernel", STATIC_VERSION, source, arch, triton_version(), shapes], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
