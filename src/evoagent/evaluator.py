"""Evaluator: the base class users subclass for a target; ordered named stages run as a cascade."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import inspect
import platform
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .candidate import Candidate
from .errors import EvaluatorError
from .records import Descriptors
from .references import class_reference, load_object
from .result import EvalResult, StageResult, Status, geometric_mean
from .tables import cell, text_table

if TYPE_CHECKING:
    from .executors import Executor
    from .sandbox import SandboxConfig, SandboxResult

EXPERIMENT_FILE = "experiment.py"
GENERIC_DIRECTIONS = (
    "Re-read the evaluation details of the best version and attack the part that costs the most.",
    "Revisit the tunable constants and marked parameters (`# evo:`) of the best version one at a time.",
    "Try a different algorithm or data structure for the same task instead of tuning the current one.",
    "Simplify: remove a recent change that did not pay off and measure again.",
)
_VERSIONED = ("evoagent", "numpy", "torch", "triton", "anthropic")


@functools.cache
def environment() -> dict[str, Any]:
    """Where a score was measured: host, platform, Python and library versions (no heavy imports)."""
    versions: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


class Evaluator:
    """Scores candidates for one target through ordered, named stages.

    A subclass lists its stages in `stages` and defines one method per stage name, taking
    `(candidate, sandbox)` and returning a `StageResult`. The cascade stops at the first stage
    that is not OK. Stage methods run in the trusted process and must never import candidate
    code there: they run it through `sandbox.call(...)` and judge the raw values it returns.

    Class attributes:
        name: a short name for the target (stored with the run).
        description: what a candidate must do; shown to agents in their prompt.
        entry: the file name of a single-file candidate in an agent's workspace.
        stages: the stage method names, in order.
        timing_stages: the stages whose metrics are noisy measurements (timings). A population with
            `confirm > 0` re-runs them, interleaved with the incumbent, before committing.
        score_unit: what the score measures, printed next to every score ("sum of radii", "TFLOPS").
        builtin_knowledge: whether the package's built-in knowledge documents (Triton attention
            guides and recipes) are about this target; the CLI gives them to its agents only then.
    """

    name: ClassVar[str] = "custom"
    description: ClassVar[str] = ""
    entry: str = "main.py"
    stages: ClassVar[tuple[str, ...]] = ()
    timing_stages: ClassVar[tuple[str, ...]] = ()
    score_unit: ClassVar[str] = "score"
    builtin_knowledge: ClassVar[bool] = False
    _params: dict[str, Any]  # the constructor's arguments, recorded by __new__ for spec()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.stages:
            raise EvaluatorError(f"{cls.__name__}.stages must name at least one stage method, e.g. ('check', 'test')")
        for stage in cls.timing_stages:
            if stage not in cls.stages:
                raise EvaluatorError(f"{cls.__name__}.timing_stages names {stage!r}, which is not in its stages")
        for stage in cls.stages:
            if not callable(getattr(cls, stage, None)):
                raise EvaluatorError(
                    f"{cls.__name__}.stages names {stage!r} but the class has no method "
                    f"{stage}(self, candidate, sandbox)"
                )

    def __new__(cls, *args: Any, **kwargs: Any) -> Evaluator:
        self = super().__new__(cls)
        self._params = _constructor_params(cls, args, kwargs)
        return self

    def sandbox_config(self) -> SandboxConfig:
        """The sandbox settings this target needs (modules to pre-import, timeouts, env)."""
        from .sandbox import SandboxConfig

        return SandboxConfig()

    def aggregate(self, metrics: Mapping[str, float]) -> float | None:
        """The scalar score of a metrics vector; the geometric mean by default."""
        return geometric_mean(list(metrics.values()))

    def descriptors(self, candidate: Candidate, result: EvalResult) -> Descriptors:
        """Behaviour descriptors of a correct version, for MAP-Elites (`[population] kind = "map_elites"`).

        The default describes the source, so it works for any target: `source_lines` (non-blank
        lines that are not only a comment, over all files) and `branches` (if/for/while/try/with,
        comprehensions and conditional expressions in the Python files), binned on powers of two.
        Override it to describe behaviour: the attention target reads its static compile report.
        """
        return source_descriptors(candidate)

    def device_label(self) -> str:
        """What produces this evaluator's numbers (shown next to every score)."""
        return "cpu"

    @classmethod
    def score_caption(cls, device: str = "") -> str:
        """The score's unit and meaning for people, given the device label that produced it."""
        return cls.score_unit if device in ("", "cpu") else f"{cls.score_unit} ({device})"

    @classmethod
    def baseline_metrics(cls, result: EvalResult) -> dict[str, dict[str, float]]:
        """Reference implementations measured next to a result: name -> configuration -> metric (none here).

        The first one named is the one reports compare against.
        """
        return {}

    @classmethod
    def profile_summary(cls, result: EvalResult) -> dict[str, float]:
        """A few numbers from a result's profile worth following across versions (none here)."""
        return {}

    def spec(self) -> dict[str, Any]:
        """How to rebuild this evaluator (stored with the run): its class and constructor arguments."""
        return {"class": class_reference(type(self)), "params": dict(getattr(self, "_params", {}))}

    # -- what an agent reads -----------------------------------------------------------------------

    def agent_brief(self) -> str:
        """Facts about the target an agent reads at the start of its work (device, suite, tolerances).

        Plain text, stable for a run (it joins the cached part of the prompt). Override it to name
        the hardware, the configurations and their shapes, and how correctness is judged.
        """
        names = self.configurations()
        lines = [f"device: {self.device_label()}", f"stages: {', '.join(self.stages)}"]
        if names:
            lines.append(f"configurations ({len(names)}): {', '.join(names)}")
        return "\n".join(lines)

    def traits(self) -> frozenset[str] | None:
        """What the scored suite has (e.g. {"mha", "bf16", "d128", "causal"}); None: not known.

        A knowledge-base recipe that `needs` a trait the suite lacks is never proposed by the supervisor.
        """
        return None

    def supervisor_directions(self) -> tuple[str, ...]:
        """The supervisor's fallback directions when the search stalls, in this target's vocabulary.

        The default is generic; a target whose costs have names (memory traffic, occupancy, ...) says them.
        """
        return GENERIC_DIRECTIONS

    def result_sections(self, result: EvalResult) -> list[tuple[str, str]]:
        """A result as titled text sections for an agent: tables with one row per line.

        The default shows the metrics per configuration and each stage's details as `key: value`
        lines. Agents' tools show a section again only when its text changed, so keep sections
        deterministic (no timings that vary between identical results in slow-changing sections).
        """
        return default_sections(result)

    def configurations(self) -> tuple[str, ...]:
        """The names of the configurations the score is measured on (empty when not known in advance)."""
        return ()

    def restricted(self, configs: Sequence[str]) -> Evaluator:
        """This evaluator measuring only the named configurations (an agent's quick checks).

        Targets that list `configurations()` override it; the default accepts only the full set.
        """
        names = self.configurations()
        if not names or set(configs) != set(names):
            raise EvaluatorError(f"{type(self).__name__} evaluates its whole suite only"
                                 + (f" ({', '.join(names)})" if names else "") + f"; got configs {list(configs)}")
        return self

    def experiment(self, candidate: Candidate, script: str, sandbox: Executor, *, timeout_s: float) -> SandboxResult:
        """Runs `script` in the sandbox beside the candidate's files, as candidates run (an agent's probe).

        The script is written as `experiment.py` next to the candidate's files and run as `__main__`;
        its printed output is the answer. Targets that need a device or environment override it.
        """
        from .sandbox import run_script

        return sandbox.call(run_script, EXPERIMENT_FILE, files={**candidate.files, EXPERIMENT_FILE: script},
                            timeout_s=timeout_s)

    def equivalence_key(self, candidate: Candidate, first: EvalResult) -> str | None:
        """What the candidate compiles to, from its first stage's result (None: unknown, never equivalent).

        Two versions with the same key behave the same (identical compiled kernels and launches):
        the engine labels the later one `duplicate` after its first stage and spends nothing more on
        it. Targets that compile override it; the default knows nothing.
        """
        return None

    def inspect(self, candidate: Candidate, sandbox: Executor, *, what: str, grep: str = "",
                kernel: str = "") -> str:
        """Compiled code of a candidate as text for an agent (`what`: e.g. 'sass', 'ptx'), lines matching `grep`.

        Targets that compile override it; the default has nothing to show.
        """
        raise EvaluatorError(f"{type(self).__name__} has no compiled code to inspect")

    def evaluate(
        self, candidate: Candidate, sandbox: Executor, *, stages: Sequence[str] | None = None
    ) -> EvalResult:
        """Runs the stages in order (all, or the named subset), stopping at the first failure."""
        names = tuple(self.stages) if stages is None else tuple(stages)
        unknown = [s for s in names if s not in self.stages]
        if unknown:
            raise EvaluatorError(
                f"unknown stage(s) {unknown} for {type(self).__name__}; stages are {list(self.stages)}")
        done: list[StageResult] = []
        metrics: dict[str, float] = {}
        for stage in names:
            started = time.perf_counter()
            try:
                outcome = getattr(self, stage)(candidate, sandbox)
                if not isinstance(outcome, StageResult):
                    raise EvaluatorError(f"stage {stage!r} returned {type(outcome).__name__}, expected StageResult")
            except Exception as exc:  # the one boundary where our own bugs become data
                where, trace = stage_traceback(exc)
                outcome = StageResult.fail(
                    Status.HARNESS_ERROR, f"stage {stage!r} raised {type(exc).__name__}: {exc}{where}", logs=trace)
            outcome = _named(outcome, stage, time.perf_counter() - started)
            done.append(outcome)
            metrics.update(outcome.metrics)
            if not outcome.ok:
                return EvalResult(
                    status=outcome.status, reason=f"{stage}: {outcome.reason}", stages=tuple(done),
                    metrics=metrics, env=environment(), device=self.device_label(),
                )
        score = self.aggregate(metrics) if metrics else None
        return EvalResult(
            status=Status.OK, metrics=metrics, score=score, stages=tuple(done),
            env=environment(), device=self.device_label(),
        )


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def stage_traceback(exc: BaseException) -> tuple[str, str]:
    """(' at file.py:N', text): where the evaluator's own code raised, and the traceback with its frames first.

    A stage's exception is the evaluator author's bug: the frames outside evoagent (their file and
    line) come first, innermost first, then the whole traceback.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_PACKAGE_DIR)]
    where = f" at {Path(user[-1].filename).name}:{user[-1].lineno}" if user else ""
    head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    lines = [head]
    if user:
        lines.append("in the evaluator's code (innermost first):")
        lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else "")
                  for f in reversed(user)]
    lines.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
    return where, "\n".join(lines)


def default_sections(result: EvalResult) -> list[tuple[str, str]]:
    """The metrics per configuration as a table, then each stage's details as `key: value` lines."""
    sections = []
    if result.metrics:
        rows = [(name, value) for name, value in result.metrics.items()]
        sections.append(("scores", text_table(("configuration", "value"), rows)))
    for stage in result.stages:
        if stage.details:
            sections.append((f"{stage.name} details", "\n".join(f"{k}: {cell(v)}" for k, v in stage.details.items())))
    return sections
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.IfExp, ast.comprehension)


