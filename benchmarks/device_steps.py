"""The device check's steps other than the benchmark; each adds its part to OUT/device_check.json as it goes.

    python benchmarks/device_steps.py versions --out OUT          # versions and the import check (fresh report)
    python benchmarks/device_steps.py evolve --out OUT --budget-s 120 [--seed FILE ...] [--suite NAME] [--trials N]
    python benchmarks/device_steps.py profile --out OUT [--seed FILE] [--suite NAME]
    python benchmarks/device_steps.py record --out OUT --step NAME --rc N --seconds S [--note TEXT]
    python benchmarks/device_steps.py compile [--seed FILE ...] [--arch sm_90a ...] [--expect-triton 3.6.0]

`evolve` runs a short evolution with the offline policy (HeuristicPolicy: knowledge-base recipes and
marked-parameter moves, no model) through the real engine, sandbox and attention evaluator, and
writes a before/after table (the seed's per-configuration TFLOPS against the best committed
version's) after every trial; it fails (exit 1) when no seed got a score. `profile` runs the
evaluator's profile stage on a seed: per-kernel GPU times (torch.profiler, saved at once), then on a
GPU Nsight Compute's speed-of-light section, run from this trusted process with its own short
timeout (`--ncu-timeout-s`, default 45 s); the static profile without a GPU. `versions` also records
where nvcc, ninja and ncu are, CUDA_HOME and the toolkit the build uses, the Landlock ABI and
whether user namespaces can be made.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_report  # noqa: E402

OPTIONAL = ("bm25s", "anthropic", "pydantic", "flash_attn", "flash_attn_interface")


def versions(out: Path) -> int:
    """A fresh report holding the device and versions; fails (exit 1) if evoagent cannot be imported."""
    from attention_bench import device_facts
    from attention_bench import versions as library_versions

    report = device_report.load(out)
    report.update(device=report.get("device", {}) | device_facts(), versions=library_versions())
    optional = {}
    for name in OPTIONAL:
        try:
            importlib.import_module(name)
            optional[name] = "importable"
        except Exception as exc:
            optional[name] = f"not importable ({type(exc).__name__})"
    report["versions"]["optional"] = optional
    report["versions"]["tools"] = tool_facts()
    report["versions"]["confinement"] = confinement_facts()
    problem = ""
    try:
        import evoagent
        import evoagent.llm  # noqa: F401
        import evoagent.targets.attention  # noqa: F401
        from evoagent.knowledge import KnowledgeBase

        hits = KnowledgeBase().search("skip fully masked key blocks", k=1)
        report["versions"]["import_check"] = f"ok: evoagent {evoagent.__version__}, knowledge search -> " + (
            f"{hits[0].doc}#{hits[0].section}" if hits else "no hit")
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
        report["versions"]["import_check"] = f"failed: {problem}"
    device_report.save(report, out)
    print(f"device: {report['device']}\nversions: {report['versions']}", flush=True)
    if problem:
        print(f"import check failed: {problem}", file=sys.stderr)
    return 1 if problem else 0


def tool_facts() -> dict[str, Any]:
    """Where nvcc, ninja and ncu are (`which`), nvcc's version, CUDA_HOME as set and as the build sets it."""
    from evoagent.targets.attention.cuda_build import toolkit_root
    from evoagent.targets.attention.cuda_static import nvcc_version

    facts: dict[str, Any] = {name: shutil.which(name) for name in ("nvcc", "ninja", "ncu", "nvidia-smi")}
    facts["nvcc_version"] = nvcc_version()
    facts["CUDA_HOME"] = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    root = toolkit_root()
    facts["toolkit"] = str(root) if root else None
    return facts


def confinement_facts() -> dict[str, Any]:
    """The sandbox's means on this kernel: Landlock ABI and whether user namespaces can be made."""
    from evoagent.confinement import landlock_abi

    facts: dict[str, Any] = {"landlock_abi": landlock_abi()}
    for name in ("/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"):
        try:
            facts[name.rsplit("/", 1)[1]] = Path(name).read_text().strip()
        except OSError:
            facts[name.rsplit("/", 1)[1]] = None
    return facts


# -- the short evolution --------------------------------------------------------------------------


