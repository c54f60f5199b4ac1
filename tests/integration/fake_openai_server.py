"""A local fake of an OpenAI-compatible Chat Completions API (vLLM-style), enforcing the tool-call rules."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from fake_messages_server import FakeHTTPServer, Received, Reply

_ids = itertools.count(1)


class FakeOpenAIServer(FakeHTTPServer):
    """Serves queued replies to POST /v1/chat/completions; refuses (HTTP 400) a request whose tool calls
    are not each answered by a `tool` message right after the assistant message that made them."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def completion(self, text: str = "", *, calls: Sequence[tuple[str, Mapping[str, Any]]] = (),
                   finish_reason: str | None = None, usage: Mapping[str, int] | None = None,
                   model: str = "local-coder") -> FakeOpenAIServer:
        """Queues a chat completion with optional text and tool calls."""
        tool_calls = [{"id": f"call_{next(_ids):04d}", "type": "function",
                       "function": {"name": name, "arguments": json.dumps(dict(args))}} for name, args in calls]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        body = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 30, "total_tokens": 230, **(usage or {})}}
        return self.reply(Reply(200, body))

    def tool_call(self, name: str, args: Mapping[str, Any], **kwargs: Any) -> FakeOpenAIServer:
        return self.completion(calls=[(name, args)], **kwargs)

    def error(self, status: int, message: str = "scripted failure", *, code: str | None = None,
              headers: Mapping[str, str] | None = None) -> FakeOpenAIServer:
        """Queues an error response in the OpenAI shape (429, 500, 503...)."""
        body = {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                          "code": code}}
        return self.reply(Reply(status, body, dict(headers or {})))

    def _next(self, received: Received) -> Reply:
        broken = rule_broken(received.body)
        if broken:
            with self._lock:
                self.requests.append(received)
                self.rejected.append(broken)
            return Reply(400, {"error": {"message": broken, "type": "invalid_request_error", "code": None}},
                         {"x-should-retry": "false"})
        return super()._next(received)


def rule_broken(body: Any) -> str:
    """The first rule of the chat API this request breaks ('' if none)."""
    if not isinstance(body, Mapping) or not body.get("model") or not isinstance(body.get("messages"), list):
        return "model and messages are required"
    messages = body["messages"]
    for i, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            return f"messages[{i}].role: invalid role {message.get('role')!r}"
        calls = [c["id"] for c in message.get("tool_calls") or []]
        if not calls:
            continue
        following = list(itertools.takewhile(lambda m: m.get("role") == "tool", messages[i + 1:]))
        answered = [m.get("tool_call_id") for m in following]
        if i + 1 < len(messages) and sorted(answered) != sorted(calls):
            return (f"messages[{i}]: an assistant message with 'tool_calls' must be followed by tool messages "
                    f"responding to each 'tool_call_id' (missing {sorted(set(calls) - set(answered))})")
    for i, message in enumerate(messages):
        if message.get("role") == "tool":
            before = messages[:i]
            owner = next((m for m in reversed(before) if m.get("role") != "tool"), None)
            if owner is None or message.get("tool_call_id") not in [c["id"] for c in owner.get("tool_calls") or []]:
                return f"messages[{i}]: messages with role 'tool' must be a response to a preceding message with " \
                       "'tool_calls'"
    return ""
