"""A local fake of the Anthropic Messages API (real HTTP on 127.0.0.1) that enforces the API's rules.

Replies are scripted per test (a queue of replies, or a `ScriptedLLM` whose turns it serves); a
request that breaks a rule of the API is answered with HTTP 400 naming the rule, as the real API
does: roles alternate, every tool_use is answered by a tool_result with its id at the start of the
next user message, thinking blocks come back unchanged (and the continued turn keeps them), at most
4 cache breakpoints with 1-hour ones before 5-minute ones, budget_tokens >= 1024 and < max_tokens,
and streaming above the SDK's non-streaming limit. `stream: true` is answered with server-sent events.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

_ids = itertools.count(1)
_Self = TypeVar("_Self", bound="FakeHTTPServer")
# The SDK's non-streaming limit: a request may not be expected to run past 10 minutes at 128,000
# output tokens an hour, so max_tokens above 21,333 must stream.
NONSTREAMING_MAX_TOKENS = 600 * 128_000 // 3600


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted HTTP reply; `drop` closes the connection without answering."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any


class FakeHTTPServer:
    """A local HTTP server for API fakes: queued replies served in order, every request recorded.

    Subclasses answer in their API's shapes (`_next`) and encode replies (`_payload`).
    """

    def __init__(self) -> None:
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self: _Self) -> _Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def reply(self: _Self, reply: Reply) -> _Self:
        with self._lock:
            self._queue.append(reply)
        return self

    def drop(self: _Self) -> _Self:
        """Queues a connection that closes without an answer (a connection error for the client)."""
        return self.reply(Reply(drop=True))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self._queue:
                return self._queue.popleft()
        return Reply(400, {"error": {"type": "invalid_request_error", "message": "fake server: no scripted reply left"}},
                     {"x-should-retry": "false"})

    def _payload(self, reply: Reply, body: Any) -> tuple[str, bytes]:
        return "application/json", json.dumps(reply.body).encode()


class FakeMessagesServer(FakeHTTPServer):
    """Serves queued replies to POST /v1/messages, in order, and records every request.

    With `script` (a ScriptedLLM), a request that finds the queue empty is answered with the
    script's next turn; an exception the script raises becomes an HTTP 400 with its message.

    >>> with FakeMessagesServer() as server:
    ...     server.error(429, "rate_limit_error", retry_after="0").text("hello")
    ...     # point the client at server.url
    """

    def __init__(self, script: Any = None) -> None:
        super().__init__()
        self.script = script
        self.rejected: list[str] = []  # the rule each refused request broke
        self._thinking: dict[str, str] = {}  # signature -> thinking text, for every thinking block served
        self._turn_thinking: dict[str, list[dict[str, Any]]] = {}  # tool_use id -> thinking blocks of its reply

    # -- scripting ------------------------------------------------------------------------------

    def message(self, content: Sequence[Mapping[str, Any]], *, stop_reason: str = "end_turn",
                usage: Mapping[str, int] | None = None, model: str = "claude-sonnet-4-6") -> FakeMessagesServer:
        """Queues a successful Messages API response with these content blocks."""
        return self.reply(Reply(200, message_body(content, stop_reason=stop_reason, usage=usage, model=model)))

    def text(self, text: str, **kwargs: Any) -> FakeMessagesServer:
        return self.message([{"type": "text", "text": text}], **kwargs)

    def tool_use(self, name: str, tool_input: Mapping[str, Any], *, text: str = "", **kwargs: Any) -> FakeMessagesServer:
        return self.tool_uses([(name, tool_input)], text=text, **kwargs)

    def tool_uses(self, calls: Sequence[tuple[str, Mapping[str, Any]]], *, text: str = "", thinking: str = "",
                  **kwargs: Any) -> FakeMessagesServer:
        """Queues a turn calling tools (after an optional thinking block and text)."""
        blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": thinking}] if thinking else []
        blocks += [{"type": "text", "text": text}] if text else []
        blocks += [{"type": "tool_use", "id": f"toolu_fake_{next(_ids):04d}", "name": name, "input": dict(i)}
                   for name, i in calls]
        kwargs.setdefault("stop_reason", "tool_use")
        return self.message(blocks, **kwargs)

    def error(self, status: int, error_type: str, message: str = "scripted failure", *,
              retry_after: str | None = None, headers: Mapping[str, str] | None = None) -> FakeMessagesServer:
        """Queues an API error response (e.g. 429 rate_limit_error, 529 overloaded_error)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = retry_after
        return self.reply(Reply(status, error_body(error_type, message), extra))

    def _payload(self, reply: Reply, body: Any) -> tuple[str, bytes]:
        if isinstance(body, Mapping) and body.get("stream") and reply.status == 200:
            return "text/event-stream", "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                                                for name, data in _events(reply.body)).encode()
        return super()._payload(reply, body)

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            broken = rule_broken(received.body, self._thinking, self._turn_thinking)
            if broken:
                self.rejected.append(broken)
                return Reply(400, error_body("invalid_request_error", broken), {"x-should-retry": "false"})
            if self._queue:
                return self._served(self._queue.popleft())
        if self.script is not None:
            return self._served(self._from_script(received.body))
        return Reply(400, error_body("invalid_request_error", "fake server: no scripted reply left"),
                     {"x-should-retry": "false"})

    def _from_script(self, body: Mapping[str, Any]) -> Reply:
        try:
            response = self.script.complete(system=body.get("system", ""), messages=body["messages"],
                                            tools=body.get("tools", []), max_tokens=body["max_tokens"])
        except Exception as exc:  # the script's failure becomes the API's
            return Reply(400, error_body("invalid_request_error", str(exc)), {"x-should-retry": "false"})
        u = response.usage
        usage = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                 "cache_creation_input_tokens": u.cache_write_tokens, "cache_read_input_tokens": u.cache_read_tokens}
        return Reply(200, message_body(response.content, stop_reason=response.stop_reason, usage=usage,
                                       model=body.get("model", "claude-sonnet-4-6")))

    def _served(self, reply: Reply) -> Reply:
        """Signs the thinking blocks of a reply and remembers them, so that they must come back unchanged."""
        if reply.status != 200 or not isinstance(reply.body, dict):
            return reply
        content = [dict(b) for b in reply.body.get("content", [])]
        thinking = []
        for block in content:
            if block.get("type") == "thinking":
                block.setdefault("signature", _sign(block.get("thinking", "")))
                self._thinking[block["signature"]] = block.get("thinking", "")
                thinking.append(block)
        for block in content:
            if block.get("type") == "tool_use" and thinking:
                self._turn_thinking[block["id"]] = thinking
        return Reply(reply.status, {**reply.body, "content": content}, reply.headers)


