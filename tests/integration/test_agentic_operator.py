"""The agentic operator's loop: tool use, repair, critique, limits, budgets, supervisor and memory compaction."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fake_messages_server import FakeMessagesServer
from recording_services import RecordingServices
from toy_target import SEED, FakeLineage, ToyEvaluator

from evoagent.candidate import Candidate
from evoagent.errors import BudgetExhausted, ConfigError, LLMError, PromptTooLong
from evoagent.llm.anthropic import Anthropic
from evoagent.llm.scripted import ScriptedLLM
from evoagent.operators.agentic import AgenticVariationOperator
from evoagent.operators.base import TrialOutcome, Usage, VariationContext
from evoagent.operators.supervisor import Supervisor
from evoagent.records import NicheView
from evoagent.result import EvalResult, Status

KEY = "sk-ant-test-operator-SECRET-42"
@dataclass
class Run:
    """What a run would store: transcript, events, usage, exploratory evaluations."""

    messages: list[tuple[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    evaluations: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    budget_tokens: int | None = None
    evaluator: ToyEvaluator = field(default_factory=lambda: ToyEvaluator(scales={"n64": 1.0}))

    def charge(self, usage: Usage) -> None:
        self.usage.append(usage)
        if self.budget_tokens is not None and sum(u.tokens for u in self.usage) >= self.budget_tokens:
            raise BudgetExhausted(f"token budget of {self.budget_tokens} reached")

    def evaluate(self, candidate: Candidate, stages: Any) -> EvalResult:
        self.evaluations.append((candidate.id, tuple(stages)))
        return self.evaluator.evaluate(candidate, None, stages=stages)  # type: ignore[arg-type]

    def context(self, trial_id: int = 1, recent: tuple[TrialOutcome, ...] = (), source: str = SEED) -> VariationContext:
        parent = Candidate.from_source(source, entry="main.py")
        result = self.evaluator.evaluate(parent, None)  # type: ignore[arg-type]
        return VariationContext(
            trial_id=trial_id, parent=parent, parent_result=result, best=(parent, result), evaluator=self.evaluator,
            lineage=FakeLineage(), recent=recent,
            services=RecordingServices(run=self.evaluate, messages=self.messages, events=self.events,
                                       on_charge=self.charge),
        )

    def transcript(self) -> str:
        return json.dumps(self.messages)


def tool_results(request_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in request_messages if m["role"] == "user" for b in m["content"] if b.get("type") == "tool_result"]


def last_results(llm: ScriptedLLM, index: int = -1) -> list[dict[str, Any]]:
    """The tool results sent with one request (the newest user message)."""
    return [b for b in llm.requests[index].messages[-1]["content"] if b.get("type") == "tool_result"]


def assert_valid_conversation(messages: list[dict[str, Any]]) -> None:
    """Roles alternate starting with user, and every tool_use is answered right after it."""
    assert messages[0]["role"] == "user"
    for before, after in itertools.pairwise(messages):
        assert before["role"] != after["role"]
        if before["role"] == "assistant":
            asked = {b["id"] for b in before["content"] if b.get("type") == "tool_use"}
            answered = {b["tool_use_id"] for b in after["content"] if b.get("type") == "tool_result"}
            assert asked == answered


_SERVERS: list[FakeMessagesServer] = []


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    yield
    while _SERVERS:
        server = _SERVERS.pop()
        server.__exit__(None, None, None)
        assert server.rejected == [], f"the agent broke the API's rules: {server.rejected}"


def through_api(llm: ScriptedLLM, **kwargs: Any) -> Anthropic:
    """The real client against a server that enforces the API's rules and answers with the script's turns."""
    server = FakeMessagesServer(script=llm).__enter__()
    _SERVERS.append(server)
    kwargs.setdefault("thinking", "off")
    return Anthropic(base_url=server.url, max_retries=0, **kwargs)


def operator(llm: Any, **kwargs: Any) -> AgenticVariationOperator:
    """The operator; a scripted model is reached through the real client and the rule-enforcing server."""
    kwargs.setdefault("supervisor", False)
    return AgenticVariationOperator(through_api(llm) if isinstance(llm, ScriptedLLM) else llm, **kwargs)


FAST = {"path": "main.py", "old": "SPEED = 1", "new": "SPEED = 5"}


# -- a step against the real client and a local Messages API ------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessagesServer]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeMessagesServer() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake


def test_multi_turn_tool_use_step_over_http_submits_the_edited_version(server: FakeMessagesServer) -> None:
    server.tool_use("read_file", {"path": "main.py"}, text="First I read the entry file.")
    server.tool_uses([("edit_file", FAST), ("benchmark", {})])
    server.error(429, "rate_limit_error", retry_after="0")
    server.tool_use("submit", {"hypothesis": "raise SPEED"})
    server.tool_use("submit", {"hypothesis": "raising SPEED to 5 raises the score fivefold"})
    run = Run()
    proposal = operator(Anthropic(), max_tokens=1000).vary(run.context())

    assert proposal.candidate is not None and proposal.candidate.source == SEED.replace("SPEED = 1", "SPEED = 5")
    assert proposal.hypothesis == "raising SPEED to 5 raises the score fivefold"
    assert proposal.candidate.metadata["turns"] == 4 and proposal.candidate.metadata["operator"] == "agentic"
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 5 and bodies[2] == bodies[3]  # the 429 was retried with the same request
    read = tool_results(bodies[1]["messages"])[0]
    assert read["content"].startswith("main.py (5 lines)\n1\tSPEED = 1\n") and "is_error" not in read
    edit, bench = tool_results(bodies[2]["messages"])[1:]
    assert edit["content"].startswith("edited main.py") and bench["content"].startswith("status: ok\nscore: 5")
    assert tool_results(bodies[4]["messages"])[-1]["content"].startswith("critique requested")
    assert bodies[0]["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert bodies[0]["tools"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "SPEED must be an integer literal" in bodies[0]["system"][0]["text"]
    assert "best * (1 - tolerance)" in bodies[0]["system"][0]["text"]
    assert KEY in server.requests[0].headers.get("authorization", "") + server.requests[0].headers.get("x-api-key", "")
    assert KEY not in run.transcript() and KEY not in json.dumps(run.events) and KEY not in repr(proposal)
    assert [role for role, _ in run.messages[:3]] == ["system", "user", "assistant"]
    assert len(run.usage) == 4 and sum(u.cost_usd for u in run.usage) > 0  # one charge per answered request


def test_max_tokens_truncation_over_http_reruns_the_cut_call(server: FakeMessagesServer) -> None:
    cut_call = {"type": "tool_use", "id": "toolu_cut", "name": "write_file", "input": {"path": "main.py"}}
    server.message([{"type": "text", "text": "I will rewrite the file."}, cut_call], stop_reason="max_tokens")
    server.tool_use("edit_file", FAST)
    server.tool_use("submit", {"hypothesis": "faster"})
    run = Run()
    proposal = operator(Anthropic(), max_tokens=1000, critique=False).vary(run.context())
    assert proposal.candidate is not None
    second = server.requests[1].body
    result = tool_results(second["messages"])[0]
    assert result["tool_use_id"] == "toolu_cut" and result["is_error"] and "cut off" in result["content"]
    assert "max_tokens limit" in second["messages"][-1]["content"][-1]["text"]
    assert second["max_tokens"] == 2000  # doubled after the cut
    assert proposal.candidate.source == SEED.replace("SPEED = 1", "SPEED = 5")  # the cut write never ran


# -- the loop with a scripted model --------------------------------------------------------------


def test_edit_compile_error_repair_and_submit() -> None:
    llm = ScriptedLLM()
    llm.enqueue_tool_use("edit_file", {"path": "main.py", "old": "return sorted(xs)", "new": "return sorted(xs"})
    llm.enqueue_tool_use("compile", {})
    llm.enqueue_tool_use("edit_file", {"path": "main.py", "old": "return sorted(xs", "new": "return sorted(xs)"})
    llm.enqueue_tool_uses([("edit_file", FAST), ("test", {})])
    llm.enqueue_tool_use("submit", {"hypothesis": "h"}).enqueue_tool_use("submit", {"hypothesis": "SPEED 5"})
    run = Run()
    proposal = operator(llm).vary(run.context())

    compile_text = last_results(llm, 2)[0]["content"]
    assert compile_text.startswith("status: compile_error\nscore: -") and "line 5" in compile_text
    assert "5 more failed evaluation(s)" in compile_text
    assert last_results(llm, 4)[1]["content"].startswith("status: ok")
    assert proposal.candidate is not None and proposal.candidate.metadata["failed_evaluations"] == 1
    assert [stages for _, stages in run.evaluations[-2:]] == [("check",), ("check", "test")]


def test_a_malformed_tool_input_is_answered_with_an_error_and_the_loop_goes_on() -> None:
    llm = ScriptedLLM()
    llm.enqueue_tool_use("edit_file", {"path": "main.py", "old": "SPEED = 1"})
    llm.enqueue_tool_use("edit_file", FAST)
    llm.enqueue_tool_use("submit", {"hypothesis": "SPEED 5"})
    proposal = operator(llm, critique=False).vary(Run().context())
    error = last_results(llm, 1)[0]
    assert error["is_error"] is True and "missing 'new'" in error["content"]
    assert proposal.candidate is not None


def test_a_reply_without_tool_calls_is_nudged_towards_the_tools() -> None:
    llm = ScriptedLLM().enqueue_text("I think raising SPEED is best.")
    llm.enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "h"})
    proposal = operator(llm, critique=False).vary(Run().context())
    assert "You called no tool" in llm.requests[1].messages[-1]["content"][-1]["text"]
    assert proposal.candidate is not None


def test_running_out_of_turns_ends_the_step_without_a_candidate() -> None:
    llm = ScriptedLLM()
    for _ in range(3):
        llm.enqueue_tool_use("read_file", {"path": "main.py"})
    proposal = operator(llm, max_turns=3).vary(Run().context())
    assert proposal.candidate is None and proposal.reason == "no submission within 3 turns"
    assert "2 turn(s) left" in llm.requests[1].messages[-1]["content"][-1]["text"]


def test_exceeding_the_repair_budget_ends_the_step() -> None:
    llm = ScriptedLLM()
    llm.enqueue_tool_uses([("edit_file", {"path": "main.py", "old": "sorted(xs)", "new": "list(xs)"}), ("test", {})])
    llm.enqueue_tool_uses([("edit_file", {"path": "main.py", "old": "list(xs)", "new": "xs[::-1]"}), ("test", {}),
                           ("submit", {"hypothesis": "never run"})])
    proposal = operator(llm, repair_budget=1).vary(Run().context())
    assert proposal.candidate is None and proposal.reason.startswith("repair budget spent: 2 failed")
    assert llm.remaining == 0


def test_a_refusal_ends_the_step_and_is_dropped_from_memory() -> None:
    llm = ScriptedLLM().enqueue(ScriptedLLM().response([{"type": "text", "text": "I can't help."}], stop_reason="refusal"))
    op, run = operator(llm), Run()
    proposal = op.vary(run.context())
    assert proposal.candidate is None and "refused" in proposal.reason
    assert "I can't help." in run.transcript()  # stored, but not remembered
    llm.enqueue_text("Thinking.").enqueue_text("Nothing.")
    op.vary(run.context(trial_id=2))
    assert "I can't help." not in json.dumps(llm.requests[1].messages)
    assert_valid_conversation(llm.requests[1].messages)


def test_budget_running_out_mid_step_propagates_and_the_next_step_recovers() -> None:
    llm = ScriptedLLM().enqueue_tool_use("read_file", {"path": "main.py"}, usage=Usage(input_tokens=60))
    llm.enqueue_tool_uses([("edit_file", FAST), ("test", {})], usage=Usage(input_tokens=60))
    run = Run(budget_tokens=100)
    op = operator(llm, critique=False)
    with pytest.raises(BudgetExhausted, match="token budget of 100"):
        op.vary(run.context())
    assert run.evaluations == []  # the tools of the reply that broke the budget never ran

    run.budget_tokens = None
    llm.enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "h"})
    proposal = op.vary(run.context(trial_id=2))
    assert proposal.candidate is not None and proposal.candidate.source == SEED.replace("SPEED = 1", "SPEED = 5")
    sent = llm.requests[2].messages
    assert_valid_conversation(sent)
    interrupted = [b for b in tool_results(sent) if "interrupted" in str(b["content"])]
    assert len(interrupted) == 2 and all(b["is_error"] for b in interrupted)


def test_the_conversation_persists_and_reports_the_last_outcome_by_its_delta() -> None:
    llm = ScriptedLLM().enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "SPEED 5"})
    op = operator(llm, critique=False)
    run = Run()
    context = run.context(trial_id=1)
    first = op.vary(context)
    assert first.candidate is not None
    versions = {c.id: (c, run.evaluator.evaluate(c, None)) for c in (context.parent, first.candidate)}
    op.observe(TrialOutcome(trial_id=1, candidate_id=first.candidate.id, parent_id=None, hypothesis="SPEED 5",
                            status=Status.OK, reason="", score=5.0, committed=True))
    op.max_turns = 1
    llm.enqueue_tool_use("read_file", {"path": "main.py"})
    second = run.context(trial_id=2, source=first.candidate.source)
    second.services.versions = versions
    assert op.vary(second).candidate is None
    sent = llm.requests[2].messages
    assert_valid_conversation(sent)
    assert sent[0]["content"][0]["text"].startswith("## Variation step 1 (trial 1)")
    opening = sent[-1]["content"][-1]["text"]
    assert opening.startswith("## Variation step 2 (trial 2)")
    outcome = (f"version {first.candidate.id}: ok, score 5, Δ +400.00% vs its starting version {context.parent.id} "
               "(per configuration: n64 +400.00%); committed: an improvement, now in the lineage")
    assert f"Outcome of your submission in trial 1: {outcome}" in opening and "COMMITTED" not in opening
    assert "### Lineage\nBest committed version: seed (score 1)." in opening

    llm.enqueue_tool_use("read_file", {"path": "main.py"})
    op.vary(run.context(trial_id=3))
    opening = llm.requests[-1].messages[-1]["content"][-1]["text"]
    assert "Outcome of your submission" not in opening  # reported once
    assert f"Last submission: {outcome}" in opening  # its Δ opens every step
    assert "Your previous step ended without a submission: no submission within 1 turns" in opening
    assert_valid_conversation(llm.requests[-1].messages)


def test_supervisor_advice_after_a_stall_opens_the_next_step() -> None:
    recent = tuple(TrialOutcome(trial_id=i, candidate_id=f"c{i}", parent_id="seed", hypothesis=f"try {i}",
                                status=Status.OK, reason="", score=0.9, committed=False) for i in range(1, 5))
    llm = ScriptedLLM().enqueue_text("1. Vectorize the inner loop\n2. Cache-friendly tiling\n3. Fewer passes")
    llm.enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "h"})
    run = Run()
    op = AgenticVariationOperator(llm, critique=False, supervisor=Supervisor(llm, stall_steps=4))
    op.vary(run.context(trial_id=5, recent=recent))
    assert llm.requests[0].tools == []  # the supervisor's own call
    opening = llm.requests[1].messages[-1]["content"][-1]["text"]
    assert "Supervisor: no trial improved the score in the last 4 trials" in opening
    assert "1. Vectorize the inner loop" in opening and "3. Fewer passes" in opening
    _, payload = next(e for e in run.events if e[0] == "supervisor")
    assert payload["trigger"] == "stall" and len(payload["directions"]) == 3


def test_default_supervisor_uses_the_operators_model() -> None:
    llm = ScriptedLLM()
    op = AgenticVariationOperator(llm)
    assert op.supervisor is not None and op.supervisor.llm is llm
    assert AgenticVariationOperator(llm, supervisor=False).supervisor is None
    with pytest.raises(ConfigError, match="max_turns"):
        AgenticVariationOperator(llm, max_turns=0)


BIG = SEED + "# padding\n" * 400  # ~4,400 characters: ~1,100 tokens each time it is read
SMALL = Usage(input_tokens=1000)


def _unmarked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without the backend's cache breakpoints (they move to the newest block)."""
    return [{**m, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]}
            for m in messages]


