"""A local fake of the Anthropic Messages API (real HTTP on 127.0.0.1), scripted per test."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

_ids = itertools.count(1)
_Self = TypeVar("_Self", bound="FakeMessagesServer")


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


class FakeMessagesServer:
    """Serves queued replies to POST /v1/messages, in order, and records every request.

    >>> with FakeMessagesServer() as server:
    ...     server.error(429, "rate_limit_error", retry_after="0").text("hello")
    ...     # point the client at server.url
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

    # -- scripting ------------------------------------------------------------------------------

    def reply(self, reply: Reply) -> FakeMessagesServer:
        with self._lock:
            self._queue.append(reply)
        return self

    def message(self, content: Sequence[Mapping[str, Any]], *, stop_reason: str = "end_turn",
                usage: Mapping[str, int] | None = None, model: str = "claude-sonnet-4-6") -> FakeMessagesServer:
        """Queues a successful Messages API response with these content blocks."""
        body = {
            "id": f"msg_fake_{next(_ids):04d}", "type": "message", "role": "assistant", "model": model,
            "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, **(usage or {})},
        }
        return self.reply(Reply(200, body))

    def text(self, text: str, **kwargs: Any) -> FakeMessagesServer:
        return self.message([{"type": "text", "text": text}], **kwargs)

    def tool_use(self, name: str, tool_input: Mapping[str, Any], *, text: str = "", **kwargs: Any) -> FakeMessagesServer:
        return self.tool_uses([(name, tool_input)], text=text, **kwargs)

    def tool_uses(self, calls: Sequence[tuple[str, Mapping[str, Any]]], *, text: str = "",
                  **kwargs: Any) -> FakeMessagesServer:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
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
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return self.reply(Reply(status, body, extra))

    def drop(self) -> FakeMessagesServer:
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
        body = {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": "fake server: no scripted reply left"}}
        return Reply(400, body, {"x-should-retry": "false"})


def _handler_for(server: FakeMessagesServer) -> type[BaseHTTPRequestHandler]:
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
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode()
            lines = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('Error',))[0]}",
                     "content-type: application/json", f"content-length: {len(payload)}",
                     f"request-id: req_fake_{next(_ids):04d}"]
            lines += [f"{k}: {v}" for k, v in reply.headers.items()]
            # One write of the whole response: headers and body in a single segment.
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