def evolve(out: Path, seeds: list[Path], suite: str | None, budget_s: float, trials: int, run_dir: Path | None) -> int:
    import evoagent as ea
    from evoagent.knowledge import KnowledgeBase
    from evoagent.llm import HeuristicPolicy
    from evoagent.targets.attention import AttentionEvaluator
    from evoagent.targets.attention.evaluator import cuda_available

    gpu = cuda_available()
    suite = suite or ("h100-short" if gpu else "smoke")
    # One input draw per test shape and two extra shapes keep a trial short; on a GPU, cuDNN and the
    # other baselines are timed next to every version (so the table has best / cuDNN), and a result is
    # re-measured once before it is committed.
    evaluator = AttentionEvaluator(suite, seed=0, seeds=1, extra_shapes=2)
    population = ea.Chain(confirm=1 if gpu else 0)
    directory = run_dir or Path(tempfile.mkdtemp(prefix="evoagent-device-evolve-")) / "run"
    run = ea.Run.create(directory, evaluator=evaluator, seeds=[str(s) for s in seeds], population=population)
    section: dict[str, Any] = {"status": "running", "suite": suite, "run_dir": str(directory),
                               "seeds": [s.name for s in seeds], "budget_s": budget_s, "max_trials": trials,
                               "operator": "agentic + HeuristicPolicy (offline)"}
    started = time.perf_counter()
    device_report.update(out, evolution=section)

    def on_event(event: Any) -> None:
        if event.kind in ("seed", "trial", "commit"):
            device_report.update(out, evolution=section | _progress(run, started))
            print(f"evolution {event.kind}: {event.payload}", flush=True)

    operator = ea.AgenticVariationOperator(llm=HeuristicPolicy(knowledge=KnowledgeBase(), seed=0))
    with run:
        result = ea.evolve(run, operator, ea.Budget(trials=trials, hours=budget_s / 3600), on_event=on_event)
        final = section | _progress(run, started) | {"status": "done", "stopped_because": result.stopped_because}
        if result.best is not None:
            final["best_source_file"] = "evolved_best.py"
            (out / "evolved_best.py").write_text(result.best.path.read_text())
    device_report.update(out, evolution=final)
    print(final["summary"], flush=True)
    scored = [t for t in final["trials"] if t["operator"] == "seed" and t["score"] is not None]
    if not scored:
        print("evolution measured nothing: no seed got a score", file=sys.stderr)
    return 0 if scored else 1


def _progress(run: Any, started: float) -> dict[str, Any]:
    """The trials so far and the before/after table: best seed against the best committed version."""
    trials = run.store.trials(include_seeds=True)
    rows = [{"id": t.id, "operator": t.operator, "status": t.status.value if t.status else t.state,
             "score": t.score, "committed": t.committed, "hypothesis": t.hypothesis, "wall_s": t.wall_s}
            for t in trials]
    seeds = [t for t in trials if t.operator == "seed" and t.score is not None]
    seed = max(seeds, key=lambda t: t.score, default=None)
    best = run.best_result
    table = []
    if seed is not None and best is not None:
        cudnn = _cudnn_tflops(best)
        for config, before in seed.metrics.items():
            after = best.metrics.get(config)
            table.append({"config": config, "seed": before, "best": after,
                          "ratio": round(after / before, 4) if after and before else None,
                          "cudnn": cudnn.get(config),
                          "best_vs_cudnn": round(after / cudnn[config], 4) if after and cudnn.get(config) else None})
    variations = [t for t in trials if t.operator != "seed"]
    committed = sum(1 for t in variations if t.committed)
    gain = (best.score / seed.score) if seed is not None and best is not None and best.score and seed.score else None
    summary = (f"{len(variations)} trials in {time.perf_counter() - started:.0f} s, {committed} committed; "
               + (f"best / seed geometric mean {gain:.3f}x" if gain else "no score yet"))
    return {"trials": rows, "before_after": table, "summary": summary}


def _cudnn_tflops(result: Any) -> dict[str, float]:
    """cuDNN's TFLOPS per configuration as timed next to this version (GPU only; empty otherwise)."""
    stage = result.stage("benchmark")
    rows = stage.details.get("table", []) if stage is not None else []
    return {r["config"]: r["tflops"]["sdpa-cudnn"] for r in rows if "sdpa-cudnn" in r.get("tflops", {})}