def _long_step(llm: ScriptedLLM, reads: int, last: Usage = SMALL) -> None:
    for _ in range(reads):
        llm.enqueue_tool_use("read_file", {"path": "main.py"}, usage=SMALL)
    llm.enqueue_tool_use("edit_file", FAST, usage=SMALL).enqueue_tool_use("submit", {"hypothesis": "SPEED 5"}, usage=last)


def test_at_a_step_boundary_the_model_summarises_inside_its_cached_conversation() -> None:
    llm = ScriptedLLM()
    _long_step(llm, 2, last=Usage(input_tokens=5000))  # the model reports a prompt near the limit
    llm.enqueue_text("Tried SPEED 5; read main.py twice. Next: keep SPEED high.", usage=SMALL)
    _long_step(llm, 1)
    op = operator(llm, critique=False, compact_at_tokens=4800)
    run = Run()
    for trial_id in (1, 2):
        assert op.vary(run.context(trial_id=trial_id, source=BIG)).candidate is not None
    summary_call, last_of_step = llm.requests[4], llm.requests[3]
    # the same system prompt, tools and conversation prefix: a request the prompt cache answers
    assert summary_call.tools == last_of_step.tools and summary_call.system == last_of_step.system
    assert _unmarked(summary_call.messages[:len(last_of_step.messages)]) == _unmarked(last_of_step.messages)
    assert summary_call.messages[-1]["content"][-1]["text"].startswith("Memory compaction:")
    assert summary_call.max_tokens >= 8192
    before, after = llm.requests[3].messages, llm.requests[5].messages
    assert after[0]["content"][0]["text"].startswith("Summary of your earlier work (compacted before step 2")
    assert "Tried SPEED 5" in after[0]["content"][0]["text"]
    assert after[-1]["content"][-1]["text"].startswith("## Variation step 2")  # the fresh step is kept whole
    assert_valid_conversation(after)
    assert len(json.dumps(after)) < len(json.dumps(before))
    assert op.compactions == 1
    _, payload = next(e for e in run.events if e[0] == "compaction")
    assert payload["method"] == "model" and payload["messages_removed"] >= 2 and payload["at"] == "step boundary"
    assert ("summary", "Tried SPEED 5; read main.py twice. Next: keep SPEED high.") in run.messages
    assert len(run.usage) == len(llm.requests)  # the summary call was charged too


