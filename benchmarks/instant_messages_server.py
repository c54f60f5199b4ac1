"""An instant local Messages API server for benchmarks: every trial is one edit and a submit.

    python benchmarks/instant_messages_server.py   # prints its URL; Ctrl-C stops it

Real HTTP on 127.0.0.1, answered at once from the request itself (no script queue), so a run of
any length can be driven through the real `anthropic` client. For a request that opens a variation
step it answers `write_file` of the entry file with `N = <next number>` (a new version whose score
grows); after that tool's result, `submit`. Usage reports the request's size as input tokens (4
characters a token); nothing is cached. Responses are written in one piece with TCP_NODELAY (else
delayed ACKs add ~40 ms a request).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class InstantMessagesServer:
    """Answers POST /v1/messages at once: write_file with a new constant, then submit."""

    def __init__(self, *, entry: str = "main.py") -> None:
        self.entry = entry
        self.requests = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> InstantMessagesServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def answer(self, body: dict[str, Any], size: int) -> dict[str, Any]:
        """The assistant message for one request body (`size`: its length in bytes)."""
        with self._lock:
            self.requests += 1
            n = self.requests
        last = body["messages"][-1]["content"]
        blocks = last if isinstance(last, list) else [{"type": "text", "text": last}]
        opening = any(b.get("type") == "text" and b.get("text", "").startswith("## Variation step") for b in blocks)
        if opening or not any(b.get("type") == "tool_result" for b in blocks):
            call = {"name": "write_file", "input": {"path": self.entry, "content": f"N = {next(self._numbers)}\n"}}
        else:
            call = {"name": "submit", "input": {"hypothesis": "a larger constant"}}
        return {"id": f"msg_instant_{n}", "type": "message", "role": "assistant", "model": body.get("model", ""),
                "content": [{"type": "tool_use", "id": f"toolu_instant_{n}", **call}], "stop_reason": "tool_use",
                "stop_sequence": None, "usage": {"input_tokens": size // 4, "output_tokens": 30,
                                                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def _handler_for(server: InstantMessagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = json.dumps(server.answer(json.loads(raw), len(raw))).encode()
            head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
                    f"request-id: req_instant_{server.requests}\r\n\r\n")
            self.wfile.write(head.encode() + payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


if __name__ == "__main__":
    with InstantMessagesServer() as instant:
        print(instant.url, flush=True)
        threading.Event().wait()