def source_descriptors(candidate: Candidate) -> Descriptors:
    """The default descriptors: source_lines and branches (see `Evaluator.descriptors`)."""
    lines = branches = 0
    for name, text in candidate.files.items():
        lines += sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
        if name.endswith(".py"):
            try:
                branches += sum(isinstance(node, _BRANCHES) for node in ast.walk(ast.parse(text)))
            except (SyntaxError, ValueError):
                pass
    return Descriptors(values={"source_lines": float(lines), "branches": float(branches)},
                       bins={"source_lines": (32.0, 64.0, 128.0, 256.0, 512.0),
                             "branches": (2.0, 4.0, 8.0, 16.0, 32.0)})


def _constructor_params(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments by name, so that `spec()` can rebuild the evaluator on resume."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return dict(kwargs)
    params: dict[str, Any] = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        if index == 0:
            continue  # self
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            params[name] = value
    return params


def _named(result: StageResult, name: str, seconds: float) -> StageResult:
    from dataclasses import replace

    return replace(result, name=name, seconds=round(seconds, 6))


class FunctionEvaluator(Evaluator):
    """The one-function shortcut: `score_fn(module) -> {config: value}` run in the sandbox.

    `score_fn` must be a module-level function (the sandbox imports it by reference). It gets the
    imported candidate entry module and returns a mapping of metric values (higher is better), or
    raises `ValueError("reason")` to mark the candidate incorrect. Because it runs in the candidate's
    process, use it for targets where cheating is not a concern; otherwise subclass `Evaluator`.
    """

    name = "function"
    stages = ("run",)

    def __init__(self, score_fn: Callable[[Any], Mapping[str, float]] | str, *, entry: str = "main.py",
                 timeout_s: float = 60.0) -> None:
        if isinstance(score_fn, str):  # a stored reference, "module:function" or "file.py:function"
            score_fn = load_object(score_fn)
        if not callable(score_fn):
            raise EvaluatorError(f"FunctionEvaluator needs a callable score_fn, got {score_fn!r}")
        self.score_fn = score_fn
        self.entry = entry
        self.timeout_s = timeout_s

    def run(self, candidate: Candidate, sandbox: Executor) -> StageResult:
        from .sandbox import run_module_function

        out = sandbox.call(run_module_function, self.entry, self.score_fn,
                           files=candidate.files, timeout_s=self.timeout_s)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        value = out.value
        if isinstance(value, dict) and "error" in value:
            return StageResult.fail(Status.INCORRECT, str(value["error"]), logs=out.logs)
        if not isinstance(value, dict) or not value or not all(
            isinstance(v, (int, float)) for v in value.values()
        ):
            return StageResult.fail(
                Status.INCORRECT, f"score function must return a non-empty dict of numbers, got {value!r}")
        return StageResult(metrics={str(k): float(v) for k, v in value.items()}, logs=out.logs)

    def spec(self) -> dict[str, Any]:
        fn = self.score_fn
        return {"class": "evoagent.evaluator:FunctionEvaluator",
                "params": {"score_fn": class_reference(fn), "entry": self.entry,
                           "timeout_s": self.timeout_s}}
