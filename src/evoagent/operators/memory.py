"""The agent's memory across steps: compaction summaries, the step's state kept through one, transcript rendering.

The operator compacts at a step boundary by asking the model, inside its own cached conversation, to
write the summary that replaces it (`boundary_summary_request`); an emergency inside a step (the
prompt reached the limit, or the API found it too long) is summarised from a rendered transcript
(`emergency_summary_request`) and keeps the step's state (`step_state`). When the model cannot
answer, `mechanical_summary` is built from the transcript alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..llm.base import Block
from ..tables import cut_lines
from .tools import Toolbox

SUMMARY_MAX_TOKENS = 8192  # a summary written with adaptive thinking on needs room (>= 8k)
NOTES_MAX_CHARS = 8000  # the notes block: about 2k tokens

EMERGENCY_SYSTEM = ("You compress the working memory of a coding agent. Keep what it needs to continue: "
                    "what was tried, outcomes with numbers, what failed and why, facts learned, promising ideas.")

BOUNDARY_REQUEST = """\
Memory compaction: this conversation has grown to about {tokens:,} tokens. Before the next step starts,
everything above will be replaced by the summary you write now (your notes block is kept as it is and
reprinted in every opening; the lineage, every stored version and the knowledge base stay readable
through the tools). Do not call a tool. Write, for your future self, in plain text (up to ~1,500 words):
- the versions and hypotheses you tried, each with its outcome and numbers (Δ vs its starting version,
  per-configuration effects where you saw them);
- what failed and why (compile errors, wrong results, rules), so it is not tried again blindly;
- facts you measured about the target and the hardware (profiles, static reports, experiments);
- the open ideas, ranked, with what you expect each to gain."""


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def estimate_tokens(payload: Any) -> int:
    """About four characters a token, over the JSON text."""
    return len(json.dumps(payload, default=str)) // 4


def boundary_summary_request(messages: Sequence[Mapping[str, Any]], tokens: int) -> list[dict[str, Any]]:
    """The conversation plus the request to summarise it, as one more user turn (a prefix the cache holds)."""
    ask = text_block(BOUNDARY_REQUEST.format(tokens=tokens))
    out = [dict(m) for m in messages]
    if out and out[-1]["role"] == "user":
        out[-1] = {"role": "user", "content": [*out[-1]["content"], ask]}
    else:
        out.append({"role": "user", "content": [ask]})
    return out


def emergency_summary_request(old: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A one-message request summarising a rendered transcript (the conversation itself is too long)."""
    transcript = cut_lines(render(old), 80_000)
    prompt = ("Summarize the work below for your future self, in at most 800 words: versions and hypotheses "
              "tried, their outcomes with numbers, what failed and why, facts learned about the target, and "
              f"promising next ideas.\n\n{transcript}")
    return [{"role": "user", "content": [text_block(prompt)]}]


def step_state(box: Toolbox, messages: Sequence[Mapping[str, Any]]) -> str:
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


def as_text(block: Block) -> Block:
    """A block that can stand without its partner: a tool_result whose tool_use was compacted becomes text."""
    if block.get("type") != "tool_result":
        return block
    return text_block(f"(result of an earlier tool call)\n{cut_lines(result_text(block), 4000)}")


def result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if isinstance(c, Mapping))
    return str(content)


def render(messages: Sequence[Mapping[str, Any]]) -> str:
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
                lines.append(f"[result] {cut_lines(result_text(block), 1500)}")
    return "\n".join(lines)


def mechanical_summary(old: Sequence[Mapping[str, Any]]) -> str:
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
                first = result_text(block).strip().splitlines()[:1]
                call = calls.get(block.get("tool_use_id", ""), "tool")
                facts.append(f"- {call} -> {first[0][:160] if first else ''}")
            elif kind == "text" and message["role"] == "user" and block["text"].startswith("Summary of"):
                facts.append(cut_lines(block["text"], 2000))
            elif kind == "text" and message["role"] == "user":
                facts += [f"- {line[:300]}" for line in block["text"].splitlines()
                          if line.startswith(("Outcome of", "Supervisor:", "Your previous step"))]
    return cut_lines("Earlier work (mechanical summary):\n" + "\n".join(facts), 6000)
