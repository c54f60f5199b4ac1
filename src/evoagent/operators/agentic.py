"""AgenticVariationOperator: a tool-using model that edits, evaluates, repairs, critiques and submits a version."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, LLMError, PromptTooLong
from ..llm.base import LLM, Block, LLMResponse
from ..llm.ensemble import Ensemble, model_name
from ..records import TrialOutcome
from ..services import Knowledge
from .base import Proposal, VariationContext, VariationOperator
from .memory import (
    EMERGENCY_SYSTEM,
    NOTES_MAX_CHARS,
    SUMMARY_MAX_TOKENS,
    as_text,
    boundary_summary_request,
    emergency_summary_request,
    estimate_tokens,
    mechanical_summary,
    step_state,
)
from .outcomes import outcome_text
from .supervisor import Advice, Supervisor
from .tools import Toolbox, ToolLimits, tool_definitions
from .workspace import Workspace

_KEEP_SHARE = 0.4  # an emergency compaction keeps the newest turns up to this share of compact_at_tokens
_MAX_TOKENS_CAP = 128_000
_GENERIC_RULES = """\
- The work must be done by code in your files. Calling a library implementation of the target
  computation instead (directly or through aliases, getattr, eval, imports at run time) is illegal.
- No caching or replaying outputs across calls; no returning or writing into an input; no mutating
  inputs; every output element must be written by your code.
- No work outside the timed call (side streams, threads), no patching timers, synchronization or
  the evaluator, no reading the environment, the filesystem outside your files, or the reference.