def message_body(content: Sequence[Mapping[str, Any]], *, stop_reason: str = "end_turn",
                 usage: Mapping[str, int] | None = None, model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    return {
        "id": f"msg_fake_{next(_ids):04d}", "type": "message", "role": "assistant", "model": model,
        "content": [dict(b) for b in content], "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, **(usage or {})},
    }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _sign(text: str) -> str:
    return "sig_" + hashlib.sha256(f"{next(_ids)}:{text}".encode()).hexdigest()[:24]


# -- the API's rules ---------------------------------------------------------------------------


def rule_broken(body: Any, issued: Mapping[str, str], turn_thinking: Mapping[str, list[dict[str, Any]]]) -> str:
    """The first rule of the Messages API this request breaks, as the API words it ('' if none)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: at least one message is required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: must be a positive integer"
    if not body.get("stream") and max_tokens > NONSTREAMING_MAX_TOKENS:
        return (f"streaming is required when max_tokens ({max_tokens}) may take longer than 10 minutes "
                f"(more than {NONSTREAMING_MAX_TOKENS})")
    for check in (_thinking_rule(body), _role_rule(body["messages"]), _tool_rule(body["messages"]),
                  _signature_rule(body["messages"], issued, turn_thinking), _cache_rule(body)):
        if check:
            return check
    return ""


def _thinking_rule(body: Mapping[str, Any]) -> str:
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return ""
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if budget >= body["max_tokens"]:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return ""


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, Mapping)]


def _role_rule(messages: Sequence[Mapping[str, Any]]) -> str:
    if messages[0].get("role") != "user":
        return "messages: the first message must use the \"user\" role"
    for i, (before, after) in enumerate(itertools.pairwise(messages), start=1):
        if before.get("role") == after.get("role") or after.get("role") not in ("user", "assistant"):
            return f"messages.{i}: roles must alternate between \"user\" and \"assistant\""
    for i, message in enumerate(messages):
        for block in _blocks(message):
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{i}: text content blocks must be non-empty"
    return ""


def _tool_rule(messages: Sequence[Mapping[str, Any]]) -> str:
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        asked = [b.get("id") for b in _blocks(messages[i - 1]) if b.get("type") == "tool_use"] if i else []
        if message.get("role") == "user":
            if set(results) - set(asked):
                return (f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{sorted(set(results) - set(asked))}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message.")
            first = [b.get("type") for b in blocks[:len(results)]]
            if any(kind != "tool_result" for kind in first):
                return f"messages.{i}.content: `tool_result` blocks must come first in the user message"
        if message.get("role") == "assistant":
            uses = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            answered = {b.get("tool_use_id") for b in _blocks(nxt) if b.get("type") == "tool_result"} if nxt else set()
            if uses and nxt is not None and set(uses) - answered:
                return (f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                        f"after: {sorted(set(uses) - answered)}. Each `tool_use` block must have a corresponding "
                        "`tool_result` block in the next message.")
    return ""


def _signature_rule(messages: Sequence[Mapping[str, Any]], issued: Mapping[str, str],
                    turn_thinking: Mapping[str, list[dict[str, Any]]]) -> str:
    for i, message in enumerate(messages):
        for block in _blocks(message):
            if block.get("type") != "thinking":
                continue
            if issued.get(str(block.get("signature"))) != block.get("thinking"):
                return f"messages.{i}.content: Invalid `signature` in `thinking` block (thinking blocks must be " \
                       "passed back unchanged)"
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last != len(messages) - 2:
        return ""
    blocks = _blocks(messages[last])
    expected = next((turn_thinking[b["id"]] for b in blocks if b.get("type") == "tool_use" and b.get("id") in
                     turn_thinking), None)
    if expected is not None:
        sent = [{"thinking": b.get("thinking"), "signature": b.get("signature")} for b in blocks[:len(expected)]]
        if sent != [{"thinking": b["thinking"], "signature": b["signature"]} for b in expected]:
            return (f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{blocks[0].get('type') if blocks else 'nothing'}`. When `thinking` is enabled, a final "
                    "`assistant` message must start with a thinking block (the one it was given, unchanged).")
    return ""


def _breakpoints(body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every block with cache_control, in the order the API builds the prompt: tools, system, messages."""
    for i, tool in enumerate(body.get("tools") or []):
        if "cache_control" in tool:
            yield f"tools.{i}", tool
    system = body.get("system")
    for i, block in enumerate(system if isinstance(system, list) else []):
        if "cache_control" in block:
            yield f"system.{i}", block
    for i, message in enumerate(body["messages"]):
        for j, block in enumerate(_blocks(message)):
            if "cache_control" in block:
                yield f"messages.{i}.content.{j}", block


def _cache_rule(body: Mapping[str, Any]) -> str:
    marks = list(_breakpoints(body))
    if len(marks) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}."
    seen_short = ""
    for where, block in marks:
        if block.get("type") in ("thinking", "redacted_thinking"):
            return f"{where}: cache_control cannot be set on thinking blocks"
        ttl = block["cache_control"].get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            return f"{where}.cache_control.ttl: Input should be '5m' or '1h'"
        if ttl == "5m":
            seen_short = seen_short or where
        elif seen_short:
            return (f"{where}: a ttl='1h' cache_control block must not come after a ttl='5m' one "
                    f"({seen_short}); longer lifetimes come first")
    return ""


# -- HTTP --------------------------------------------------------------------------------------


def _events(body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A message as the stream of server-sent events the API sends for it."""
    usage = dict(body["usage"])
    start = {**body, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(body["content"]):
        kind = block.get("type")
        if kind == "text":
            first, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                      {"type": "signature_delta", "signature": block["signature"]}]
        elif kind == "tool_use":
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            text = json.dumps(block.get("input", {}))
            deltas = [{"type": "input_json_delta", "partial_json": text[:len(text) // 2]},
                      {"type": "input_json_delta", "partial_json": text[len(text) // 2:]}]
        else:
            first, deltas = dict(block), []
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": first}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def _handler_for(server: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Without this, delayed ACKs add ~40 ms to every request/response pair.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._next(Received("POST", self.path, headers, body))
            if reply.drop:
                self.close_connection = True
                self.request.shutdown(socket.SHUT_RDWR)
                return
            kind, payload = server._payload(reply, body)
            lines = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('Error',))[0]}",
                     f"content-type: {kind}", f"content-length: {len(payload)}",
                     f"request-id: req_fake_{next(_ids):04d}"]
            lines += [f"{k}: {v}" for k, v in reply.headers.items()]
            # One write of the whole response: headers and body in a single segment.
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