def test_compaction_inside_a_step_keeps_the_workspace_diff_the_latest_result_and_the_plan() -> None:
    llm = ScriptedLLM()
    for _ in range(2):
        llm.enqueue_tool_use("read_file", {"path": "main.py"}, usage=SMALL)
    llm.enqueue_tool_uses([("edit_file", FAST), ("benchmark", {})], text="Plan: raise SPEED to 5, then submit.",
                          usage=Usage(input_tokens=5000))  # the prompt is now past compact_at_tokens
    llm.enqueue_text("Read main.py twice.", usage=SMALL)  # the summary
    llm.enqueue_tool_use("submit", {"hypothesis": "SPEED 5"}, usage=SMALL)
    op = operator(llm, critique=False, compact_at_tokens=4800)
    assert op.vary(Run().context(source=BIG)).candidate is not None
    assert op.compactions == 1
    head = llm.requests[-1].messages[0]["content"][0]["text"]
    assert head.startswith("Summary of your earlier work") and "Read main.py twice." in head
    state = head[head.index("## State of the current step"):]
    assert "-SPEED = 1\n+SPEED = 5" in state
    assert "Latest evaluation:\nstatus: ok\nscore: 5" in state
    assert "Your latest plan:\nPlan: raise SPEED to 5, then submit." in state
    assert_valid_conversation(llm.requests[-1].messages)


