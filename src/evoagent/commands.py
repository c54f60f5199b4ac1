"""Handlers of the `evoagent` subcommands (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import assemble, views
from .config import Budget, RunConfig, config_sets, load_config
from .engine import EvolveResult, evolve
from .errors import ConfigError, EvoagentError, RunStoreError
from .evaluator import Evaluator
from .executors import ExecutorConfig, check_available, cluster_output, join_cluster
from .operators.base import VariationOperator
from .progress import LiveText
from .result import format_score
from .run import Run, gone_writer
from .services import Knowledge


def run(args: argparse.Namespace) -> int:
    if Path(args.config).suffix == ".toml" or Path(args.config).exists():
        if getattr(args, "problem", None):
            raise ConfigError(f"a problem file follows the kernel target only (evoagent run kernel PROBLEM.py); "
                              f"{args.config!r} is a config file: set its [evaluator] target = \"kernel:PROBLEM.py\"")
        config = _with_suite(load_config(args.config), args.suite)
        name = Path(args.config).parent.name or "run"
    else:
        from .targets.kernel.problem import parse_shape_overrides

        problem = getattr(args, "problem", None)
        config = assemble.builtin_config(args.config, suite=args.suite, problem=problem,
                                         shape=parse_shape_overrides(getattr(args, "shape", None)))
        name = Path(problem or args.config.partition(":")[2]).stem or args.config
    if getattr(args, "lang", None):
        config = assemble.with_language(config, args.lang, getattr(args, "seeds", None))
    elif getattr(args, "seeds", None):
        config = assemble.with_builtin_seeds(config, args.seeds)
    config = _with_overrides(config, args)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if config.operator.kind == "agentic" and (config.operator.llm or config.operator.models):
        assemble.build_model(config.operator)  # a missing API key fails now, not after the target (torch) loads
    evaluator = assemble.build_evaluator(config)
    seeds = assemble.seed_paths(config)
    population = assemble.build_population(config)
    if (config.knowledge.paths or config.knowledge.lesson_runs) and config.operator.kind == "parameter_mutation":
        raise ConfigError("[knowledge] is read by the agentic operators only; operator kind is "
                          "'parameter_mutation' (remove the section or choose kind = \"agentic\")")
    agents = _Agents.build(config, evaluator)  # a bad operator or knowledge config fails before anything is created
    check_available(config.executor)
    config, agents = _sized_for_cluster(config, agents, evaluator, slots_given=_slots_given(args))
    run_ = Run.create(run_dir, evaluator=evaluator, seeds=seeds, population=population,
                      config=assemble.config_to_dict(config))
    return _evolve(run_, config, agents, quiet=args.quiet)


def resume(args: argparse.Namespace) -> int:
    run_ = Run.open(args.run_dir)
    config = assemble.config_from_dict(run_.config)
    config = _with_overrides(config, args)
    stored = run_.config
    run_.store.set_meta("config", {**stored, **assemble.config_to_dict(config)})
    agents = _Agents.build(config, run_.evaluator, instruction=stored.get("instruction", ""))
    config, agents = _sized_for_cluster(config, agents, run_.evaluator, slots_given=True)  # the run's slots
    for operator in agents.operators:  # the agents start from a summary of their earlier work
        operator.remember(run_.store.transcript())
    return _evolve(run_, config, agents, quiet=args.quiet)


def _slots_given(args: argparse.Namespace) -> bool:
    """Whether the user chose the slots (--slots, or `slots` in the config file's [engine] table)."""
    if getattr(args, "slots", None) is not None:
        return True
    return Path(args.config).suffix == ".toml" and config_sets(args.config, "engine", "slots")


def _sized_for_cluster(config: RunConfig, agents: _Agents, evaluator: Evaluator, *,
                       slots_given: bool) -> tuple[RunConfig, _Agents]:
    """With Ray: joins the cluster before any run directory exists (a connection problem is one line), sizes
    the slots to its CPUs unless the user chose them, and says in one line what the run will use."""
    joined = join_cluster(config.executor, config.sandbox_for(evaluator.sandbox_config()))
    if joined is None:
        return config, agents
    described, cpus = joined
    slots = config.engine.slots
    if not slots_given and cpus > slots:
        slots = cpus
        config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, slots=slots))
        agents = _Agents.build(config, evaluator)
        use = f"{slots} slots, one per CPU (--slots N or [engine] slots changes it)"
    elif slots < cpus:
        use = f"{slots} slot{'s' if slots != 1 else ''} keep at most {slots} of its {cpus} CPUs busy " \
              f"(--slots {cpus} or [engine] slots = {cpus} uses them all)"
    else:
        use = f"{slots} slot{'s' if slots != 1 else ''} for its {cpus} CPU{'s' if cpus != 1 else ''}"
    print(f"evoagent: executor {described}: {use}", file=sys.stderr)
    return config, agents


