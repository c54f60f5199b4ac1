"""AgenticVariationOperator: a tool-using model that edits, evaluates, repairs, critiques and submits a version."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, LLMError, PromptTooLong
from ..llm.base import LLM, Block, LLMResponse
from ..llm.ensemble import Ensemble, model_name
from ..records import TrialOutcome
from ..result import format_score
from ..services import Knowledge
from ..tables import cut_lines
from .base import Proposal, VariationContext, VariationOperator
from .supervisor import Advice, Supervisor
from .tools import Toolbox, ToolLimits, Workspace, tool_definitions

_KEEP_SHARE = 0.4  # compaction keeps the newest turns up to this share of compact_at_tokens
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

_SUMMARY_SYSTEM = ("You compress the working memory of a coding agent. Keep what it needs to continue: "
                   "what was tried, outcomes with numbers, what failed and why, facts learned, promising ideas.")


class AgenticVariationOperator(VariationOperator):
    """A Claude-style agent as the variation operator (AVO): one conversation that persists across steps.

    Each `vary` call is one variation step in a private workspace holding a copy of the starting
    version. The model drives the tools (read, edit, compile, test, benchmark, profile, lineage,
    knowledge) until it calls `submit`; with `critique` on, the first `submit` is answered with a
    review request (its diff, the rules, its last profile) and the next one is accepted. A step that
    runs out of turns or of repair budget returns `Proposal(candidate=None, reason=...)`.

    The system prompt and tool definitions are the stable, cached prefix. The target's facts
    (the evaluator's `agent_brief`: device, suite, tolerances) and the commit rule
    are part of the cached system prompt; each step opens with the starting version's stored result
    (per-configuration table, static report, profile, as the evaluator's `result_sections`), the
    budget left, the outcome of the last submission, supervisor advice and the lineage. When the
    prompt reaches `compact_at_tokens` the older turns are compacted into a summary written by the
    model (or, if that fails, a mechanical one) plus the step's state: the workspace diff, the latest
    evaluation and the model's latest plan. A refused turn is dropped from memory. Every message
    goes to `context.record_message`, every usage to `context.charge` (whose BudgetExhausted
    propagates). Calls to `vary` on one instance are serialized: one agent, one memory.

    Args:
        llm: the model (Anthropic, HeuristicPolicy, ScriptedLLM...).
        knowledge: a KnowledgeBase for the knowledge tools (None: the context's).
        max_turns: model replies per step.
        max_exploratory_evals: compile/test/benchmark/profile runs per step.
        repair_budget: failed exploratory evaluations per step; one more ends the step.
        critique: ask for a review of the diff before accepting a submission.
        compact_at_tokens: prompt size (tokens) at which older turns are compacted; the newest turns
            up to 40% of it are kept. Every request resends the conversation, so this bounds the
            input tokens of a request (cache reads when the backend caches).
        supervisor: a Supervisor; None builds one on `llm` with default thresholds; False: none.
        max_tokens: output tokens per reply; None: the model's own setting (`[operator.llm] max_tokens`).
            Doubled (up to 128k, within what the model can write) after a reply is cut off.
        instruction: extra direction for the whole run (e.g. "adapt this kernel to GQA").
        max_result_chars: the longest tool result shown to the model.
    """

    name = "agentic"

    def __init__(self, llm: LLM, knowledge: Knowledge | None = None, *, max_turns: int = 40,
                 max_exploratory_evals: int = 12,
                 repair_budget: int = 6, critique: bool = True, compact_at_tokens: int = 24_000,
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
        if supervisor is True:
            raise ConfigError("supervisor must be a Supervisor, None (a default one) or False (none), got True")
        self.llm = llm
        self.knowledge = knowledge
        self.max_turns = max_turns
        self.limits = ToolLimits(max_exploratory_evals=max_exploratory_evals, repair_budget=repair_budget,
                                 max_result_chars=max_result_chars, critique=critique)
        self.compact_at_tokens = compact_at_tokens
        self.supervisor: Supervisor | None = Supervisor(llm) if supervisor is None else (supervisor or None)
        self.max_tokens = max_tokens
        self.instruction = instruction
        self.messages: list[dict[str, Any]] = []  # the conversation, kept across steps
        self.compactions = 0
        self.summary = ""  # the latest compaction summary
        self._lock = threading.Lock()
        self._observed: dict[int, TrialOutcome] = {}
        self._awaiting: list[int] = []  # trials whose submission's outcome was not yet reported
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
            "compact_at_tokens": self.compact_at_tokens, "max_tokens": self.max_tokens,
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
            self.summary = _mechanical_summary(old)
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
            box = Toolbox(workspace=Workspace(tmp, context.parent), context=context, knowledge=kb,
                          limits=self.limits, rules=_target_rules(context))
            context.record_message("system", system)
            if self._restored:  # the transcript shows what the resumed agent was given
                context.record_message("summary", self.messages[0]["content"][0]["text"])
                self._restored = False
            self._close_dangling(context)
            self._add_user(context, [_text(self._opening(context, advice, box))])
            proposal = self._loop(context, system, tools, box)
        if proposal.candidate is not None:
            self._awaiting.append(context.trial_id)
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
            self._add_user(context, blocks + [_text(n) for n in notes])
            if box.submission is not None:
                candidate = replace(box.submission, metadata={**box.submission.metadata, "operator": self.name,
                                                              "turns": turn, "failed_evaluations": box.failures})
                return Proposal(candidate=candidate, hypothesis=candidate.hypothesis)
            if box.stop_reason:
                return Proposal(candidate=None, reason=box.stop_reason)
        return Proposal(candidate=None, reason=f"no submission within {self.max_turns} turns")

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
            ("# How to work\n- Read the lineage and the profile, form a hypothesis, then edit the workspace "
             "(edit_file: exact, unique replacement).\n- compile, test, benchmark and profile run the target's "
             "stages on your workspace. They are exploratory: recorded, never committed, and limited per step.\n"
             "- The evaluation tools take `configs` (names from the suite) for a quick check on a few configurations; "
             "`experiment` runs a short script of yours beside the workspace files for a micro-measurement.\n"
             "- Results show a section (such as the static report) again only when it changed.\n"
             "- When an evaluation fails, read the reason (it names the line), repair, and evaluate again; "
             "failed evaluations draw on a repair budget.\n- submit {\"hypothesis\": ...} hands your workspace "
             "to the engine's authoritative evaluation (fresh inputs, hidden shapes, legality checks) that you "
             "cannot see or influence. The first submit of a step asks you to critique your diff first; "
             "then submit again.\n- Each step starts from a fresh copy of its starting version."),
        ]
        if self.instruction:
            parts.append(f"# Instruction for this run\n{self.instruction}")
        return "\n\n".join(parts)

    def _opening(self, context: VariationContext, advice: Advice | None, box: Toolbox) -> str:
        lines = [f"## Variation step {self._steps} (trial {context.trial_id})"]
        lines += self._reports(context)
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
            lines.append(f"Best committed version: {context.best[0].id} ({context.best[1].summary()}).")
        lines.append(f"Your workspace holds a fresh copy of the starting version: files {', '.join(parent.files)}; "
                     f"entry {parent.entry}.")
        lines.append(f"### Lineage\n{context.lineage.summary()}")
        if context.niche is not None:
            lines.append(f"### Population ({context.niche.name})\n{context.niche.text}")
        lines.append(f"### Limits\nThis step: {self.max_turns} turns, {self.limits.max_exploratory_evals} exploratory "
                     f"evaluations, {self.limits.repair_budget} failed evaluations (repair budget). "
                     f"Run budget left: {context.budget_left or 'not reported'}.")
        return "\n\n".join(lines)

    def _reports(self, context: VariationContext) -> list[str]:
        """Outcomes of earlier submissions, from observe() or the context's recent trials."""
        recent = {o.trial_id: o for o in context.recent}
        lines, waiting = [], []
        for trial_id in self._awaiting:
            outcome = self._observed.pop(trial_id, None) or recent.get(trial_id)
            if outcome is None:
                waiting.append(trial_id)
                lines.append(f"Your submission in trial {trial_id} is still being evaluated.")
                continue
            verdict = "COMMITTED to the lineage" if outcome.committed else "not committed"
            score = format_score(outcome.score)
            reason = f"; reason: {outcome.reason}" if outcome.reason else ""
            lines.append(f"Outcome of your submission in trial {trial_id} (version {outcome.candidate_id}): "
                         f"{outcome.status.value}, score {score}, {verdict}{reason}.")
        self._awaiting = waiting
        return lines

    # -- memory ----------------------------------------------------------------------------------

    def _prompt_size(self, system: str, tools: list[dict[str, Any]]) -> int:
        if self._prompt_tokens is not None:
            return self._prompt_tokens + _tokens(self.messages[self._prompt_messages:])
        return _tokens([system, tools, self.messages])

    def _maybe_compact(self, context: VariationContext, system: str, tools: list[dict[str, Any]],
                       box: Toolbox | None = None, force: bool = False) -> None:
        size = self._prompt_size(system, tools)
        if not force and size < self.compact_at_tokens:
            return
        cut = self._cut_point()
        if cut is None:
            return
        old, kept = self.messages[:cut], self.messages[cut:]
        summary, response, method = self._summarize(context, old)
        state = _step_state(box, self.messages) if box is not None else ""
        head = [_text(f"Summary of your earlier work (older turns were compacted):\n{summary}{state}")]
        if box is not None:
            box.shown.clear()  # what was shown may be gone: show every section again
        kept[0] = {"role": "user", "content": head + [_as_text(b) for b in kept[0]["content"]]}
        self.messages, self.summary = kept, summary
        self._prompt_tokens = None
        self.compactions += 1
        context.record_message("summary", summary)
        context.emit("compaction", {"messages_removed": len(old), "tokens_before": size, "method": method})
        if response is not None:
            context.charge(response.usage)

    def _cut_point(self) -> int | None:
        """The first user message of the newest turns that fit in the kept share of the context."""
        keep = self.compact_at_tokens * _KEEP_SHARE
        starts = [i for i, m in enumerate(self.messages) if m["role"] == "user" and i > 0]
        if not starts:
            return None
        for i in starts:
            if _tokens(self.messages[i:]) <= keep:
                return i
        return starts[-1]

    def _summarize(self, context: VariationContext,
                   old: Sequence[Mapping[str, Any]]) -> tuple[str, LLMResponse | None, str]:
        transcript = cut_lines(_render(old), 80_000)
        prompt = ("Summarize the work below for your future self, in at most 400 words: versions and hypotheses "
                  "tried, their outcomes with numbers, what failed and why, facts learned about the target, and "
                  f"promising next ideas.\n\n{transcript}")
        try:
            response = self.llm.complete(system=_SUMMARY_SYSTEM,
                                         messages=[{"role": "user", "content": [_text(prompt)]}],
                                         tools=(), max_tokens=2048)
        except LLMError:
            return _mechanical_summary(old), None, "fallback"
        if not response.text.strip():
            return _mechanical_summary(old), response, "fallback"
        return response.text.strip(), response, "model"


def _step_state(box: Toolbox, messages: Sequence[Mapping[str, Any]]) -> str:
    """What the current step stands on, kept whole through a compaction: its diff, latest result and plan."""
    diff = box.workspace.candidate().diff(box.workspace.parent)
    plan = next((b["text"] for m in reversed(messages) if m["role"] == "assistant" for b in m["content"]
                 if b.get("type") == "text" and b["text"].strip()), "")
    parts = ["\n\n## State of the current step",
             f"Workspace diff against the starting version:\n{cut_lines(diff, 6000) if diff else '(no edits yet)'}",
             f"Latest evaluation:\n{cut_lines(box.last_result, 4000) if box.last_result else '(none yet)'}"]
    if plan:
        parts.append(f"Your latest plan:\n{cut_lines(plan.strip(), 2000)}")
    return "\n\n".join(parts)


def _target_rules(context: VariationContext) -> str:
    rules = getattr(type(context.evaluator), "rules", "")
    return rules.strip() if isinstance(rules, str) else ""


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _tokens(payload: Any) -> int:
    return len(json.dumps(payload, default=str)) // 4


def _as_text(block: Block) -> Block:
    """A block that can stand without its partner: a tool_result whose tool_use was compacted becomes text."""
    if block.get("type") != "tool_result":
        return block
    return _text(f"(result of an earlier tool call)\n{cut_lines(_result_text(block), 4000)}")


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if isinstance(c, Mapping))
    return str(content)


def _render(messages: Sequence[Mapping[str, Any]]) -> str:
    """A transcript as plain text for the summarizer."""
    lines = []
    for message in messages:
        for block in message["content"]:
            kind = block.get("type")
            if kind == "text":
                lines.append(f"[{message['role']}] {block['text']}")
            elif kind == "tool_use":
                arguments = cut_lines(json.dumps(block.get("input"), default=str), 1500)
                lines.append(f"[call] {block.get('name')} {arguments}")
            elif kind == "tool_result":
                lines.append(f"[result] {cut_lines(_result_text(block), 1500)}")
    return "\n".join(lines)


def _mechanical_summary(old: Sequence[Mapping[str, Any]]) -> str:
    """A summary built without the model: earlier summaries, outcomes, advice and each tool call's result line."""
    calls: dict[str, str] = {}
    facts: list[str] = []
    for message in old:
        for block in message["content"]:
            kind = block.get("type")
            if kind == "tool_use":
                args = block.get("input") if isinstance(block.get("input"), Mapping) else {}
                key = next((str(args[k]) for k in ("hypothesis", "path", "query", "version", "doc") if k in args), "")
                calls[block.get("id", "")] = f"{block.get('name')} {key[:160]}".strip()
            elif kind == "tool_result":
                first = _result_text(block).strip().splitlines()[:1]
                call = calls.get(block.get("tool_use_id", ""), "tool")
                facts.append(f"- {call} -> {first[0][:160] if first else ''}")
            elif kind == "text" and message["role"] == "user" and block["text"].startswith("Summary of"):
                facts.append(cut_lines(block["text"], 2000))
            elif kind == "text" and message["role"] == "user":
                facts += [f"- {line[:300]}" for line in block["text"].splitlines()
                          if line.startswith(("Outcome of", "Supervisor:", "Your previous step"))]
    return cut_lines("Earlier work (mechanical summary):\n" + "\n".join(facts), 6000)