- Numerics must stay within the target's tolerance; lower precision than the contract allows is wrong.
A version that breaks a rule is labelled `illegal` and never scores."""


class AgenticVariationOperator(VariationOperator):
    """A Claude-style agent as the variation operator (AVO): one conversation that persists across steps.

    Each `vary` call is one variation step in a private workspace holding a copy of the starting
    version. The model drives the tools (read, edit, compile, test, benchmark, profile, lineage,
    knowledge) until it calls `submit`; with `critique` on, the first `submit` is answered with a
    review request (its diff, the rules, its last profile) and the next one is accepted. A step that
    runs out of turns or of repair budget returns `Proposal(candidate=None, reason=...)`.

    The system prompt and tool definitions are the stable, cached prefix. The target's facts
    (the evaluator's `agent_brief`: device, suite, tolerances) and the commit rule
    are part of the cached system prompt; each step opens with the model's notes block, the outcome
    of the last submission (Δ vs its starting version, per configuration), supervisor advice, the
    starting version's stored result (the evaluator's `result_sections`), the lineage and the budget
    left; every tool reply ends with a budget footer. Memory: the conversation persists across steps.
    At a step boundary where the step could take the prompt past `compact_at_tokens`
    (size + `step_reserve_tokens` >= it), the model writes a summary inside its own cached
    conversation and the summary replaces it; only an emergency (a step that outgrew its reserve,
    or a prompt the API refuses as too long) compacts inside a step, keeping the step's state: the
    workspace diff, the latest evaluation and the model's latest plan. The notes block (the `notes`
    tool, about 2k tokens) survives every compaction. A refused turn is dropped from memory. Every
    message goes to `context.record_message`, every usage to `context.charge` (whose BudgetExhausted
    propagates). Calls to `vary` on one instance are serialized: one agent, one memory.

    Args:
        llm: the model (Anthropic, HeuristicPolicy, ScriptedLLM...).
        knowledge: a KnowledgeBase for the knowledge tools (None: the context's).
        max_turns: model replies per step.
        max_exploratory_evals: compile/test/benchmark/profile runs per step.
        repair_budget: failed exploratory evaluations per step; one more ends the step.
        critique: ask for a review of the diff before accepting a submission.
        compact_at_tokens: the largest prompt (tokens) the conversation may reach; set it near the
            model's context size less room for a reply. Cached reads cost a tenth of new input, so a
            long cached conversation is cheaper than compacting often.
        step_reserve_tokens: the room one step may take; the conversation is compacted at a step
            boundary when its size plus this reaches `compact_at_tokens` (default: a third of it).
        supervisor: a Supervisor; None builds one on `llm` with default thresholds; False: none.
        max_tokens: output tokens per reply; None: the model's own setting (`[operator.llm] max_tokens`).
            Doubled (up to 128k, within what the model can write) after a reply is cut off.
        instruction: extra direction for the whole run (e.g. "adapt this kernel to GQA").
        max_result_chars: the longest tool result shown to the model.
    """

    name = "agentic"

    def __init__(self, llm: LLM, knowledge: Knowledge | None = None, *, max_turns: int = 40,
                 max_exploratory_evals: int = 12,
                 repair_budget: int = 6, critique: bool = True, compact_at_tokens: int = 120_000,
                 step_reserve_tokens: int | None = None,
                 supervisor: Supervisor | bool | None = None, max_tokens: int | None = None, instruction: str = "",
                 max_result_chars: int = 12_000) -> None:
        if not callable(getattr(llm, "complete", None)):
            raise ConfigError(f"AgenticVariationOperator llm must have complete(...) (the LLM protocol), got {llm!r}")
        for name, value in (("max_turns", max_turns), ("max_exploratory_evals", max_exploratory_evals),
                            ("compact_at_tokens", compact_at_tokens), ("max_result_chars", max_result_chars),
                            *((("max_tokens", max_tokens),) if max_tokens is not None else ())):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"AgenticVariationOperator {name} must be a positive integer, got {value!r}")
        if not isinstance(repair_budget, int) or repair_budget < 0:
            raise ConfigError(f"AgenticVariationOperator repair_budget must be an integer >= 0, got {repair_budget!r}")
        reserve = compact_at_tokens // 3 if step_reserve_tokens is None else step_reserve_tokens
        if not isinstance(reserve, int) or isinstance(reserve, bool) or not 0 <= reserve < compact_at_tokens:
            raise ConfigError("AgenticVariationOperator step_reserve_tokens must be an integer in "
                              f"[0, compact_at_tokens={compact_at_tokens}), got {step_reserve_tokens!r}")
        if supervisor is True:
            raise ConfigError("supervisor must be a Supervisor, None (a default one) or False (none), got True")
        self.llm = llm
        self.knowledge = knowledge
        self.max_turns = max_turns
        self.limits = ToolLimits(max_exploratory_evals=max_exploratory_evals, repair_budget=repair_budget,
                                 max_result_chars=max_result_chars, critique=critique)
        self.compact_at_tokens = compact_at_tokens
        self.step_reserve_tokens = reserve
        self.supervisor: Supervisor | None = Supervisor(llm) if supervisor is None else (supervisor or None)
        self.max_tokens = max_tokens
        self.instruction = instruction
        self.messages: list[dict[str, Any]] = []  # the conversation, kept across steps
        self.compactions = 0
        self.summary = ""  # the latest compaction summary
        self.notes = ""  # the model's notes block, reprinted in every opening and kept through compactions
        self._last_submission = ""  # the outcome line of the latest reported submission
        self._lock = threading.Lock()
        self._observed: dict[int, TrialOutcome] = {}
        self._awaiting: list[tuple[int, str]] = []  # (trial, starting version) of submissions not yet reported
        self._previous_end = ""
        self._restored = False  # memory was restored by remember() and not yet shown in a transcript
        self._steps = 0
        self._prompt_tokens: int | None = None  # prompt size the model last reported
        self._prompt_messages = 0  # ... and how many messages that prompt held

    def __repr__(self) -> str:
        return f"AgenticVariationOperator(llm={self.llm!r}, max_turns={self.max_turns}, steps={self._steps})"

    def spec(self) -> dict[str, Any]:
        spec = getattr(self.llm, "spec", None)
        llm_spec = spec() if callable(spec) else {"name": self.llm.name}
        return {"class": "evoagent.operators.agentic:AgenticVariationOperator", "params": {
            "llm": llm_spec, "max_turns": self.max_turns, "max_exploratory_evals": self.limits.max_exploratory_evals,
            "repair_budget": self.limits.repair_budget, "critique": self.limits.critique,
            "compact_at_tokens": self.compact_at_tokens, "step_reserve_tokens": self.step_reserve_tokens,
            "max_tokens": self.max_tokens,
            "instruction": self.instruction, "supervisor": repr(self.supervisor)}}

    def observe(self, outcome: TrialOutcome) -> None:
        self._observed[outcome.trial_id] = outcome

    def vary(self, context: VariationContext) -> Proposal:
        with self._lock:
            return self._step(context)

    def remember(self, transcript: Sequence[Mapping[str, Any]]) -> None:
        """Restores memory from stored transcripts (a resumed run): their summary opens the next step."""
        old = [m for m in transcript if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), list)]
        if not old:
            return
        with self._lock:
            self.summary = mechanical_summary(old)
            self.messages = [{"role": "user", "content": [
                _text(f"Summary of your earlier work (this run was resumed):\n{self.summary}")]}]
            self._prompt_tokens = None
            self._restored = True

    # -- one step --------------------------------------------------------------------------------

    def _step(self, context: VariationContext) -> Proposal:
        self._steps += 1
        if isinstance(self.llm, Ensemble):  # the bandit picks this step's model from the run's counts
            self.llm.choose(context.model_stats)
        context.label_model(model_name(self.llm))
        kb = self.knowledge if self.knowledge is not None else context.knowledge
        system = self._system_prompt(context)
        tools = tool_definitions(knowledge=kb is not None)
        advice = self.supervisor.review(context, memory=self.summary) if self.supervisor else None
        with tempfile.TemporaryDirectory(prefix="evoagent-ws-") as tmp:
            workspace = Workspace(tmp, context.parent, new_files=self.limits.new_files)
            box = Toolbox(workspace=workspace, context=context, knowledge=kb, limits=self.limits,
                          rules=_target_rules(context), notes=self.notes)
            context.record_message("system", system)
            if self._restored:  # the transcript shows what the resumed agent was given
                context.record_message("summary", self.messages[0]["content"][0]["text"])
                self._restored = False
            self._close_dangling(context)
            self._compact_at_boundary(context, system, tools)
            self._add_user(context, [_text(self._opening(context, advice, box))])
            try:
                proposal = self._loop(context, system, tools, box)
            finally:
                self.notes = box.notes
        if proposal.candidate is not None:
            self._awaiting.append((context.trial_id, box.workspace.parent.id))
            self._previous_end = ""
        elif not proposal.reason.startswith("the model refused"):
            self._previous_end = proposal.reason
        return proposal

    def _loop(self, context: VariationContext, system: str, tools: list[dict[str, Any]], box: Toolbox) -> Proposal:
        max_tokens = self.max_tokens
        idle = 0  # consecutive replies without a tool call
        for turn in range(1, self.max_turns + 1):
            self._maybe_compact(context, system, tools, box)
            response = self._ask(context, system, tools, max_tokens)
            if response.stop_reason == "refusal":  # the refused turn stays in the transcript, not in memory
                self.messages.pop()
                self._prompt_tokens = None
                self._previous_end = "the model refused to continue (that turn was dropped from memory)"
                return Proposal(candidate=None, reason=f"the model refused to continue: {response.text[:300]}")
            if response.stop_reason in ("end_step", "exhausted"):  # an offline policy's own words, not a model's
                return Proposal(candidate=None, reason=response.text, final=response.stop_reason == "exhausted")
            notes = []
            uses = response.tool_uses
            cut = response.stop_reason == "max_tokens"
            if cut:
                max_tokens = min(2 * (max_tokens or response.usage.output_tokens or 8192), _MAX_TOKENS_CAP)
                notes.append("Your reply was cut off by the max_tokens limit. Continue where you stopped; keep "
                             "tool inputs short (edit_file with small replacements rather than write_file).")
            if response.stop_reason == "model_context_window_exceeded":
                self._maybe_compact(context, system, tools, box, force=True)
            blocks = [self._run_tool(box, use, cut=cut and use is uses[-1] and response.content[-1] is use)
                      for use in uses]
            idle = 0 if uses or cut else idle + 1
            if idle >= 2:  # nudged once already: the model has nothing more to do in this step
                self._add_user(context, [_text("The step ended: two replies in a row called no tool.")])
                return Proposal(candidate=None, reason="the model ended its turn twice without calling a tool")
            if idle:
                notes.append("You called no tool. Work through the tools and finish with "
                             "submit {\"hypothesis\": ...} when your version is ready.")
            left = self.max_turns - turn
            if 0 < left <= 3 and box.submission is None:
                notes.append(f"{left} turn(s) left in this step: submit soon or the step ends without a proposal.")
            if blocks and box.submission is None and not box.stop_reason:
                notes.insert(0, self._footer(context, system, tools, box, turn))
            self._add_user(context, blocks + [_text(n) for n in notes])
            if box.submission is not None:
                candidate = replace(box.submission, metadata={**box.submission.metadata, "operator": self.name,
                                                              "turns": turn, "failed_evaluations": box.failures})
                return Proposal(candidate=candidate, hypothesis=candidate.hypothesis)
            if box.stop_reason:
                return Proposal(candidate=None, hypothesis=box.lesson, reason=box.stop_reason)
        return Proposal(candidate=None, reason=f"no submission within {self.max_turns} turns")

    def _footer(self, context: VariationContext, system: str, tools: list[dict[str, Any]], box: Toolbox,
                turn: int) -> str:
        """The budget line that ends every tool reply: this step's limits, the run's budget, the memory."""
        limits = self.limits
        return (f"[budget] step: turn {turn} of {self.max_turns}, evaluations {box.evaluations} of "
                f"{limits.max_exploratory_evals}, repair budget {max(0, limits.repair_budget - box.failures)} left"
                f" | run: {context.budget_left or 'not reported'} | memory: ~{self._prompt_size(system, tools):,} of "
                f"{self.compact_at_tokens:,} tokens")

    def _run_tool(self, box: Toolbox, use: Block, *, cut: bool) -> Block:
        if cut:
            text, is_error = ("not run: this call was cut off by the max_tokens limit before its input was "
                              "complete; call it again with a shorter input"), True
        elif box.submission is not None or box.stop_reason:
            text, is_error = "not run: the step had already ended", True
        else:
            result = box.call(use.get("name", ""), use.get("input"))
            text, is_error = result.text, result.is_error
        block: Block = {"type": "tool_result", "tool_use_id": use["id"], "content": text}
        if is_error:
            block["is_error"] = True
        return block

    def _ask(self, context: VariationContext, system: str, tools: list[dict[str, Any]],
             max_tokens: int | None) -> LLMResponse:
        try:
            response = self.llm.complete(system=system, messages=self.messages, tools=tools, max_tokens=max_tokens)
        except PromptTooLong:  # the model counts more tokens than we estimated: compact and try once more
            self._maybe_compact(context, system, tools, force=True)
            response = self.llm.complete(system=system, messages=self.messages, tools=tools, max_tokens=max_tokens)
        content = response.content or [_text("(empty reply)")]
        self.messages.append({"role": "assistant", "content": content})
        context.record_message("assistant", content)
        usage = response.usage
        # Offline policies report no usage: then the size is estimated from the text instead.
        self._prompt_tokens = (usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens) or None
        self._prompt_messages = len(self.messages) - 1
        context.charge(usage)
        return response

    def _add_user(self, context: VariationContext, blocks: list[Block]) -> None:
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": "user", "content": list(blocks)})
        context.record_message("user", blocks)

    def _close_dangling(self, context: VariationContext) -> None:
        """Answers tool calls left without results by an interrupted step (the API requires answers)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return
        self._add_user(context, [
            {"type": "tool_result", "tool_use_id": b["id"], "is_error": True,
             "content": "not run: the step was interrupted (budget or API failure)"}
            for b in self.messages[-1]["content"] if b.get("type") == "tool_use"
        ])

    # -- prompts ---------------------------------------------------------------------------------

    def _system_prompt(self, context: VariationContext) -> str:
        ev = context.evaluator
        rules = _target_rules(context)
        parts = [
            ("You are the variation operator of an evolutionary search over code. In each variation step you "
             "start from a version of the program, improve it with your tools, and submit one new version."),
            (f"# Target: {ev.name}\n{ev.description.strip() or '(no description)'}\n"
             f"The entry file of a version is `{ev.entry}` unless the version says otherwise.\n\n"
             f"{ev.agent_brief().strip()}"),
            f"# Rules of legality\n{_GENERIC_RULES}" + (f"\nTarget-specific rules:\n{rules}" if rules else ""),
            ("# Commit rule\nA version is committed to the lineage only if it is correct and its score >= "
             "best * (1 - tolerance), where best is the best committed score and the tolerance is a small margin "
             "set for the run. Scores are higher-is-better aggregates over a suite of configurations. Failed "
             "attempts never enter the lineage; they stay in your memory, so learn from them."
             + (f"\nIn this run: {context.commit_rule}." if context.commit_rule else "")),
            ("# How to work\n- Each step starts from a fresh copy of its starting version: the version the "
             "population policy picks (in a single lineage, the latest committed one; it matches the best within "
             "the commit tolerance). `checkout` replaces the workspace by `best` or any stored version; your "
             "submission then descends from that one.\n"
             "- Read the lineage and the profile, form a hypothesis, then edit the workspace "
             "(edit_file: exact, unique replacement). Only the version's own files can be written; keep notes "
             "with the `notes` tool.\n- compile, test, benchmark and profile run the target's stages on your "
             "workspace, each including the ones before it (benchmark compiles and tests first: do not chain "
             "them). They are exploratory: recorded, never committed, and limited per step (one evaluation each).\n"
             "- The evaluation tools take `configs` (names from the suite) for a quick check on a few "
             "configurations; `benchmark` with `compare` ('parent', 'best' or a version id) times both versions "
             "in the same process, interleaved, and reports per-configuration ratios with their spread.\n"
             "- `experiment` runs a script of yours, not scanned, beside the workspace files, in the same "
             "sandbox as candidates: it may time (e.g. triton.testing.do_bench), print compiled code (a "
             "kernel's .asm) and probe; its numbers are yours alone and never score.\n"
             "- Results show a section (such as the static report) again only when it changed.\n"
             "- When an evaluation fails, read the reason (it names the line), repair, and evaluate again; "
             "failed evaluations draw on a repair budget.\n- submit {\"hypothesis\": ...} has two phases: the "
             "first call returns your diff for a critique against the rules (nothing is submitted yet); the "
             "second hands the workspace to the engine's authoritative evaluation (fresh inputs, the test "
             "distribution, legality checks) that you cannot see or influence. A version whose compiled "
             "kernels match an evaluated version's is a `duplicate` and is not evaluated.\n"
             "- give_up {\"lesson\": ...} ends a step without a submission; the lesson is kept for the run."),
            ("# Memory\nThis conversation persists across variation steps. When it nears "
             f"{self.compact_at_tokens:,} tokens, at the start of a step, you are asked to summarise it and your "
             "summary replaces it. What survives a compaction: your summary, your notes block (the `notes` tool "
             f"replaces it; at most {NOTES_MAX_CHARS:,} characters, reprinted at the top of every step), the "
             "lineage and every stored version and result (the tools read them), and the knowledge base with a "
             "one-line lesson per trial."),
        ]
        if self.instruction:
            parts.append(f"# Instruction for this run\n{self.instruction}")
        return "\n\n".join(parts)

    def _opening(self, context: VariationContext, advice: Advice | None, box: Toolbox) -> str:
        lines = [f"## Variation step {self._steps} (trial {context.trial_id})"]
        lines.append("### Your notes (kept across steps and compactions; `notes` replaces them)\n"
                     + (self.notes or "(empty)"))
        lines += self._reports(context)
        lines.append(f"Last submission: {self._last_submission or 'none yet'}")
        if self._previous_end:
            lines.append(f"Your previous step ended without a submission: {self._previous_end}")
        if advice is not None:
            lines.append(advice.text())
        parent, result = context.parent, context.parent_result
        lines.append(f"### Starting version {parent.id}: {result.summary() if result else 'not evaluated'}"
                     + (f" on {result.device}" if result is not None and result.device else ""))
        if result is not None:
            lines.append(box.describe(result))
        if context.best is not None and context.best[0].id != parent.id:
            lines.append(f"Best committed version: {context.best[0].id} ({context.best[1].summary()}); "
                         "`checkout best` starts from it instead.")
        lines.append(f"Your workspace holds a fresh copy of the starting version: files {', '.join(parent.files)}; "
                     f"entry {parent.entry}.")
        lines.append(f"### Lineage\n{context.lineage.summary()}")
        if context.niche is not None:
            lines.append(f"### Population ({context.niche.name})\n{context.niche.text}")
        lines.append(f"### Budget\nThis step: {self.max_turns} turns, {self.limits.max_exploratory_evals} exploratory "
                     f"evaluations, {self.limits.repair_budget} failed evaluations (repair budget). "
                     f"Run budget left: {context.budget_left or 'not reported'}.")
        return "\n\n".join(lines)

    def _reports(self, context: VariationContext) -> list[str]:
        """Outcomes of earlier submissions, from observe() or the context's recent trials, by their Δ."""
        recent = {o.trial_id: o for o in context.recent}
        lines, waiting = [], []
        for trial_id, start_id in self._awaiting:
            outcome = self._observed.pop(trial_id, None) or recent.get(trial_id)
            if outcome is None:
                waiting.append((trial_id, start_id))
                lines.append(f"Your submission in trial {trial_id} is still being evaluated.")
                continue
            submitted = context.get(outcome.candidate_id) if outcome.candidate_id else None
            self._last_submission = outcome_text(outcome, submitted, context.get(start_id))
            lines.append(f"Outcome of your submission in trial {trial_id}: {self._last_submission}")
        self._awaiting = waiting
        return lines

    # -- memory ----------------------------------------------------------------------------------

    def _prompt_size(self, system: str, tools: list[dict[str, Any]]) -> int:
        if self._prompt_tokens is not None:
            return self._prompt_tokens + estimate_tokens(self.messages[self._prompt_messages:])
        return estimate_tokens([system, tools, self.messages])

    def _compact_at_boundary(self, context: VariationContext, system: str, tools: list[dict[str, Any]]) -> None:
        """Before a step opens: when the step could take the prompt past the limit, the model summarises.

        The request is the cached conversation plus one more user turn (same system prompt and
        tools), so it reads the cache; the summary replaces the whole conversation.
        """
        size = self._prompt_size(system, tools)
        if not self.messages or size + self.step_reserve_tokens < self.compact_at_tokens:
            return
        request = boundary_summary_request(self.messages, size)
        context.record_message("user", request[-1]["content"][-1:])
        try:
            response: LLMResponse | None = self.llm.complete(
                system=system, messages=request, tools=tools,
                max_tokens=max(SUMMARY_MAX_TOKENS, self.max_tokens or 0))
        except LLMError:
            response = None
        text = response.text.strip() if response is not None else ""
        if response is not None:
            context.record_message("assistant", response.content or [_text("(empty reply)")])
        summary = text or mechanical_summary(self.messages)
        removed = len(self.messages)
        self.messages = [{"role": "user", "content": [_text(
            f"Summary of your earlier work (compacted before step {self._steps}, in your own words):\n{summary}")]}]
        self._after_compaction(context, summary, {"messages_removed": removed, "tokens_before": size,
                                                  "method": "model" if text else "fallback", "at": "step boundary"})
        if response is not None:
            context.charge(response.usage)

    def _after_compaction(self, context: VariationContext, summary: str, payload: dict[str, Any]) -> None:
        self.summary = summary
        self._prompt_tokens = None
        self.compactions += 1
        context.record_message("summary", summary)
        context.emit("compaction", payload)

    def _maybe_compact(self, context: VariationContext, system: str, tools: list[dict[str, Any]],
                       box: Toolbox | None = None, force: bool = False) -> None:
        """An emergency inside a step: the prompt reached `compact_at_tokens` (or the API found it too long)."""
        size = self._prompt_size(system, tools)
        if not force and size < self.compact_at_tokens:
            return
        cut = self._cut_point()
        if cut is None:
            return
        old, kept = self.messages[:cut], self.messages[cut:]
        summary, response, method = self._summarize(old)
        state = step_state(box, self.messages) if box is not None else ""
        head = [_text(f"Summary of your earlier work (older turns were compacted):\n{summary}{state}")]
        if box is not None:
            box.shown.clear()  # what was shown may be gone: show every section again
        kept[0] = {"role": "user", "content": head + [as_text(b) for b in kept[0]["content"]]}
        self.messages = kept
        self._after_compaction(context, summary, {"messages_removed": len(old), "tokens_before": size,
                                                  "method": method, "at": "inside step"})
        if response is not None:
            context.charge(response.usage)

    def _cut_point(self) -> int | None:
        """The first user message of the newest turns that fit in the kept share of the context."""
        keep = self.compact_at_tokens * _KEEP_SHARE
        starts = [i for i, m in enumerate(self.messages) if m["role"] == "user" and i > 0]
        if not starts:
            return None
        for i in starts:
            if estimate_tokens(self.messages[i:]) <= keep:
                return i
        return starts[-1]

    def _summarize(self, old: Sequence[Mapping[str, Any]]) -> tuple[str, LLMResponse | None, str]:
        try:
            response = self.llm.complete(system=EMERGENCY_SYSTEM, messages=emergency_summary_request(old),
                                         tools=(), max_tokens=max(SUMMARY_MAX_TOKENS, self.max_tokens or 0))
        except LLMError:
            return mechanical_summary(old), None, "fallback"
        if not response.text.strip():
            return mechanical_summary(old), response, "fallback"
        return response.text.strip(), response, "model"


def _target_rules(context: VariationContext) -> str:
    rules = getattr(type(context.evaluator), "rules", "")
    return rules.strip() if isinstance(rules, str) else ""


def _text(text: str) -> Block:
    return {"type": "text", "text": text}
