"""Typed settings of a run and the one TOML loader (unknown keys are rejected with a suggestion).

Each setting is declared once. The engine's own types are the config sections: `[budget]` is a
`Budget`, `[engine]` is the `Options` given to `evolve`/`iterate`. The sections that build an
object are checked against what they feed: `[population]` against the constructor of its kind
(`Chain`, `Tree`, `Islands`, `MapElites`), `[sandbox]` against `SandboxConfig`'s fields, `[operator] params` and
`[evaluator] params` against the operator's and evaluator's constructors (`construct`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import sys
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .executors import ExecutorConfig
from .records import EventHandler
from .sandbox import SandboxConfig
from .services import Knowledge

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Field metadata: set in Python only, never read from a config file.
CODE_ONLY = {"config": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Limits of a run; None (or 0, as config files write it) means no limit.

    Attributes:
        trials: variation trials in the whole run (seeds not counted).
        hours: wall-clock hours of this call to evolve().
        tokens: new model tokens (input, cache writes, output) in the whole run; cache reads are
            counted and reported apart, not against this budget.
        usd: model cost in US dollars in the whole run.
    """

    trials: int | None = None
    hours: float | None = None
    tokens: int | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("trials", "hours", "tokens", "usd"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"Budget.{name} must be a number >= 0 or None (got {value!r})")
            if value == 0:
                object.__setattr__(self, name, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How `evolve`/`iterate` run, besides the budget. A config file's `[engine]` sets the first seven.

    Attributes:
        slots: variation steps in flight at once.
        seed: random seed (parent choice, operators).
        patience: stop after this many trials in a row without a commit; 0 = never.
        target_score: stop once the best score reaches this; None = never.
        no_proposal_limit: stop after this many trials in a row whose operator made no proposal
            (status `no_proposal`, e.g. a mutation operator with no unseen values left); 0 = never.
        model_failure_limit: stop after this many trials in a row ended by a failed model call
            (status `model_error`: the API kept failing through the backend's retries); 0 = never.
        model_backoff_s: after a trial ended by a failed model call, wait this long before starting
            the next trial; the wait doubles with each further failure in a row (at most an hour).
        knowledge: the knowledge base operators read; the engine adds the run's lessons before each trial.
        on_event: called with every `Event` (progress bars, reports).
        sandbox_config: the sandbox's settings (None: the evaluator's `sandbox_config()`).
        executor: what runs the sandboxed calls, an `ExecutorConfig` (None: the local fork servers).
        progress: show a live progress display (a bar in a terminal, an updating block in a notebook,
            plain lines elsewhere); it passes every event on to `on_event` too.
    """

    slots: int = 1
    seed: int = 0
    patience: int = 0
    target_score: float | None = None
    no_proposal_limit: int = 5
    model_failure_limit: int = 3
    model_backoff_s: float = 60.0
    knowledge: Knowledge | None = field(default=None, metadata=CODE_ONLY)
    on_event: EventHandler | None = field(default=None, metadata=CODE_ONLY)
    sandbox_config: SandboxConfig | None = field(default=None, metadata=CODE_ONLY)
    executor: ExecutorConfig | None = field(default=None, metadata=CODE_ONLY)
    progress: bool = field(default=False, metadata=CODE_ONLY)

    def __post_init__(self) -> None:
        for name, low in (("slots", 1), ("seed", None), ("patience", 0), ("no_proposal_limit", 0),
                          ("model_failure_limit", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
                expected = "an integer" if low is None else f"an integer >= {low}"
                raise ConfigError(f"Options.{name} must be {expected} (got {value!r})")
        if self.target_score is not None and (
                isinstance(self.target_score, bool) or not isinstance(self.target_score, (int, float))):
            raise ConfigError(f"Options.target_score must be a number or None (got {self.target_score!r})")
        if isinstance(self.model_backoff_s, bool) or not isinstance(self.model_backoff_s, (int, float)) \
                or self.model_backoff_s < 0:
            raise ConfigError(
                f"Options.model_backoff_s must be a number of seconds >= 0 (got {self.model_backoff_s!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluatorConfig:
    """Attributes:
    target: a built-in target name ("attention") or "file.py:Class" / "package.module:Class".
    params: keyword arguments for the evaluator's constructor.
    """

    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorConfig:
    """Attributes:
    kind: "agentic" (a model when `llm` is given or ANTHROPIC_API_KEY is set, else the offline
        HeuristicPolicy), "heuristic" (always offline), or "parameter_mutation".
    llm: `[operator.llm]`, the model of kind "agentic": `backend` ("anthropic") plus that backend's
        constructor arguments (`Anthropic`: model, max_tokens, thinking, cache_ttl, base_url, prices,
        max_retries, timeout_s, ...; `OpenAICompatible` for backend "openai": model, base_url,
        api_key_env, max_tokens, prices, ...). Naming a backend here means the run needs its API key.
    models: `[[operator.models]]`, an ensemble instead of one model: each entry is a `[operator.llm]`
        table plus `weight` (its prior share of exploration); a UCB bandit picks the model of each
        step by commits per dollar. `[operator.llm] exploration` sets the bandit's constant.
    params: keyword arguments for the operator's constructor.
    """

    kind: str = "agentic"
    llm: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
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
class RunConfig:
    """A whole run.

    Attributes:
        seeds: seed files or directories (relative to the config file).
        evaluator: `[evaluator]`, the target and its constructor arguments.
        population: `[population]`, `kind` ("chain", "tree", "islands" or "map_elites") plus that
            policy's constructor arguments (`Chain`: tolerance, confirm; `Tree`: parent_selection,
            tournament_size, confirm; `Islands`: n, migrate_every, migrants, policy; `MapElites`:
            descriptors, bins, tolerance, confirm).
        operator: `[operator]`, see `OperatorConfig`.
        knowledge: `[knowledge]`, see `KnowledgeConfig`.
        budget: `[budget]`, a `Budget` (in a config file, trials default to 20).
        engine: `[engine]`, the `Options` slots, seed, patience and target_score.
        sandbox: `[sandbox]`, `SandboxConfig` fields that change the evaluator's sandbox settings: a
            value replaces the evaluator's, except that `env_allowlist`, `preload`, `read_paths` and
            `write_paths` add to it (and a 0 keeps it, as older config files wrote "the evaluator's default").
        executor: `[executor]`, an `ExecutorConfig`: `kind` ("local" or "ray") and, for Ray, `address`.
        base_dir: where relative paths resolve (the config file's folder); set by the loader.
    """

    seeds: list[str] = field(default_factory=list)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    population: dict[str, Any] = field(default_factory=lambda: {"kind": "chain"})
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    budget: Budget = field(default_factory=lambda: Budget(trials=20))
    engine: Options = field(default_factory=Options)
    sandbox: dict[str, Any] = field(default_factory=dict, metadata={"fields_of": SandboxConfig})
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    base_dir: str = field(default="", metadata=CODE_ONLY)

    def sandbox_for(self, base: SandboxConfig) -> SandboxConfig:
        """`base` (the evaluator's sandbox settings) with this config's `[sandbox]` changes."""
        changes: dict[str, Any] = {}
        for name, value in self.sandbox.items():
            if name in ("env_allowlist", "preload", "read_paths", "write_paths"):
                changes[name] = (*getattr(base, name), *value)
            elif isinstance(value, bool) or value != 0:  # `confine = false` is a choice, not a 0
                changes[name] = value
        return dataclasses.replace(base, **changes)


def config_fields(cls: type[Any]) -> list[str]:
    """The fields of a settings record that a config file may set."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("config", True)]


def check_keys(table: Mapping[str, Any], known: Collection[str], where: str, source: str = "") -> None:
    """Rejects a key that is not in `known`, naming it and suggesting the closest known one."""
    for key in table:
        if key not in known:
            name = f"{where}.{key}" if where else key
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
            located = f" in {source}" if source else ""
            raise ConfigError(f"unknown key '{name}'{located}{hint}")


def check_type(value: Any, hint: Any, where: str) -> Any:
    """`value` if it fits the type hint (ints widen to float, lists to tuples), else a ConfigError."""
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for arg in inner[:-1]:
            try:
                return check_type(value, arg, where)
            except ConfigError:
                continue
        return check_type(value, inner[-1], where)
    expected = origin or hint
    if expected is Any or isinstance(expected, typing.TypeVar) or typing.get_origin(expected) is typing.Literal:
        return value
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if isinstance(expected, type) and dataclasses.is_dataclass(expected) and isinstance(value, Mapping):
        return construct(expected, value, where.strip("'"))  # a nested table builds the record it describes
    if not isinstance(expected, type) or getattr(expected, "_is_protocol", False):
        return value  # a protocol or other construct isinstance cannot check: the constructor checks it
    if not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {getattr(expected, '__name__', expected)} (got {value!r})")
    return value


def construct(cls: Any, params: Mapping[str, Any], where: str) -> Any:
    """Calls `cls(**params)` after checking the names and types of `params` against its signature."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where} must be a table (got {params!r})")
    signature = inspect.signature(cls)
    named = [n for n, p in signature.parameters.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        check_keys(params, named, where)
    try:
        hints = typing.get_type_hints(cls.__init__ if isinstance(cls, type) else cls)  # type: ignore[misc]
    except Exception:  # hints that name things not importable here: leave the checks to the constructor
        hints = {}
    kwargs = {k: check_type(v, hints[k], f"'{where}.{k}'") if k in hints else v for k, v in params.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"cannot build {where} ({getattr(cls, '__name__', cls)}) with {dict(params)}: {exc}") \
            from None


def from_dict(cls: type[Any], data: Mapping[str, Any], where: str = "", source: str = "") -> Any:
    """Builds a settings record from a table: unknown keys refused with a suggestion, types checked.

    A nested record starts from the field's default, so a table changes only the keys it names.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a table (got {data!r})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("config", True)}
    check_keys(data, fields, where, source)
    hints = typing.get_type_hints(cls)
    defaults = cls()
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        hint_type = hints[key]
        if isinstance(hint_type, type) and dataclasses.is_dataclass(hint_type):
            nested = from_dict(hint_type, value, name, source)
            changed = {k: getattr(nested, k) for k in value}
            kwargs[key] = dataclasses.replace(getattr(defaults, key), **changed)
        else:
            kwargs[key] = check_type(value, hint_type, f"'{name}'")
            if "fields_of" in fields[key].metadata:
                check_keys(value, config_fields(fields[key].metadata["fields_of"]), name, source)
    return cls(**kwargs)


def to_dict(record: Any) -> dict[str, Any]:
    """The config-file form of a settings record (what `from_dict` reads back)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if not f.metadata.get("config", True):
            continue
        value = getattr(record, f.name)
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return out


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


def config_sets(path: str | os.PathLike[str], table: str, key: str) -> bool:
    """Whether the TOML config file at `path` sets `key` in `[table]` itself (rather than leaving the default)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        section = tomllib.loads(path.read_text()).get(table, {})
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(section, dict) and key in section
