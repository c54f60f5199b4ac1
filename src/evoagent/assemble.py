"""From a run config to objects: the evaluator, seeds, population, knowledge base and operators."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import OperatorConfig, RunConfig, construct, from_dict, to_dict
from .errors import ConfigError
from .evaluator import Evaluator
from .knowledge import KnowledgeBase, Lesson
from .niches import population_from_spec, population_kind
from .operators.base import VariationOperator
from .population import Population, settings
from .references import BUILTIN_TARGETS, load_object
from .run import Run, evaluator_from_spec
from .services import Knowledge

OPERATOR_KINDS = ("agentic", "heuristic", "parameter_mutation")
LLM_BACKENDS = {"anthropic": "evoagent.llm.anthropic:Anthropic",
                "openai": "evoagent.llm.openai_compat:OpenAICompatible"}
BUILTIN_USD = 20.0  # the built-in attention run's default dollar cap


def builtin_config(target: str, *, suite: str | None = None, problem: str | None = None,
                   shape: Mapping[str, int] | None = None) -> RunConfig:
    """The default config of a built-in target (seed shipped with the package, default operator).

    The kernel target takes its problem file as `problem` or in the name (`kernel:PROBLEM.py`); its seed is
    the reference itself, written out by `targets.kernel.setup`.
    """
    if target == "kernel" or target.startswith("kernel:"):
        return _kernel_config(target, suite=suite, problem=problem, shape=shape)
    if problem is not None or shape:
        raise ConfigError(f"a problem file and --shape are for the kernel target (evoagent run kernel PROBLEM.py); "
                          f"target {target!r} takes none")
    if target != "attention":
        raise ConfigError(f"unknown built-in target {target!r}; built-in targets: {', '.join(BUILTIN_TARGETS)} "
                          "(or pass a path to a TOML config)")
    from .targets.attention import default_seed, default_suite

    params = {"suite": suite or default_suite()}
    config: RunConfig = from_dict(RunConfig, {
        "seeds": [str(default_seed())],
        "evaluator": {"target": "attention", "params": params},
        "population": {"kind": "chain", "confirm": 2},  # timings are noisy: re-measure before committing
        "budget": {"trials": 6, "usd": BUILTIN_USD},
        "operator": {"kind": "agentic"},
    }, "")
    return config


def _kernel_config(target: str, *, suite: str | None, problem: str | None,
                   shape: Mapping[str, int] | None) -> RunConfig:
    named = target.partition(":")[2]
    if named and problem:
        raise ConfigError(f"the problem file is given twice ({named!r} in {target!r} and {problem!r}); give it once")
    if not (named or problem):
        raise ConfigError("the kernel target needs a problem file: evoagent run kernel PROBLEM.py "
                          "(a KernelBench-format file with class Model, get_inputs and get_init_inputs)")
    if suite:
        raise ConfigError("--suite is for the attention target; a kernel problem sets its sizes with "
                          "--shape NAME=VALUE")
    from .targets.kernel.setup import run_tables

    config: RunConfig = from_dict(RunConfig, run_tables(named or str(problem), shape=shape), "")
    return config


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as stored with a run (`config_from_dict` reads it back)."""
    return {**to_dict(config), "base_dir": config.base_dir}


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """The RunConfig stored with a run (keys that are not config fields, like 'instruction', are skipped).

    Runs made by earlier versions stored every population setting whatever the kind; the ones the
    kind does not take are dropped.
    """
    known = {f.name for f in dataclasses.fields(RunConfig)} - {"base_dir"}
    tables = {k: v for k, v in data.items() if k in known}
    if isinstance(tables.get("operator"), dict) and "model" in tables["operator"]:  # before [operator.llm]
        operator = dict(tables["operator"])
        model = operator.pop("model")
        tables["operator"] = {**operator, "llm": {"model": model}} if model else operator
    if isinstance(tables.get("population"), dict):
        kind = tables["population"].get("kind", "chain")
        takes = {"kind", *settings(population_kind(kind))}
        tables["population"] = {k: v for k, v in tables["population"].items() if k in takes}
    config: RunConfig = from_dict(RunConfig, tables, "")
    return dataclasses.replace(config, base_dir=data.get("base_dir", ""))


