"""The agent's tools: JSON-schema definitions and their implementations over a private workspace."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..candidate import Candidate
from ..errors import BudgetExhausted, EvaluatorError
from ..evaluator import Evaluator, default_sections
from ..result import EvalResult, Status, format_score
from ..services import Knowledge
from ..tables import cut_lines, line_count, numbered, numbered_file
from .base import VariationContext
from .comparison import compare as compare_runs
from .comparison import comparison_text
from .workspace import ToolError, Workspace

MAX_SCRIPT_CHARS = 20_000

_STRING = {"type": "string"}
_LINE = {"type": "integer", "minimum": 1}
_CONFIGS = {"type": "array", "items": {"type": "string"},
            "description": "names of the suite's configurations to run on (a quick check); default: all"}


def _tool(name: str, description: str, properties: Mapping[str, Any] | None = None,
          required: Sequence[str] = ()) -> dict[str, Any]:
    return {"name": name, "description": description,
            "input_schema": {"type": "object", "properties": dict(properties or {}), "required": list(required)}}


TOOLS: tuple[dict[str, Any], ...] = (
    _tool("lineage", "List the committed versions of this run with their scores and hypotheses (fresh)."),
    _tool("show_version", "Show one version: its hypothesis, its authoritative result and its source (numbered "
          "lines). `version` is an id, a unique id prefix, 'parent' (your starting version) or 'best'.",
          {"version": _STRING}, ["version"]),
    _tool("diff_versions", "Unified diff from version `a` to version `b`. Each is an id, a unique prefix, 'parent', "
          "'best' or 'workspace' (your current edits).", {"a": _STRING, "b": _STRING}, ["a", "b"]),
    _tool("search_knowledge", "Search the knowledge base (guides, architecture notes, reference designs, lessons "
          "from earlier trials); returns ranked sections with snippets.", {"query": _STRING}, ["query"]),
    _tool("read_knowledge", "Read a knowledge-base document, or one section of it (names as search_knowledge "
          "shows them).", {"doc": _STRING, "section": _STRING}, ["doc"]),
    _tool("read_file", "Return a workspace file with numbered lines ('12<TAB>code'; the numbers and the tab are not "
          "part of the file: leave them out of edit_file's `old`). `start_line` and `end_line` (1-based, "
          "inclusive) read a part; '.' lists the files.",
          {"path": _STRING, "start_line": _LINE, "end_line": _LINE}, ["path"]),
    _tool("edit_file", "Replace the exact text `old` by `new` in a workspace file. `old` must occur exactly once: "
          "copy it from read_file (without the line numbers), whitespace included, with enough context to be unique.",
          {"path": _STRING, "old": _STRING, "new": _STRING}, ["path", "old", "new"]),
    _tool("write_file", "Create or overwrite a workspace file with `content`. Prefer edit_file for small changes.",
          {"path": _STRING, "content": _STRING}, ["path", "content"]),
    _tool("checkout", "Replace the workspace by a stored version's files (your edits are lost): `version` is "
          "'best', 'parent' (the step's starting version) or an id / unique prefix from `lineage`. A submission "
          "then descends from that version.", {"version": _STRING}, ["version"]),
    _tool("notes", "Replace your notes block with `text` (at most 8,000 characters, about 2k tokens). The notes are "
          "reprinted at the top of every step and survive every memory compaction: keep measured facts, open "
          "ideas and dead ends there.", {"text": _STRING}, ["text"]),
    _tool("inspect", "Show the compiled code of the workspace version, no GPU needed: `what` is 'sass' (with counts of "
          "tensor-core, MUFU, BAR, LDSM/STSM, TMA and setmaxnreg instructions per distinct kernel), 'ptx' or 'ttgir'; "
          "`grep` (a regular expression) keeps the matching lines, `kernel` one kernel by name. Compiles like "
          "`compile` (seconds); costs no evaluation.",
          {"what": {"type": "string", "enum": ["sass", "ptx", "ttgir"]}, "grep": _STRING, "kernel": _STRING},
          ["what"]),
    _tool("compile", "Stage 1 of the target on the workspace: static checks and the compile report (registers, "
          "spills, shared memory, instruction mix per kernel); seconds. One exploratory evaluation.",
          {"configs": _CONFIGS}),
    _tool("test", "Stages 1-2: compile, then correctness on the suite's shapes and random ones. Includes compile: do "
          "not run compile first. One exploratory evaluation.", {"configs": _CONFIGS}),
    _tool("benchmark", "Stages 1-3: compile, test, then time the workspace version; reports the score per "
          "configuration. Includes compile and test: do not chain them. With `compare` ('parent', 'best' or a "
          "version id) both versions are timed in the same process, interleaved, and the reply gives each "
          "configuration's ratio with its spread and the geometric-mean Δ. One exploratory evaluation (two with "
          "compare).", {"configs": _CONFIGS, "compare": _STRING}),
    _tool("profile", "Every stage, profile included (on a GPU: the profiler's metrics per kernel). Includes "
          "benchmark. One exploratory evaluation.", {"configs": _CONFIGS}),
    _tool("experiment", "Run a short Python `script` (not scanned by the legality checks) in the candidates' sandbox "
          "beside your workspace files (your entry file is importable as a module): time with your own harness "
          "(e.g. triton.testing.do_bench), print a compiled kernel's code, probe shapes. Its printed output (capped) "
          "is the answer; its numbers never score. Up to 60 s; one exploratory evaluation; failures cost no "
          "repair budget.",
          {"script": _STRING, "timeout_s": {"type": "number", "exclusiveMinimum": 0}}, ["script"]),
    _tool("submit", "Two phases. The first call returns your diff for a critique against the rules; nothing is "
          "submitted. The second call hands the workspace version to the engine's authoritative evaluation and "
          "ends the variation step. `hypothesis` says what you changed and why it should be faster.",
          {"hypothesis": _STRING}, ["hypothesis"]),
    _tool("give_up", "End this variation step without a submission. `lesson` (one or two lines: what you tried, what "
          "you measured, why it cannot pay off) is kept in the run's knowledge base for later steps.",
          {"lesson": _STRING}, ["lesson"]),
)
COMPARE_ROUNDS = 3  # interleaved pairs a `benchmark compare` times
EVAL_TOOLS = ("compile", "test", "benchmark", "profile")  # experiment counts against the same budget
KNOWLEDGE_TOOLS = ("search_knowledge", "read_knowledge")
_SOURCE_TOOLS = ("read_file", "show_version")
_BY_NAME = {t["name"]: t for t in TOOLS}


def tool_definitions(*, knowledge: bool = True) -> list[dict[str, Any]]:
    """The tool schemas to send to the model (knowledge tools only when a knowledge base exists)."""
    return [dict(t) for t in TOOLS if knowledge or t["name"] not in KNOWLEDGE_TOOLS]


@dataclass(frozen=True, slots=True)
class ToolResult:
    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolLimits:
    """Limits of one variation step.

    Attributes:
        max_exploratory_evals: compile/test/benchmark/profile calls that may run (cached repeats are free).
        repair_budget: failed exploratory evaluations allowed; one more ends the step.
        max_result_chars: the longest tool result; longer ones are cut with a note.
        max_file_chars: the longest result of read_file and show_version (sources must be readable whole).
        critique: answer the first submit with a review request (AVO's critique and verify).
        experiment_timeout_s: the longest an experiment script may run, in seconds.
        max_experiment_chars: the most of an experiment's output shown (stdout and stderr together).
        max_notes_chars: the longest notes block (`notes`), about 2k tokens.
        new_files: whether write_file may add files to a version (False: only the version's own files;
            extra files would ride along with every submission).
    """

    max_exploratory_evals: int = 12
    repair_budget: int = 6
    max_result_chars: int = 12_000
    max_file_chars: int = 60_000
    critique: bool = True
    experiment_timeout_s: float = 60.0
    max_experiment_chars: int = 4_000
    max_notes_chars: int = 8_000
    new_files: bool = False


def default_tool_stages(stages: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """compile -> the first stage, test -> two, benchmark -> three, profile -> all."""
    stages = tuple(stages)
    return {"compile": stages[:1], "test": stages[:2], "benchmark": stages[:3], "profile": stages}


def format_result(result: EvalResult, *, note: str = "", evaluator: Evaluator | None = None,
                  shown: dict[str, str] | None = None) -> str:
    """An evaluation as text: `status:`, `score:`, one line per stage, then the evaluator's sections.

    With `shown` (section title -> text last shown to the agent), a section whose text has not
    changed is named but not repeated, and `shown` is updated with what this text shows.
    """
    lines = [f"status: {result.status.value}", f"score: {format_score(result.score)}"]
    if result.device:
        lines.append(f"device: {result.device}")
    if result.reason:
        lines.append(f"reason: {result.reason}")
    if note:
        lines.append(note)
    for stage in result.stages:
        lines.append(f"[{stage.name}] {stage.status.value} ({stage.seconds:.2f} s)"
                     + (f": {stage.reason}" if stage.reason else ""))
    lines += describe(result, evaluator=evaluator, shown=shown)
    for stage in result.stages:
        if stage.logs and not stage.ok:
            lines.append(f"[{stage.name} logs]\n{cut_lines(stage.logs.strip(), 3000)}")
    return "\n".join(lines)


def describe(result: EvalResult, *, evaluator: Evaluator | None = None,
             shown: dict[str, str] | None = None) -> list[str]:
    """The evaluator's titled sections of a result; with `shown`, unchanged ones are only named."""
    sections = evaluator.result_sections(result) if evaluator is not None else default_sections(result)
    lines = []
    for title, text in sections:
        if shown is not None and shown.get(title) == text:
            lines.append(f"== {title}: unchanged since it was last shown ==")
            continue
        if shown is not None:
            shown[title] = text
        lines += [f"== {title} ==", text]
    return lines


@dataclass(kw_only=True)
class Toolbox:
    """Runs tool calls for one variation step, counting evaluations and failures."""

    workspace: Workspace
    context: VariationContext
    knowledge: Knowledge | None = None
    limits: ToolLimits = field(default_factory=ToolLimits)
    rules: str = ""
    evaluations: int = 0
    failures: int = 0
    critiqued: bool = False
    submission: Candidate | None = None
    stop_reason: str = ""
    results: dict[tuple[str, tuple[str, ...], tuple[str, ...]], EvalResult] = field(default_factory=dict)
    last_profile: str = ""
    last_result: str = ""  # the latest evaluation as the agent saw it (kept through compaction)
    shown: dict[str, str] = field(default_factory=dict)  # result section title -> text last shown
    notes: str = ""  # the model's notes block (the operator keeps it across steps)
    lesson: str = ""  # what give_up taught

    def describe(self, result: EvalResult) -> str:
        """A stored result's sections as the agent reads them (unchanged sections only named)."""
        return "\n".join(describe(result, evaluator=self.context.evaluator, shown=self.shown))

    def call(self, name: str, tool_input: Any) -> ToolResult:
        """Runs one tool; mistakes come back as is_error results, budget errors propagate."""
        spec = _BY_NAME.get(name)
        if spec is None or (name in KNOWLEDGE_TOOLS and self.knowledge is None):
            known = [t["name"] for t in tool_definitions(knowledge=self.knowledge is not None)]
            return ToolResult(f"unknown tool {name!r}; the tools are: {', '.join(known)}", True)
        try:
            _validate(spec, tool_input)
            text = getattr(self, f"_{name}")(**tool_input)
            limit = self.limits.max_file_chars if name in _SOURCE_TOOLS else self.limits.max_result_chars
            return ToolResult(cut_lines(text, limit))
        except ToolError as err:
            return ToolResult(str(err), True)
        except BudgetExhausted:
            raise
        except Exception as err:  # noqa: BLE001 (a tool's own failure goes back to the model, never fatal)
            return ToolResult(f"{name} failed: {type(err).__name__}: {err}", True)

    # -- reading ---------------------------------------------------------------------------------

    def _lineage(self) -> str:
        return self.context.lineage.summary()

    def _version(self, ref: str) -> tuple[Candidate, EvalResult | None]:
        if ref == "parent":
            return self.context.parent, self.context.parent_result
        if ref == "best":
            if self.context.best is None:
                raise ToolError("no version has been committed yet; use 'parent'")
            return self.context.best
        if ref == "workspace":
            return self.workspace.candidate(), None
        found = self.context.get(ref)
        if found is None:
            raise ToolError(f"no version {ref!r} in this run; use an id or unique prefix from `lineage`, "
                            "or 'parent' / 'best' / 'workspace'")
        return found

    def _show_version(self, version: str) -> str:
        candidate, result = self._version(version)
        lines = [f"version {candidate.id} (parents: {', '.join(candidate.parents) or '-'})",
                 f"hypothesis: {candidate.hypothesis or '-'}",
                 f"result: {result.summary() if result is not None else 'not evaluated'}"]
        if result is not None:
            lines += [f"  {k}: {v:.6g}" for k, v in result.metrics.items()]
        for name, text in candidate.files.items():
            lines += [f"--- {name} (numbered lines) ---", numbered(text)]
        return "\n".join(lines)

    def _diff_versions(self, a: str, b: str) -> str:
        old, new = self._version(a)[0], self._version(b)[0]
        return new.diff(old) or f"{a} and {b} are identical"

    def _search_knowledge(self, query: str) -> str:
        assert self.knowledge is not None  # Check internal correctness: call() offers knowledge tools only then.
        hits = self.knowledge.search(query, k=5)
        if not hits:
            return f"no section matches {query!r}; try other words"
        return "\n\n".join(f"{h.doc} / {h.section} — {h.title} (score {h.score:.3g})\n{h.snippet}" for h in hits)

    def _read_knowledge(self, doc: str, section: str | None = None) -> str:
        assert self.knowledge is not None  # Check internal correctness: call() offers knowledge tools only then.
        try:
            return self.knowledge.read(doc, section)
        except (LookupError, ValueError) as err:
            raise ToolError(str(err).strip("'\"")) from None

    def _read_file(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        text = self.workspace.read(path)
        if self.workspace.resolve(path).is_dir():
            return text
        count = line_count(text)
        last = count if end_line is None else min(end_line, count)
        if start_line == 1 and last == count:
            return numbered_file(path, text)
        if start_line > count or last < start_line:
            raise ToolError(f"{path} has {count} lines; start_line must be 1..{count} and end_line >= start_line "
                            f"(got {start_line}..{end_line})")
        return f"{path} lines {start_line}-{last} of {count}\n{numbered(text, start_line, last)}"

    # -- writing ---------------------------------------------------------------------------------

    def _edit_file(self, path: str, old: str, new: str) -> str:
        return self.workspace.edit(path, old, new)

    def _write_file(self, path: str, content: str) -> str:
        return self.workspace.write(path, content)

    def _inspect(self, what: str, grep: str = "", kernel: str = "") -> str:
        try:
            return self.context.inspect(self.workspace.candidate(), what, grep, kernel)
        except EvaluatorError as err:
            raise ToolError(str(err)) from None

    def _checkout(self, version: str) -> str:
        if version == "workspace":
            raise ToolError("checkout takes 'best', 'parent' or a stored version's id, not 'workspace'")
        candidate, result = self._version(version)
        self.workspace.checkout(candidate)
        self.shown.clear()
        return (f"the workspace now holds version {candidate.id} ({result.summary() if result else 'not evaluated'}); "
                f"files: {', '.join(self.workspace.files())}; a submission descends from it")

    def _notes(self, text: str) -> str:
        limit = self.limits.max_notes_chars
        if len(text) > limit:
            raise ToolError(f"notes are {len(text)} characters; the limit is {limit}: keep the facts that matter")
        self.notes = text.strip()
        return f"notes saved ({len(self.notes)} of {limit} characters); they open every step"

    def _give_up(self, lesson: str) -> str:
        if not lesson.strip():
            raise ToolError("lesson is empty; say what you tried and why it cannot pay off")
        self.lesson = lesson.strip()
        self.stop_reason = f"gave up: {self.lesson.splitlines()[0][:300]}"
        return "the step ends without a submission; your lesson is kept"

    # -- evaluating ------------------------------------------------------------------------------

    def _compile(self, configs: list[str] | None = None) -> str:
        return self._evaluate("compile", configs)

    def _test(self, configs: list[str] | None = None) -> str:
        return self._evaluate("test", configs)

    def _benchmark(self, configs: list[str] | None = None, compare: str | None = None) -> str:
        if compare is None:
            return self._evaluate("benchmark", configs)
        if compare == "workspace":
            raise ToolError("compare takes 'parent', 'best' or a stored version's id, not 'workspace'")
        other = self._version(compare)[0]  # a wrong reference fails before anything runs
        text = self._evaluate("benchmark", configs)
        mine = self.workspace.candidate()
        latest = next((r for (cid, stages, _), r in reversed(self.results.items()) if cid == mine.id), None)
        if latest is None or not latest.ok:
            return f"{text}\n(no comparison: the workspace version did not pass the benchmark)"
        self._spend_evaluation()
        theirs, ours = self.context.remeasure([other, mine], self._subset(configs), rounds=COMPARE_ROUNDS)
        failed = next((r for r in (*theirs, *ours) if not r.ok), None)
        if failed is not None:
            return f"{text}\n(no comparison: a re-measurement ended {failed.status.value}: {failed.reason})"
        name = compare if compare in ("parent", "best") else f"version {other.id}"
        found = comparison_text(compare_runs([r.metrics for r in ours], [r.metrics for r in theirs]), other=name)
        return f"{text}\n{found}"

    def _profile(self, configs: list[str] | None = None) -> str:
        return self._evaluate("profile", configs)

    def _evaluate(self, tool: str, configs: list[str] | None) -> str:
        evaluator = self.context.evaluator
        mapping = getattr(evaluator, "tool_stages", None) or default_tool_stages(evaluator.stages)
        stages = tuple(mapping[tool])
        subset = self._subset(configs)
        candidate = self.workspace.candidate()
        key = (candidate.id, stages, subset or ())
        if key in self.results:
            text = format_result(self.results[key], note="(this exact version was already evaluated; not re-run: "
                                 "`benchmark` with `compare` times it again next to another version)",
                                 evaluator=evaluator, shown=self.shown)
            self.last_result = text
            return text
        self._spend_evaluation()
        try:
            result = self.context.evaluate(candidate, stages, subset)
        except BudgetExhausted:
            raise
        except Exception as err:  # noqa: BLE001 (the harness failed, not the candidate)
            return (f"status: {Status.HARNESS_ERROR.value}\nscore: -\nthe evaluation itself failed "
                    f"({type(err).__name__}: {err}); this is not your code's fault")
        self.results[key] = result
        note = self._after_failure(result)
        if subset:
            note = f"configurations: {', '.join(subset)} (a subset of the suite)" + (f"\n{note}" if note else "")
        text = format_result(result, note=note, evaluator=evaluator, shown=self.shown)
        if result.profile:
            self.last_profile = cut_lines("\n".join(describe(result, evaluator=evaluator)), 3000)
        self.last_result = text
        return text

    def _subset(self, configs: list[str] | None) -> tuple[str, ...] | None:
        """The named configurations, checked against the suite (None: all of them)."""
        if not configs:
            return None
        names = self.context.evaluator.configurations()
        if not names:
            raise ToolError("this target has no named configurations to choose from; call the tool without `configs`")
        unknown = [c for c in configs if c not in names]
        if unknown:
            raise ToolError(f"unknown configuration(s) {', '.join(map(repr, unknown))}; the suite's configurations "
                            f"are: {', '.join(names)}")
        return tuple(dict.fromkeys(configs))

    def _spend_evaluation(self) -> None:
        if self.evaluations >= self.limits.max_exploratory_evals:
            raise ToolError(f"status: {Status.BUDGET_OVERRUN.value}\nscore: -\nthe exploratory evaluation budget of "
                            f"this step is spent ({self.evaluations} of {self.limits.max_exploratory_evals}); "
                            "submit your version or keep reading and editing")
        self.evaluations += 1

    def _experiment(self, script: str, timeout_s: float | None = None) -> str:
        if not script.strip():
            raise ToolError("script is empty; write Python that imports your entry file and prints what you measure")
        if len(script) > MAX_SCRIPT_CHARS:
            raise ToolError(f"script is {len(script)} characters; the limit is {MAX_SCRIPT_CHARS}: "
                            "keep experiments short")
        limit_s = self.limits.experiment_timeout_s
        timeout = limit_s if timeout_s is None else min(float(timeout_s), limit_s)
        self._spend_evaluation()
        out = self.context.experiment(self.workspace.candidate(), script, timeout)
        lines = [f"status: {out.status.value}", f"wall: {out.wall_s:.3f} s (timeout {timeout:g} s)"]
        if not out.ok:
            lines.append(f"reason: {cut_lines((out.error or out.reason).strip(), 2000)}")
        streams = (("stdout", out.stdout), ("stderr", out.stderr))
        output = "\n".join(f"[{name}]\n{text.rstrip()}" for name, text in streams if text.strip())
        lines.append(cut_lines(output, self.limits.max_experiment_chars) if output else "(no output)")
        return "\n".join(lines)

    def _after_failure(self, result: EvalResult) -> str:
        if result.ok or result.status is Status.HARNESS_ERROR:
            return "note: harness_error is the evaluator's fault, not your code's" if not result.ok else ""
        if result.status is Status.NEEDS_DEVICE:
            return ("note: needs_device means this machine lacks the hardware (a GPU, or an interpreter feature) "
                    "for that stage; it is not your code's fault and costs no repair budget")
        if result.status is Status.INFRASTRUCTURE:
            return ("note: infrastructure means the machine running the evaluation was lost (twice); it is not "
                    "your code's fault and costs no repair budget")
        self.failures += 1
        budget = self.limits.repair_budget
        if self.failures > budget:
            self.stop_reason = (f"repair budget spent: {self.failures} failed exploratory evaluations "
                                f"(budget {budget}); last: {result.summary()}")
            return "note: the repair budget is spent; this variation step ends now"
        left = budget - self.failures
        return f"note: repair budget: {left} more failed evaluation(s) allowed in this step"

    # -- submitting ------------------------------------------------------------------------------

    def _submit(self, hypothesis: str) -> str:
        if not hypothesis.strip():
            raise ToolError("hypothesis is empty; say what you changed and why it should be faster")
        candidate = self.workspace.candidate(hypothesis=hypothesis.strip())
        if candidate.id in (self.context.parent.id, self.workspace.parent.id):
            raise ToolError("the workspace is identical to the version it started from; edit it before submitting")
        if self.limits.critique and not self.critiqued:
            self.critiqued = True
            return self._critique(candidate)
        self.submission = replace(candidate,
                                  metadata={**candidate.metadata, "exploratory_evaluations": self.evaluations})
        return (f"submitted version {candidate.id}; the engine now runs the authoritative evaluation and "
                "you will see its outcome at the start of the next step")

    def _critique(self, candidate: Candidate) -> str:
        tested = [r for (cid, _, _), r in self.results.items() if cid == candidate.id]
        verdict = (f"the latest evaluation of this exact version: {tested[-1].summary()}" if tested
                   else "this exact version has not been evaluated: run `test` (and `benchmark`) first")
        parts = [
            "critique requested: before the authoritative evaluation, review this version. It is NOT submitted yet.",
            f"1. Your diff against version {self.workspace.parent.id}:\n"
            f"{cut_lines(candidate.diff(self.workspace.parent), 6000)}",
            "2. Check it against the rules of legality in your instructions (the work done by your own kernels, "
            "nothing cached or replayed across calls, inputs untouched, every output element written, nothing "
            "outside the timed call, numerics within the tolerance).",
            f"3. Verification: {verdict}.",
            f"4. Your last profile: {self.last_profile or 'none (run `profile` to get one)'}",
            "If you find a problem, fix it and test again. Then call submit again (you may revise the hypothesis).",
        ]
        return "\n\n".join(parts)


_EXPECTED = {"string": "a string", "integer": "an integer >= 1", "number": "a positive number",
             "array": "a list of strings"}


def _fits(schema: Mapping[str, Any], value: Any) -> bool:
    kind = schema.get("type")
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and value >= schema.get("minimum", value)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if kind == "array":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def _validate(spec: Mapping[str, Any], tool_input: Any) -> None:
    schema = spec["input_schema"]
    example = json.dumps({k: "..." for k in schema["required"]})
    how = f"call it as {spec['name']} {example}"
    if not isinstance(tool_input, dict):
        raise ToolError(f"{spec['name']} input must be a JSON object, got {type(tool_input).__name__}; {how}")
    properties = schema["properties"]
    missing = [k for k in schema["required"] if k not in tool_input]
    unknown = [k for k in tool_input if k not in properties]
    wrong = [f"{k!r} must be {_EXPECTED[properties[k].get('type', 'string')]}" for k, v in tool_input.items()
             if k in properties and not _fits(properties[k], v)]
    problems = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
        [f"unknown {', '.join(map(repr, unknown))} (it takes {', '.join(properties) or 'no input'})"]
        if unknown else []) + wrong
    if problems:
        raise ToolError(f"{spec['name']} input is malformed: {'; '.join(problems)}; {how}")