def test_compaction_falls_back_to_a_mechanical_summary_when_the_model_fails() -> None:
    llm = ScriptedLLM()
    _long_step(llm, 2, last=Usage(input_tokens=5000))
    llm.enqueue(LLMError("overloaded"))
    _long_step(llm, 1)
    op = operator(llm, critique=False, compact_at_tokens=4800)
    run = Run()
    for trial_id in (1, 2):
        assert op.vary(run.context(trial_id=trial_id, source=BIG)).candidate is not None
    assert op.summary.startswith("Earlier work (mechanical summary)")
    assert "- read_file main.py -> main.py (405 lines)" in op.summary
    assert any(kind == "compaction" and p["method"] == "fallback" for kind, p in run.events)
    assert llm.requests[5].messages[0]["content"][0]["text"].startswith("Summary of your earlier work")
    assert_valid_conversation(llm.requests[-1].messages)


def test_the_key_never_reaches_transcripts_events_or_proposals(server: FakeMessagesServer) -> None:
    server.text("1. Try a different tiling")  # supervisor
    server.tool_use("edit_file", FAST)
    server.tool_use("submit", {"hypothesis": "h"})
    recent = tuple(TrialOutcome(trial_id=i, candidate_id=None, parent_id="seed", hypothesis="", status=Status.CRASH,
                                reason="boom", score=None, committed=False) for i in range(1, 5))
    llm = Anthropic()
    run = Run()
    op = AgenticVariationOperator(llm, critique=False, supervisor=Supervisor(llm, failure_streak=4))
    proposal = op.vary(run.context(trial_id=5, recent=recent))
    assert proposal.candidate is not None and len(server.requests) == 3
    stored = json.dumps([run.messages, run.events, op.spec(), dict(proposal.candidate.metadata), dict(proposal.candidate.files)])
    assert KEY not in stored and KEY not in repr(op) and KEY not in json.dumps(op.messages)


