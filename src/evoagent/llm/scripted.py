"""ScriptedLLM: replays queued model turns, for tests and examples (simonw/llm's MockModel.enqueue)."""

from __future__ import annotations

import copy
import itertools
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LLMError
from ..records import Usage
from .base import Block, LLMResponse, Message

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request the scripted model received (deep copies, safe to inspect later)."""

    system: str | list[Block]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    max_tokens: int | None

    @property
    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.tools]

    def text(self) -> str:
        """Everything the model was shown, as one JSON string (for assertions)."""
        return json.dumps({"system": self.system, "messages": self.messages}, default=str)


# A queued turn: a ready response, an exception to raise, or a function of the request.
Scripted = LLMResponse | BaseException | Callable[[Request], LLMResponse]


def estimate_tokens(payload: Any) -> int:
    """A rough token count (4 characters per token) of a JSON-serializable payload."""
    return max(1, len(json.dumps(payload, default=str)) // 4)


class ScriptedLLM:
    """An LLM that answers with the turns queued on it, in order.

    Each call pops one queued item: an `LLMResponse` is returned, an exception is raised, and a
    callable is called with the `Request` and its result returned. Usage defaults to a rough
    count of the request's size, so context-size logic sees growing prompts.

    >>> llm = ScriptedLLM().enqueue_tool_use("read_file", {"path": "main.py"}).enqueue_text("done")
    """

    name = "scripted"

    def __init__(self, responses: Sequence[Scripted] = (), *, model: str = "scripted",
                 cost_per_mtok: float = 0.0) -> None:
        self.model = model
        self.cost_per_mtok = cost_per_mtok
        self._queue: deque[Scripted] = deque(responses)
        self.requests: list[Request] = []

    def __repr__(self) -> str:
        return f"ScriptedLLM(queued={len(self._queue)}, served={len(self.requests)})"

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def enqueue(self, *items: Scripted) -> ScriptedLLM:
        """Queues responses, exceptions or callables; returns self for chaining."""
        for item in items:
            if not isinstance(item, (LLMResponse, BaseException)) and not callable(item):
                raise TypeError(f"ScriptedLLM.enqueue takes LLMResponse, an exception or a callable, got {item!r}")
            self._queue.append(item)
        return self

    def enqueue_text(self, text: str, *, stop_reason: str = "end_turn", usage: Usage | None = None) -> ScriptedLLM:
        """Queues a plain text turn."""
        return self.enqueue(self.response([{"type": "text", "text": text}], stop_reason=stop_reason, usage=usage))

    def enqueue_tool_use(self, name: str, tool_input: Mapping[str, Any], *, text: str = "",
                         usage: Usage | None = None) -> ScriptedLLM:
        """Queues a turn that calls one tool (with optional text before the call)."""
        return self.enqueue_tool_uses([(name, tool_input)], text=text, usage=usage)

    def enqueue_tool_uses(self, calls: Sequence[tuple[str, Mapping[str, Any]]], *, text: str = "",
                          usage: Usage | None = None) -> ScriptedLLM:
        """Queues a turn that calls several tools in one reply."""
        blocks: list[Block] = [{"type": "text", "text": text}] if text else []
        blocks += [tool_use_block(name, tool_input) for name, tool_input in calls]
        return self.enqueue(self.response(blocks, stop_reason="tool_use", usage=usage))

    def response(self, content: list[Block], *, stop_reason: str = "end_turn",
                 usage: Usage | None = None) -> LLMResponse:
        """An `LLMResponse` from this model (usage None: filled in from the request's size)."""
        return LLMResponse(content=content, stop_reason=stop_reason, usage=usage or _UNSET, model=self.model)

    def complete(
        self,
        *,
        system: str | Sequence[Block],
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int | None = None,
    ) -> LLMResponse:
        request = Request(
            system=system if isinstance(system, str) else copy.deepcopy(list(system)),
            messages=copy.deepcopy([dict(m) for m in messages]),
            tools=copy.deepcopy([dict(t) for t in tools]),
            max_tokens=max_tokens,
        )
        self.requests.append(request)
        if not self._queue:
            raise LLMError(f"ScriptedLLM has no queued response left ({len(self.requests) - 1} were served)")
        item = self._queue.popleft()
        if isinstance(item, BaseException):
            raise item
        response = item if isinstance(item, LLMResponse) else item(request)
        if not isinstance(response, LLMResponse):
            raise TypeError(f"a scripted callable must return LLMResponse, got {type(response).__name__}")
        content = [_with_id(b) for b in response.content]
        usage = response.usage if response.usage is not _UNSET else self._usage(request, content)
        return LLMResponse(content=content, stop_reason=response.stop_reason, usage=usage,
                           model=response.model or self.model)

    def _usage(self, request: Request, content: list[Block]) -> Usage:
        prompt = estimate_tokens({"system": request.system, "messages": request.messages, "tools": request.tools})
        output = estimate_tokens(content)
        return Usage(input_tokens=prompt, output_tokens=output,
                     cost_usd=(prompt + output) * self.cost_per_mtok / 1e6)


def tool_use_block(name: str, tool_input: Mapping[str, Any], *, id: str | None = None) -> Block:
    """A tool_use content block (a fresh id unless given)."""
    return {"type": "tool_use", "id": id or f"toolu_scripted_{next(_ids):04d}", "name": name, "input": dict(tool_input)}


def _with_id(block: Block) -> Block:
    block = copy.deepcopy(block)
    if block.get("type") == "tool_use" and not block.get("id"):
        block["id"] = f"toolu_scripted_{next(_ids):04d}"
    return block


# Marks "usage not given" on a queued response; replaced at call time by an estimate.
_UNSET = Usage(input_tokens=-1)
