"""Typed configuration records and the one TOML loader (unknown keys are rejected with a suggestion)."""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluatorConfig:
    """Attributes:
    target: a built-in target name ("attention") or "file.py:Class" / "package.module:Class".
    params: keyword arguments for the evaluator's constructor.
    """

    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulationConfig:
    """Attributes:
    kind: "chain" (AVO's single lineage) or "tree".
    tolerance: Chain's commit tolerance, a fraction of the best score (0.005 = 0.5%).
    parent_selection: Tree's parent choice, "best" or "tournament".
    tournament_size: Tree's tournament size.
    confirm: re-measurements of a would-be commit, interleaved with the best (0: commit on one measurement).
    """

    kind: str = "chain"
    tolerance: float = 0.0
    parent_selection: str = "tournament"
    tournament_size: int = 3
    confirm: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorConfig:
    """Attributes:
    kind: "agentic" (Claude when ANTHROPIC_API_KEY is set, else the offline HeuristicPolicy),
        "heuristic" (always offline), or "parameter_mutation".
    model: the Claude model for kind "agentic" (empty: the backend's default).
    params: keyword arguments for the operator's constructor.
    """

    kind: str = "agentic"
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeConfig:
    """Attributes:
    paths: folders of markdown documents added to the built-in ones (relative to the config file).
    lesson_runs: earlier run directories whose one-line lessons the agent can search too.
    """

    paths: list[str] = field(default_factory=list)
    lesson_runs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetConfig:
    """Attributes:
    trials: variation trials in the whole run (seeds not counted); 0 = no limit.
    hours: wall-clock hours for this invocation; 0 = no limit.
    tokens: model tokens in the whole run; 0 = no limit.
    usd: model cost in US dollars in the whole run; 0 = no limit.
    """

    trials: int = 20
    hours: float = 0.0
    tokens: int = 0
    usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Attributes:
    slots: variation steps in flight at once.
    seed: random seed (parent choice, operators).
    patience: stop after this many trials in a row without a commit; 0 = never.
    target_score: stop once the best score reaches this; unset = never.
    """

    slots: int = 1
    seed: int = 0
    patience: int = 0
    target_score: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSettings:
    """Attributes:
    timeout_s: wall-clock limit of one sandboxed call, seconds (0: the evaluator's default).
    memory_mb: address space a sandboxed call may add above the pre-imported server, MiB (0: evaluator default).
    env_allowlist: environment variable names passed to candidates despite looking secret.
    """

    timeout_s: float = 0.0
    memory_mb: int = 0
    env_allowlist: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """A whole run. Attributes:
    seeds: seed files or directories (relative to the config file).
    evaluator, population, operator, knowledge, budget, engine, sandbox: the sections of the same names.
    """

    seeds: list[str] = field(default_factory=list)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    base_dir: str = ""  # where relative paths resolve (the config file's folder); set by the loader


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], where)
    expected = origin or hint
    if expected is Any:
        return value
    if not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {getattr(expected, '__name__', expected)} (got {value!r})")
    return value


def from_dict(cls: type[Any], data: dict[str, Any], where: str, source: str = "") -> Any:
    """Builds a config dataclass from a dict, rejecting unknown keys with a 'did you mean' suggestion."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a table (got {data!r})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "base_dir"}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(fields))}"
            located = f" in {source}" if source else ""
            raise ConfigError(f"unknown key '{name}'{located}{hint}")
        hint_type = hints[key]
        if isinstance(hint_type, type) and dataclasses.is_dataclass(hint_type):
            kwargs[key] = from_dict(hint_type, value, name, source)
        else:
            kwargs[key] = _check_type(value, hint_type, f"'{name}'")
    return cls(**kwargs)


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Reads a TOML run config; raises ConfigError naming the file, the key and what is expected."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        config = from_dict(RunConfig, data, "", str(path))
    except ConfigError as exc:
        if str(path) in str(exc):
            raise
        raise ConfigError(f"{exc} in {path}") from None
    result: RunConfig = dataclasses.replace(config, base_dir=str(path.resolve().parent))
    return result
