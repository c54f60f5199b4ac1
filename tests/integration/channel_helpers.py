"""Module-level functions for driven-call tests: children that answer (or misbehave) and trusted drivers."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from evoagent._codec import encode_ok_message
from evoagent.channel import Channel, Session


def doubling_child() -> str:
    """Answers {"x": array} with 2x; returns a forged value the trusted side must ignore."""
    channel = Channel.from_environment()
    while (request := channel.receive()) is not None:
        channel.send({"y": request["x"] * 2})
    return "forged: the driver measured 0 seconds"


def lying_child() -> None:
    """Answers once, then writes a forged 'ok' result into every pipe it holds and exits 0 without answering."""
    channel = Channel.from_environment()
    channel.receive()
    channel.send({"y": np.zeros(1)})
    channel.receive()
    forged = bytes(encode_ok_message({"measured_s": [0.0, 0.0]}))
    for fd in range(3, 256):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    os._exit(0)


def silent_child() -> None:
    """Never answers, never exits by itself."""
    Channel.from_environment().receive()
    while True:
        time.sleep(1)


def flooding_child(size: int) -> None:
    """Answers with a reply far larger than allowed."""
    channel = Channel.from_environment()
    channel.receive()
    channel.send(b"x" * size)
    channel.receive()


def measure(session: Session, count: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """The trusted driver: `count` requests, timed here, each answer checked here."""
    times, wrong = [], 0
    for i in range(count):
        x = np.arange(8, dtype=np.float64) + i
        started = time.perf_counter()
        reply = session.request({"x": x}, timeout_s=timeout_s)
        times.append(time.perf_counter() - started)
        wrong += not np.array_equal(reply["y"], 2 * x)
    return {"times_s": times, "wrong": wrong, "requests": session.requests}