def build_evaluator(config: RunConfig) -> Evaluator:
    target = config.evaluator.target
    if not target:
        raise ConfigError("the config names no evaluator: set [evaluator] target = \"attention\" or \"file.py:Class\"")
    params = dict(config.evaluator.params)
    if target.startswith("kernel:"):  # `target = "kernel:PROBLEM.py"`: the problem relative to the config file
        target, path = "kernel", Path(target.partition(":")[2])
        params["problem"] = str(path if path.is_absolute() else Path(config.base_dir or ".") / path)
    reference = _absolute(BUILTIN_TARGETS.get(target, target), config.base_dir)
    return evaluator_from_spec({"class": reference, "params": params}, config.base_dir or None)


def _absolute(reference: str, base_dir: str) -> str:
    module, _, name = reference.partition(":")
    if module.endswith(".py") and base_dir and not os.path.isabs(module):
        return f"{Path(base_dir, module).resolve()}:{name}"
    return reference


def seed_paths(config: RunConfig) -> list[Path]:
    """The config's seed files: paths (relative to the config file) or shipped seeds named 'attention:NAME'."""
    if not config.seeds and config.evaluator.target.partition(":")[0] == "kernel":
        return [_kernel_seed(config)]
    if not config.seeds:
        raise ConfigError("the config lists no seeds: set seeds = [\"path/to/seed.py\"]")
    base = Path(config.base_dir) if config.base_dir else Path.cwd()
    return [_builtin_seed(s) or (p if p.is_absolute() else base / p) for s, p in ((s, Path(s)) for s in config.seeds)]


def _kernel_seed(config: RunConfig) -> Path:
    """A kernel config without seeds starts from the reference itself (`targets.kernel.setup.seed_file`)."""
    from .targets.kernel import Problem
    from .targets.kernel.setup import seed_file

    target = config.evaluator.target
    problem = target.partition(":")[2] or config.evaluator.params.get("problem")
    if not problem:
        raise ConfigError("[evaluator] target \"kernel\" needs params.problem = \"PROBLEM.py\" "
                          "(or target = \"kernel:PROBLEM.py\")")
    path = Path(problem)
    return seed_file(Problem.load(path if path.is_absolute() else Path(config.base_dir or ".") / path))


def with_builtin_seeds(config: RunConfig, names: list[str]) -> RunConfig:
    """The config starting from the built-in target's shipped seeds `names` (`evoagent run --seed NAME`)."""
    target = config.evaluator.target
    if target != "attention":
        raise ConfigError("--seed names a shipped seed of the attention target; "
                          f"this config's target is {target!r}: list its seed files in `seeds` instead")
    entries = [f"{target}:{name}" for name in names]
    for entry in entries:
        _builtin_seed(entry)  # an unknown name fails here, before anything is created
    return dataclasses.replace(config, seeds=entries)


def with_language(config: RunConfig, language: str, names: list[str] | None) -> RunConfig:
    """`evoagent run attention --lang L`: start from L's default seed, or check that every `--seed` is in L."""
    if config.evaluator.target != "attention":
        raise ConfigError(f"--lang chooses the kernel language of the attention target; this config's target is "
                          f"{config.evaluator.target!r}")
    from .targets.attention import LANGUAGE_SEEDS, seed_language

    if language not in LANGUAGE_SEEDS:
        raise ConfigError(f"unknown kernel language {language!r}; choose one of {', '.join(LANGUAGE_SEEDS)}")
    chosen = names or [LANGUAGE_SEEDS[language]]
    other = [name for name in chosen if seed_language(name) != language]
    if other:
        raise ConfigError(f"--seed {other[0]} is not a {language} kernel; with --lang {language} start from a "
                          f"{language} seed (default: {LANGUAGE_SEEDS[language]})")
    return with_builtin_seeds(config, chosen)


def _builtin_seed(entry: str) -> Path | None:
    """'attention:hopper-tma' -> the shipped seed file; None for anything that is not such a name."""
    target, sep, name = entry.partition(":")
    if not sep or target != "attention" or "/" in name or name.endswith(".py"):  # shipped seeds: attention's
        return None
    from .targets.attention import seed_path

    return seed_path(name)