def _with_suite(config: RunConfig, suite: str | None) -> RunConfig:
    if not suite:
        return config
    return dataclasses.replace(config, evaluator=dataclasses.replace(
        config.evaluator, params={**config.evaluator.params, "suite": suite}))


def _with_overrides(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    budget = config.budget
    for name in ("trials", "hours", "usd"):
        if getattr(args, name, None) is not None:
            budget = dataclasses.replace(budget, **{name: getattr(args, name)})
    engine = config.engine
    if getattr(args, "slots", None) is not None:
        engine = dataclasses.replace(engine, slots=args.slots)
    operator = config.operator
    if getattr(args, "model", None):
        if operator.kind != "agentic":
            raise ConfigError(f"--model is for the agentic operator; the config's operator kind is {operator.kind!r}")
        operator = dataclasses.replace(operator, llm={**operator.llm, "model": args.model})
    executor, address = config.executor, getattr(args, "ray_address", None)
    kind = getattr(args, "executor", None) or ("ray" if address else None)
    if kind:  # --executor ray keeps the config's address unless --ray-address names another
        executor = ExecutorConfig(kind=kind, address=address or (executor.address if kind == executor.kind else None))
    return dataclasses.replace(config, budget=budget, engine=engine, operator=operator, executor=executor)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Agents:
    """The knowledge base and one operator per slot, built once from a config."""

    knowledge: Knowledge | None
    operators: tuple[VariationOperator, ...]

    @classmethod
    def build(cls, config: RunConfig, evaluator: Evaluator, *, instruction: str = "") -> _Agents:
        knowledge = (assemble.build_knowledge(config, evaluator) if config.operator.kind != "parameter_mutation"
                     else None)
        return cls(knowledge=knowledge, operators=tuple(
            assemble.build_operator(config, knowledge, instruction=instruction) for _ in range(config.engine.slots)))


def _interruptible() -> None:
    """Lets SIGINT stop a run started in the background as Ctrl-C does.

    A shell's `cmd &` and nohup start the process with SIGINT ignored, so Python never installs its
    KeyboardInterrupt handler and `kill -INT` would do nothing; the default handler is put back then.
    The sandbox servers started later inherit the default action, as they do in the foreground.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _evolve(run_: Run, config: RunConfig, agents: _Agents, *, quiet: bool) -> int:
    _interruptible()
    evaluator = run_.evaluator
    caption = evaluator.score_caption(evaluator.device_label())
    print(f"evoagent: run {run_.dir} | target {evaluator.name} on {evaluator.device_label()} | "
          f"operator {_operator_line(config, agents.operators[0])} | budget {_budget_line(config.budget)} | "
          f"score: {caption}, higher is better", file=sys.stderr)
    options = dataclasses.replace(config.engine, knowledge=agents.knowledge, progress=not quiet,
                                  sandbox_config=config.sandbox_for(evaluator.sandbox_config()),
                                  executor=config.executor)
    with run_:
        with cluster_output(config.executor, run_.dir / "ray.log"):  # Ray's own dumps: in the run, not the console
            result = evolve(run_, list(agents.operators), config.budget, options)
        _print_summary(run_, result, caption)
    return 0 if result.best is not None else 1


def _operator_line(config: RunConfig, operator: VariationOperator) -> str:
    """The operator and its model, saying when 'agentic' runs offline because no key is set."""
    llm = getattr(operator, "llm", None)
    if llm is None:
        return operator.name
    describe = getattr(llm, "describe", None)
    line = f"{operator.name}, model {describe() if callable(describe) else llm.name}"
    if config.operator.kind == "agentic" and not (config.operator.llm or config.operator.models) \
            and llm.name == "heuristic":
        line += " (ANTHROPIC_API_KEY is not set; set it or [operator.llm] to use Claude)"
    return line


def _budget_line(budget: Budget) -> str:
    parts = [f"{budget.trials or 'unlimited'} trials"]
    if budget.hours is not None:
        parts.append(f"{budget.hours:g} h")
    if budget.tokens is not None:
        parts.append(f"{budget.tokens} tokens")
    if budget.usd is not None:
        parts.append(f"${budget.usd:.2f}")
    return ", ".join(parts)


def _print_summary(run_: Run, result: EvolveResult, caption: str) -> None:
    summary = views.summarize(run_.store, caption=caption)
    print(f"stopped: {result.stopped_because}")
    print(f"trials: {summary.trials}  committed: {summary.committed}  labels: "
          + (", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items())) or "none"))
    if result.best is None:
        print("no correct version: the reasons are in `evoagent show RUN TRIAL` and the report")
    else:
        seed = f", {summary.seed_text()}" if summary.ratio_to_seed is not None else ""
        print(f"best: version {result.best.candidate.id}, score {format_score(result.best.score)} {caption}{seed}")
        print(f"best version written to {result.best.path}")
    where = shlex.quote(str(run_.dir))
    print(f"run stored in {run_.dir}; next:")
    print(f"  evoagent report {where} --open     # HTML report: scores, lineage, every trial's diff")
    print(f"  evoagent resume {where} --trials N # continue the search (finished trials are kept)")
    print(f"  evoagent status {where} --watch    # follow it; evoagent best {where} prints the best version")


def status(args: argparse.Namespace) -> int:
    if args.watch and not args.json:
        return _watch(Path(args.run_dir), args.interval)
    with Run.open(args.run_dir, readonly=True) as run_:
        summary = run_.status()
        if args.json:
            print(json.dumps(summary, sort_keys=True))
            return 0
        print(_status_text(run_))
        confinement = summary["confinement"]
        print(f"  sandbox confinement {confinement['description'] if confinement else 'not recorded (no session yet)'}")
        print(f"  executor {summary['executor'] or 'not recorded (no session yet)'}")
        for node in summary["executor_nodes"]:
            print(_node_line(node))
        if summary["retries"]:
            print(f"  retried {summary['retries']} evaluation(s) whose machine was lost (`evoagent show RUN TRIAL`)")
        for gpu in summary["gpu_usage"]:
            busy = "-" if gpu["busy_fraction"] is None else f"{gpu['busy_fraction']:.1%}"
            print(f"  GPU {gpu['device']}: busy {busy} of the wall time ({gpu['busy_s']:.0f} s of "
                  f"{gpu['wall_s']:.0f} s, {gpu['calls']} calls)")
        per = summary["tokens_per_trial"]
        if per is not None:
            print(f"  per trial: input {per['input']:.0f}, output {per['output']:.0f}, cache read "
                  f"{per['cache_read']:.0f}, cache write {per['cache_write']:.0f} tokens; "
                  f"${summary['usd_per_trial']:.4f}")
        niches = run_.lineage.niche_lines()
        if niches:
            migrated = f", {summary['migrations']} migrations" if summary["migrations"] else ""
            print(f"  population {summary['population']}{migrated}")
            print("\n".join("  " + line for line in niches))
        for m in summary["models"]:
            cost = f"${m['cost_usd']:.4f}" + (" + unknown" if m["unpriced_calls"] else "")
            print(f"  model {m['model']}: trials {m['trials']}, commits {m['commits']}, tokens {m['tokens']}, {cost}")
    return 0


def _node_line(node: dict[str, Any]) -> str:
    """One node of a cluster executor: where, alive, size, calls run, its sandbox confinement."""
    role = ("head" if node["head"] else "node") + (" (this driver's)" if node.get("driver") else "")
    state = "alive" if node["alive"] else "gone"
    confined = f", confinement {node['confinement']}" if node.get("confinement") else ""
    return (f"    {role} {node['name']} ({node['node_id']}): {state}, {node['cpus']} CPUs, {node['gpus']} GPUs, "
            f"{node['calls']} calls{confined}")


def _status_text(run_: Run) -> str:
    """The status a person reads: state, the progress line, the last trials, where to look next."""
    summary = views.summarize(run_.store, now=time.time())
    state = summary.state()  # between two trials a live run has none in flight: it is still running
    gone = gone_writer(summary.run_dir) if (summary.running or summary.started) and not summary.stopped else None
    if gone is not None:  # the store says the run goes on, but its process died (SIGKILL, power loss)
        state = (f"not running: process {gone} is gone with {summary.running} trial(s) in flight; "
                 f"resume it with `evoagent resume {shlex.quote(summary.run_dir)}`")
    lines = [f"run {summary.run_dir} | target {summary.target} | {state}", f"  {summary.line()}"]
    unpriced = run_.store.totals()["unpriced_calls"]
    if unpriced:
        lines.append(f"  cost: + unknown for {unpriced} call(s) to models with no known price")
    if summary.best_id:
        lines.append(f"  best version {summary.best_id}: evoagent best {shlex.quote(summary.run_dir)}")
    for row in views.trial_rows(run_.store)[-5:]:
        label = "committed" if row.committed else row.status
        lines.append(f"  trial {row.id:<4} {label:<13} {format_score(row.score):>12}  {row.hypothesis[:80]}")
    return "\n".join(lines)


def _watch(run_dir: Path, interval_s: float) -> int:
    """Redraws the status in place until the run's last evolve() call has stopped (Ctrl-C leaves earlier).

    A run whose process died without stopping (SIGKILL, power loss) ends the watch with exit code 1.
    """
    live = LiveText.on_terminal(sys.stdout)
    last = ""
    try:
        while True:
            with Run.open(run_dir, readonly=True) as run_:
                text = _status_text(run_)
                stopped = bool(views.summarize(run_.store).stopped)
            if live is not None:
                live.update(text)
            elif text != last:
                print(text, flush=True)
            last = text
            if stopped:
                return 0
            pid = gone_writer(run_dir)
            if pid is not None:
                where = shlex.quote(str(run_dir))
                print(f"evoagent: run {str(run_dir)!r} stopped without finishing (process {pid} is gone); "
                      f"resume it with `evoagent resume {where}`", file=sys.stderr)
                return 1
            time.sleep(interval_s)
    finally:
        if live is not None:
            live.stop()


def report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    if args.out and out.exists() and not _is_report(out):
        raise ConfigError(f"{str(out)!r} exists and is not an evoagent report; choose another --out "
                          "(nothing else is overwritten)")
    path = write_report(args.run_dir, out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser, offline)")
    if args.open and not _open_in_browser(path):
        print(f"evoagent: no browser could be opened here (no display); open {path.resolve().as_uri()} in a browser "
              "on this machine, or copy the file to one that has a display", file=sys.stderr)
    return 0


def _open_in_browser(path: Path) -> bool:
    """Opens the file in a graphical browser; False where there is none (a headless Linux machine, SSH)."""
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False  # webbrowser would pick a text browser that takes over the terminal, or nothing at all
    try:
        return bool(webbrowser.open(path.resolve().as_uri()))
    except webbrowser.Error:
        return False


def _is_report(path: Path) -> bool:
    with path.open("rb") as f:
        return b"<title>evoagent report" in f.read(400)


def best(args: argparse.Namespace) -> int:
    with Run.open(args.run_dir, readonly=True) as run_:
        candidate = run_.best
        if candidate is None:
            raise RunStoreError(f"run {args.run_dir!r} has no committed version yet")
        if args.output is None:
            sys.stdout.write(candidate.source)
            return 0
        out = Path(args.output)
        if out.exists():
            raise ConfigError(f"{str(out)!r} exists; choose another --output (nothing is overwritten)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(candidate.source)
        score = format_score(run_.best_result.score if run_.best_result else None)
        print(f"wrote best version {candidate.id} (score {score}) to {out}", file=sys.stderr)
    return 0


def lineage(args: argparse.Namespace) -> int:
    with Run.open(args.run_dir, readonly=True) as run_:
        view = run_.lineage
        if args.format == "text":
            print(view.summary(max_recent=20))
        elif args.format == "graphml":
            out = Path(args.output or run_.dir / "lineage.graphml")
            if args.output and out.exists():
                raise ConfigError(f"{str(out)!r} exists; choose another --output")
            print(view.to_graphml(out))
        else:
            print(view.to_git(Path(args.output or run_.dir / "lineage-git")))
    return 0


def show(args: argparse.Namespace) -> int:
    with Run.open(args.run_dir, readonly=True) as run_:
        trial = run_.store.trial(args.trial)
        if trial is None:
            raise ConfigError(f"run {args.run_dir!r} has no trial {args.trial} (it has {run_.store.last_trial_id()})")
        u = trial.usage
        model = f", model {trial.model}" if trial.model else ""
        version = f"version {trial.candidate_id}" if trial.candidate_id else "no version (nothing was proposed)"
        parent = f"parent {trial.parent_id}" if trial.parent_id else "no parent"
        print(f"trial {trial.id} [{trial.state}] operator {trial.operator}{model}, {parent}, {version}"
              + (f", {trial.niche}" if trial.niche else ""))
        print(f"hypothesis: {trial.hypothesis}")
        label = "committed" if trial.committed else str(trial.status or trial.state)
        print(f"outcome: {label}, score {format_score(trial.score)}"
              + (f"\nreason: {trial.reason}" if trial.reason else ""))
        for event in run_.store.events("infrastructure"):
            if event["trial_id"] == trial.id:
                print(f"retried: {event['payload'].get('what', 'evaluation')} lost and run again "
                      f"({event['payload'].get('reason', '')})")
        for line in views.improvement_lines(run_.store, trial.id):
            print(line)
        print(f"tokens: in {u.input_tokens} out {u.output_tokens} cache-read {u.cache_read_tokens} "
              f"cache-write {u.cache_write_tokens}; cost ${u.cost_usd:.4f}; wall {format_score(trial.wall_s, '.3g')} s")
        result = run_.store.result(trial.candidate_id) if trial.candidate_id else None
        for stage in result.stages if result is not None and not result.ok else ():
            if not stage.ok and stage.logs:
                print(f"\nstage {stage.name!r} ended {stage.status}; its log:\n{stage.logs.rstrip()}")
        for event in run_.store.events("supervisor"):
            if event["trial_id"] == trial.id:
                print("\n" + _advice_text(event["payload"]))
        if trial.diff:
            print("\n" + trial.diff)
        if not args.no_transcript:
            for m in run_.store.messages(trial.id):
                print(f"--- {m['role']}")
                print(_render(m["content"]))
    return 0


def _advice_text(payload: dict[str, Any]) -> str:
    """A supervisor event in full, for people."""
    lines = [f"supervisor ({payload.get('trigger', '')}): {payload.get('reason', '')}"]
    lines += [f"  {i}. {d}" for i, d in enumerate(payload.get("directions", []), 1)]
    if payload.get("model_error"):
        lines.append(f"  (the model could not be asked: {payload['model_error']})")
    return "\n".join(lines)


def adapt(args: argparse.Namespace) -> int:
    with Run.open(args.run_dir, readonly=True) as source:
        config = assemble.config_from_dict(source.config)
        start = source.store.candidate(args.version) if args.version else source.best
        if start is None:
            raise ConfigError(f"run {args.run_dir!r} has no version {args.version!r}" if args.version
                              else f"run {args.run_dir!r} has no committed version to adapt")
        seed = dataclasses.replace(start, hypothesis=f"adapted from {args.run_dir} version {start.id}")
    config = _with_overrides(_with_suite(config, args.suite), args)
    new_dir = Path(args.new_run_dir) if args.new_run_dir else Path(args.run_dir).with_name(
        Path(args.run_dir).name + f"-adapt-{time.strftime('%Y%m%d-%H%M%S')}")
    evaluator = assemble.build_evaluator(config)
    run_ = Run.create(new_dir, evaluator=evaluator, seeds=[seed], population=assemble.build_population(config),
                      config={**assemble.config_to_dict(config), "adapted_from": str(args.run_dir),
                              "instruction": args.instruction})
    return _evolve(run_, config, _Agents.build(config, evaluator, instruction=args.instruction), quiet=args.quiet)


def _render(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_render_block(b) for b in content)
    return json.dumps(content, indent=1)[:4000]


def _render_block(block: Any) -> str:
    if not isinstance(block, dict):
        return str(block)
    if "role" in block and "content" in block:  # a whole message (the supervisor's question to its model)
        return f"[{block['role']}] {_render(block['content'])}"
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return f"[tool_use {block.get('name')}] {json.dumps(block.get('input'))[:2000]}"
    if kind == "tool_result":
        body = block.get("content")
        text = body if isinstance(body, str) else json.dumps(body)
        return f"[tool_result{' ERROR' if block.get('is_error') else ''}] {text[:2000]}"
    return json.dumps(block)[:2000]



def suite(args: argparse.Namespace) -> int:
    """`evoagent suite kernel FOLDER --trials N`: one search per problem file, resumable as a whole; then the table."""
    from .targets.kernel import suite as kernel_suite
    from .targets.kernel.problem import parse_shape_overrides

    shape = parse_shape_overrides(args.shape)
    problems = kernel_suite.problems(args.folder)
    suite_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"suite-{Path(args.folder).resolve().name}"
    for problem in problems:
        run_dir = suite_dir / problem.name
        print(f"evoagent suite: {problem.name} ({run_dir})", file=sys.stderr)
        try:
            _suite_problem(args, problem, run_dir, shape)
        except EvoagentError as exc:  # one problem's failure does not end the suite; its row says 'no'
            print(f"evoagent suite: {problem.name} failed: {exc}", file=sys.stderr)
    rows = [kernel_suite.row(problem, suite_dir / problem.name) for problem in problems]
    print(kernel_suite.table(rows))
    md, js = kernel_suite.write_report(suite_dir, rows)
    print(f"suite report: {md} and {js}")
    return 0


def _suite_problem(args: argparse.Namespace, problem: Any, run_dir: Path, shape: dict[str, int]) -> None:
    """One problem of a suite: a new run, or the existing one continued up to --trials trials."""
    if (run_dir / "run.db").exists():
        run_ = Run.open(run_dir)
        done = len(run_.store.trials(state="done", include_seeds=False))
        if done >= args.trials:
            run_.close()
            return
        config = assemble.config_from_dict(run_.config)
        config = dataclasses.replace(config, budget=dataclasses.replace(config.budget, trials=args.trials))
    else:
        config = assemble.builtin_config("kernel", problem=str(problem.path),
                                         shape={k: v for k, v in shape.items() if k in problem.constants})
        config = dataclasses.replace(config, budget=dataclasses.replace(config.budget, trials=args.trials))
        evaluator = assemble.build_evaluator(config)
        if args.no_compile:
            evaluator = assemble.build_evaluator(dataclasses.replace(config, evaluator=dataclasses.replace(
                config.evaluator, params={**config.evaluator.params, "baselines": False})))
        run_ = Run.create(run_dir, evaluator=evaluator, seeds=assemble.seed_paths(config),
                          population=assemble.build_population(config), config=assemble.config_to_dict(config))
    _evolve(run_, config, _Agents.build(config, run_.evaluator), quiet=args.quiet)
