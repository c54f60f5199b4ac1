"""The LLM protocol: one call from messages and tool schemas to content blocks and usage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..records import Usage

# Messages and content blocks use the Anthropic Messages API shapes, as plain dicts:
#   {"role": "user" | "assistant", "content": str | [block, ...]}
#   blocks: {"type": "text", "text": ...}
#           {"type": "tool_use", "id": ..., "name": ..., "input": {...}}
#           {"type": "tool_result", "tool_use_id": ..., "content": str, "is_error": bool}
#           {"type": "thinking", "thinking": ..., "signature": ...}
Message = Mapping[str, Any]
Block = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMResponse:
    """One model turn.

    Attributes:
        content: the assistant's content blocks (text, tool_use, thinking) as dicts.
        stop_reason: 'end_turn', 'tool_use', 'max_tokens', 'stop_sequence' or 'refusal'; offline policies
            also answer 'end_step' (this step ends without a submission; the text says why) and
            'exhausted' (nothing more to try for this target: the run stops; the text says why).
        usage: tokens and dollars of this call.
        model: the model that answered.
    """

    content: list[Block] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    @property
    def tool_uses(self) -> list[Block]:
        return [b for b in self.content if b.get("type") == "tool_use"]


@runtime_checkable
class LLM(Protocol):
    """What the agentic operator talks to (Anthropic, HeuristicPolicy, scripted replay)."""

    name: str

    def complete(
        self,
        *,
        system: str | Sequence[Block],
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int | None = None,
    ) -> LLMResponse:
        """Sends one request (max_tokens None: the backend's own setting); returns the assistant turn.

        Raises LLMError after retries (PromptTooLong when the prompt does not fit the context window).
        """
        ...