def test_two_replies_without_tools_in_a_row_end_the_step() -> None:
    llm = ScriptedLLM().enqueue_text("Nothing left to try.").enqueue_text("Still nothing.")
    proposal = operator(llm, max_turns=40).vary(Run().context())
    assert proposal.candidate is None and "twice without calling a tool" in proposal.reason
    assert len(llm.requests) == 2


def test_a_backend_reporting_no_usage_is_still_compacted_by_size() -> None:
    llm = ScriptedLLM()
    zero = Usage()
    for _ in range(2):  # two steps of big reads, every reply reporting 0 tokens (like HeuristicPolicy)
        for _ in range(3):
            llm.enqueue_tool_use("read_file", {"path": "main.py"}, usage=zero)
        llm.enqueue_tool_use("edit_file", FAST, usage=zero).enqueue_tool_use("submit", {"hypothesis": "h"}, usage=zero)

    class Summarizing:  # answers the tool-less summary request itself, the rest from the script
        name = "summarizing"

        def complete(self, **request: Any) -> Any:
            if not request["tools"]:
                return ScriptedLLM().enqueue_text("summary of the reads", usage=zero).complete(**request)
            return llm.complete(**request)

    op = operator(Summarizing(), critique=False, compact_at_tokens=4800)
    run = Run()
    for trial_id in (1, 2):
        assert op.vary(run.context(trial_id=trial_id, source=BIG)).candidate is not None
    assert op.compactions >= 1
    assert any(kind == "compaction" for kind, _ in run.events)


