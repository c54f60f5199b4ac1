"""An instant local Messages API server for benchmarks: every trial is one edit and a submit.

    python benchmarks/instant_messages_server.py   # prints its URL; Ctrl-C stops it

Real HTTP on 127.0.0.1, answered at once from the request itself (no script queue), so a run of
any length can be driven through the real `anthropic` client. For a request that opens a variation
step it answers `write_file` of the entry file with `N = <next number>` (a new version whose score
grows); after that tool's result, `submit`. Usage reports the request's size as input tokens (4
characters a token); nothing is cached.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from pathlib import Path

# The HTTP side is the test suite's fake Messages server (one place for that plumbing); this one
# answers from the request instead of a script, and keeps no request bodies (a long run sends many).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from fake_messages_server import FakeMessagesServer, Received, Reply  # noqa: E402


class InstantMessagesServer(FakeMessagesServer):
    """Answers POST /v1/messages at once: write_file with a new constant, then submit."""

    def __init__(self, *, entry: str = "main.py", on_step: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.entry = entry
        self.served = 0
        self.steps = 0  # requests that opened a variation step (one a trial)
        self.on_step = on_step  # called with the step's number when a step opens, before it is answered
        self._numbers = itertools.count(1)

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.served += 1
            n = self.served
        body = received.body
        last = body["messages"][-1]["content"]
        blocks = last if isinstance(last, list) else [{"type": "text", "text": last}]
        opening = any(b.get("type") == "text" and b.get("text", "").startswith("## Variation step") for b in blocks)
        if opening:
            with self._lock:
                self.steps += 1
                step = self.steps
            if self.on_step is not None:
                self.on_step(step)
        if opening or not any(b.get("type") == "tool_result" for b in blocks):
            call = {"name": "write_file", "input": {"path": self.entry, "content": f"N = {next(self._numbers)}\n"}}
        else:
            call = {"name": "submit", "input": {"hypothesis": "a larger constant"}}
        size = len(str(body))
        return Reply(200, {"id": f"msg_instant_{n}", "type": "message", "role": "assistant",
                           "model": body.get("model", ""), "stop_reason": "tool_use", "stop_sequence": None,
                           "content": [{"type": "tool_use", "id": f"toolu_instant_{n}", **call}],
                           "usage": {"input_tokens": size // 4, "output_tokens": 30,
                                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})


if __name__ == "__main__":
    with InstantMessagesServer() as instant:
        print(instant.url, flush=True)
        threading.Event().wait()