# -- the profile stage ----------------------------------------------------------------------------


def profile(out: Path, seed: Path, suite: str | None, ncu_timeout_s: float = 45.0) -> int:
    import dataclasses

    from evoagent.candidate import Candidate
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator
    from evoagent.targets.attention.cli import format_check
    from evoagent.targets.attention.evaluator import cuda_available

    gpu = cuda_available()
    # The sandboxed profile stage gives the torch.profiler table; Nsight Compute runs afterwards from
    # this (trusted) process on the seed, with its own short timeout (trusted_ncu).
    evaluator = AttentionEvaluator(suite or ("h100-mha" if gpu else "smoke"), ncu=False, seed=0)
    config = evaluator.sandbox_config()
    if not gpu:
        config = dataclasses.replace(config, gpus=())
    started = time.perf_counter()
    device_report.update(out, profile={"status": "running", "seed": seed.name, "suite": evaluator.suite.name})
    with Sandbox(config) as sandbox:
        result = evaluator.evaluate(Candidate.from_path(seed, entry=evaluator.entry), sandbox, stages=("profile",))
    stage = result.stage("profile")
    details = dict(stage.details) if stage is not None else {}
    section = {"status": result.status.value, "reason": result.reason, "seed": seed.name,
               "suite": evaluator.suite.name, "seconds": round(time.perf_counter() - started, 1),
               "config": details.get("config", ""), "kernels": details.get("kernels", []),
               "ncu": details.get("ncu"), "text": format_check(result)}
    device_report.update(out, profile=section)
    print(section["text"], flush=True)
    if gpu and section["config"]:
        section["ncu"] = trusted_ncu(seed, evaluator.suite.name, str(section["config"]), ncu_timeout_s)
        device_report.update(out, profile=section)
        ncu = section["ncu"]
        print("\n".join(ncu.get("csv", [])[:20]) or f"ncu: {ncu}", flush=True)
    return 0 if result.status.value == "ok" else 1


_NCU_PROBE = """
import importlib.util, math, sys
import torch
sys.path[:0] = [{bench!r}, {src!r}]
from attention_bench import make_inputs, suite_configs
config = next(c for c in suite_configs({suite!r}) if c.name == {config!r})
spec = importlib.util.spec_from_file_location("seed", {seed!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
q, k, v = make_inputs(config, "cuda")
for _ in range(2):
    module.attention(q, k, v, causal=config.causal, sm_scale=1 / math.sqrt(config.head_dim))
torch.cuda.synchronize()
"""


def trusted_ncu(seed: Path, suite: str, config: str, timeout_s: float) -> dict[str, Any]:
    """Nsight Compute's SpeedOfLight section of the seed's kernels on one configuration, run from here
    (not from the confined sandbox, where ncu may not reach its target), stopped after `timeout_s`."""
    ncu = shutil.which("ncu")
    if ncu is None:
        return {"available": False}
    probe = _NCU_PROBE.format(bench=str(ROOT / "benchmarks"), src=str(ROOT / "src"), suite=suite, config=config,
                              seed=str(seed.resolve()))
    # --clock-control none: the clocks as they are (ncu would otherwise lock them to base).
    command = [ncu, "--csv", "--clock-control", "none", "--section", "SpeedOfLight", "--kernel-name",
               "regex:attention", "--launch-count", "3", sys.executable, "-c", probe]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # ncu and its target
        process.communicate()
        return {"available": True, "error": f"ncu took longer than {timeout_s:g} s (stopped)", "config": config}
    rows = [line for line in stdout.splitlines() if line.startswith('"')]
    return {"available": True, "returncode": process.returncode, "config": config, "csv": rows[:40],
            "seconds": round(time.perf_counter() - started, 1),
            "stderr_tail": stderr[-500:] if process.returncode else ""}