def test_a_resumed_operator_starts_from_a_summary_of_the_stored_transcript() -> None:
    stored = [
        {"role": "system", "content": "the system prompt"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "submit",
                                           "input": {"hypothesis": "SPEED 7 via unrolling"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "submitted version abc123"}]},
    ]
    llm = ScriptedLLM().enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "h"})
    op = operator(llm, critique=False)
    op.remember(stored)
    run = Run()
    assert op.vary(run.context()).candidate is not None
    assert [role for role, _ in run.messages].count("summary") == 1
    first = llm.requests[0].messages[0]["content"]
    assert first[0]["text"].startswith("Summary of your earlier work (this run was resumed)")
    assert "submit SPEED 7 via unrolling -> submitted version abc123" in first[0]["text"]
    assert first[1]["text"].startswith("## Variation step 1")
    assert_valid_conversation(llm.requests[-1].messages)


def test_a_prompt_too_long_compacts_the_memory_and_retries_once() -> None:
    llm = ScriptedLLM().enqueue_tool_use("read_file", {"path": "main.py"}).enqueue_tool_use("read_file", {"path": "main.py"})
    llm.enqueue(PromptTooLong("prompt is too long: 1200000 tokens > 1000000 maximum"))
    llm.enqueue_text("Read main.py twice; SPEED is 1.")  # the summary of the compacted turns
    llm.enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "SPEED 5"})
    run = Run()
    op = operator(llm, critique=False)
    proposal = op.vary(run.context())
    assert proposal.candidate is not None and op.compactions == 1
    retried = llm.requests[4].messages
    assert retried[0]["content"][0]["text"].startswith("Summary of your earlier work (older turns were compacted):\n"
                                                       "Read main.py twice")
    assert len(retried) < len(llm.requests[2].messages)
    assert_valid_conversation(retried)


def test_a_second_prompt_too_long_ends_the_step_with_the_api_error() -> None:
    llm = ScriptedLLM().enqueue_tool_use("read_file", {"path": "main.py"})
    too_long = PromptTooLong("prompt is too long: 1200000 tokens > 1000000 maximum")
    llm.enqueue(too_long).enqueue_text("summary").enqueue(too_long)
    with pytest.raises(PromptTooLong, match="prompt is too long"):
        operator(llm, critique=False).vary(Run().context())


def test_the_step_opens_with_the_niche_it_works_in() -> None:
    llm = ScriptedLLM().enqueue_tool_use("edit_file", FAST).enqueue_tool_use("submit", {"hypothesis": "SPEED 5"})
    context = Run().context()
    context.niche = NicheView(name="island 1", text="You work on island 1 of 3.\n  island 0: best abc score 2")
    assert operator(llm, critique=False).vary(context).candidate is not None
    opening = llm.requests[0].messages[0]["content"][0]["text"]
    assert "### Population (island 1)\nYou work on island 1 of 3.\n  island 0: best abc score 2" in opening