def build_population(config: RunConfig) -> Population:
    return population_from_spec(config.population)


def build_knowledge(config: RunConfig, evaluator: Evaluator) -> Knowledge:
    """Built-in documents (for the target they are about), the config's folders, and the lessons of the
    earlier runs it names.

    The engine adds this run's own lessons before every trial.
    """
    base = Path(config.base_dir or ".")
    target_paths: list[Path] = getattr(evaluator, "knowledge_paths", list)()  # a target's own documents (kernel's)
    kb = KnowledgeBase(paths=[*target_paths, *(base / p for p in config.knowledge.paths)],
                       builtin=evaluator.builtin_knowledge)
    earlier = []
    for run_dir in config.knowledge.lesson_runs:
        with Run.open(base / run_dir, readonly=True) as other:
            earlier += [Lesson(run=str(run_dir), trial_id=t, text=text) for t, text in other.store.lessons()]
    return kb.with_lessons(earlier)


def build_llm(table: Mapping[str, Any], where: str = "operator.llm") -> Any:
    """The model backend a `[operator.llm]` table names (`backend`, default "anthropic", plus its arguments)."""
    params = dict(table)
    backend = params.pop("backend", "anthropic")
    if backend not in LLM_BACKENDS:
        raise ConfigError(f"unknown {where}.backend {backend!r}; expected one of {', '.join(LLM_BACKENDS)}")
    return construct(load_object(LLM_BACKENDS[backend]), params, where)


def build_model(op: OperatorConfig) -> Any:
    """The agent's model: the ensemble of `[[operator.models]]`, or the one model of `[operator.llm]`."""
    if not op.models:
        return build_llm(op.llm)
    from .llm.ensemble import Ensemble, Member

    extra = set(op.llm) - {"exploration"}
    if extra:
        raise ConfigError(f"with [[operator.models]], [operator.llm] takes only 'exploration' (got {sorted(extra)}); "
                          "put each model's settings in its [[operator.models]] entry")
    members = []
    for i, table in enumerate(op.models):
        if not isinstance(table, Mapping):
            raise ConfigError(f"operator.models[{i}] must be a table (got {table!r})")
        settings = dict(table)
        weight = settings.pop("weight", 1.0)
        members.append(Member(build_llm(settings, f"operator.models[{i}]"), weight))
    return construct(Ensemble, {"members": members, **op.llm}, "operator.llm")


def build_operator(config: RunConfig, knowledge: Knowledge | None = None, *,
                   instruction: str = "") -> VariationOperator:
    """The operator the config asks for.

    'agentic' uses the model of `[operator.llm]`; without that table it uses Claude when
    ANTHROPIC_API_KEY is set and the offline HeuristicPolicy otherwise (the start line says which).
    """
    op = config.operator
    if op.kind not in OPERATOR_KINDS:
        raise ConfigError(f"unknown operator kind {op.kind!r}; expected one of {', '.join(OPERATOR_KINDS)}")
    if (op.llm or op.models) and op.kind != "agentic":
        raise ConfigError(f"[operator.llm] and [[operator.models]] are read by kind \"agentic\" only; "
                          f"operator kind is {op.kind!r}")
    params = dict(op.params)
    if op.kind == "parameter_mutation":
        from .operators.mutation import ParameterMutation

        return construct(ParameterMutation, params, "operator.params")  # type: ignore[no-any-return]
    from .operators.agentic import AgenticVariationOperator

    if op.kind == "agentic" and (op.llm or op.models or os.environ.get("ANTHROPIC_API_KEY")):
        llm = build_model(op)
    else:
        from .llm.heuristic import HeuristicPolicy

        llm = HeuristicPolicy(knowledge=knowledge, seed=config.engine.seed)
    if instruction:
        params["instruction"] = instruction
    # The operator reads the knowledge base from each step's context, where the engine keeps this
    # run's lessons up to date.
    return construct(AgenticVariationOperator, {"llm": llm, **params}, "operator.params")  # type: ignore[no-any-return]