def compile_seeds(seeds: list[Path], archs: list[str], expect_triton: str | None) -> int:
    """The check stage per seed and arch; exit 1 unless every one compiles and uses tensor cores."""

    import triton

    from evoagent.candidate import Candidate
    from evoagent.sandbox import Sandbox
    from evoagent.targets.attention import AttentionEvaluator
    from evoagent.targets.attention.cli import format_check

    print(f"triton {triton.__version__} ({Path(triton.__file__).parent})", flush=True)
    if expect_triton and triton.__version__ != expect_triton:
        print(f"expected Triton {expect_triton}, found {triton.__version__}", file=sys.stderr)
        return 1
    evaluator = AttentionEvaluator("h100-mha", archs=archs)
    failures = []
    with Sandbox(evaluator.sandbox_config()) as sandbox:  # the check stage runs on a CPU worker (no GPU visible)
        for seed in seeds:
            result = evaluator.evaluate(Candidate.from_path(seed, entry=evaluator.entry), sandbox, stages=("check",))
            print(f"== {seed.name}\n{format_check(result)}", flush=True)
            stage = result.stage("check")
            static = stage.details.get("static", {}) if stage is not None else {}
            for arch in archs:
                kernels = static.get(arch, {}).get("kernels", [])
                if result.status.value != "ok" or not any(k.get("tensor_core") for k in kernels):
                    failures.append(f"{seed.name} on {arch}: {result.status.value} {result.reason}".rstrip())
    print("\n".join(failures) if failures else f"compiled {len(seeds)} seed(s) for {', '.join(archs)}")
    return 1 if failures else 0


def record(out: Path, step: str, rc: int, seconds: float, note: str) -> int:
    status = {0: "ok", 124: "timeout", 137: "killed"}.get(rc, f"failed (exit {rc})")
    device_report.update(out, steps={step: {"status": status, "rc": rc, "seconds": seconds, "note": note}})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("versions", "evolve", "profile", "record", "compile"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    sub.choices["evolve"].add_argument("--seed", action="append", type=Path, help="seed file (repeatable)")
    sub.choices["evolve"].add_argument("--suite")
    sub.choices["evolve"].add_argument("--budget-s", type=float, default=120.0, help="start no trial after this")
    sub.choices["evolve"].add_argument("--trials", type=int, default=20)
    sub.choices["evolve"].add_argument("--run-dir", type=Path, help="where the run's store goes (default: a temp dir)")
    sub.choices["profile"].add_argument("--seed", type=Path)
    sub.choices["profile"].add_argument("--suite")
    sub.choices["profile"].add_argument("--ncu-timeout-s", type=float, default=45.0, help="Nsight Compute's own limit")
    sub.choices["record"].add_argument("--step", dest="name", required=True)
    sub.choices["record"].add_argument("--rc", type=int, required=True)
    sub.choices["record"].add_argument("--seconds", type=float, required=True)
    sub.choices["record"].add_argument("--note", default="")
    sub.choices["compile"].add_argument("--seed", action="append", type=Path, help="seed file (repeatable)")
    sub.choices["compile"].add_argument("--arch", action="append", help="sm_90a (default) and/or sm_100a")
    sub.choices["compile"].add_argument("--expect-triton", help="fail unless this Triton version is imported")
    args = parser.parse_args(argv)
    if args.step == "versions":
        return versions(args.out)
    if args.step == "record":
        return record(args.out, args.name, args.rc, args.seconds, args.note)
    from attention_bench import default_seeds

    if args.step in ("evolve", "compile"):
        # Default: the Triton seeds (compile checks the Triton version's path; the evolution step's time
        # budget would go to building the CUDA seed's extension). Name a CUDA seed with --seed to include it.
        seeds = args.seed or default_seeds("triton")
        missing = [str(s) for s in seeds if not s.is_file()]
        if missing:
            parser.error(f"seed file(s) {missing} do not exist")
        if args.step == "compile":
            return compile_seeds(seeds, args.arch or ["sm_90a"], args.expect_triton)
        return evolve(args.out, seeds, args.suite, args.budget_s, args.trials, args.run_dir)
    from evoagent.targets.attention import default_seed

    seed = args.seed or default_seed()
    if not seed.is_file():
        parser.error(f"seed file {str(seed)!r} does not exist")
    return profile(args.out, seed, args.suite, args.ncu_timeout_s)


if __name__ == "__main__":
    # `timeout` stops a step with SIGTERM: exit through the context managers, so sandboxes close.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
