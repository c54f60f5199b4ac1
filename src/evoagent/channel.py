"""The message channel of a driven sandbox call: the trusted process asks, the sandboxed child answers.

A driven call (`Sandbox.call(..., driver=Driver(fn, args))`) runs the child function as usual and, at
the same time, the trusted `driver` in the calling process. They talk over two named pipes in a
folder the trusted side made for that one call; messages are framed values of the sandbox's
restricted codec (plain values and numeric numpy arrays, never pickle). The driver owns the clock:
it times each `Session.request` itself, so whatever the child does to its own timers, reports or
result pipe changes nothing the driver measures. A timed stage of any `Evaluator` can use it:

    def child(entry):                    # runs in the sandbox, next to the candidate's code
        channel = Channel.from_environment()
        while (request := channel.receive()) is not None:
            channel.send(compute(request))

    def measure(session, inputs):        # runs in the trusted process; never imports the candidate
        started = time.perf_counter()
        output = session.request({"inputs": inputs}, timeout_s=30)
        return time.perf_counter() - started, output

    result = sandbox.call(child, "kernel.py", files=..., driver=Driver(measure, (inputs,)))
    result.value                         # what `measure` returned
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._codec import CodecError, decode_value, encode_value
from .errors import SandboxError

__all__ = ["CHANNEL_ENV", "Channel", "ChannelClosed", "Driver", "Session"]

CHANNEL_ENV = "EVOAGENT_CHANNEL"
_TO_CHILD, _FROM_CHILD = "to_child", "from_child"
_FRAME = struct.Struct("<Q")
_CHUNK = 1 << 16


class ChannelClosed(SandboxError):
    """The other end of a driven call's channel is gone (the child ended, or the driver gave up)."""


@dataclass(frozen=True, slots=True)
class Driver:
    """The trusted half of a driven call: `fn(session, *args)` runs in the calling process.

    `fn` must be a module-level function (an executor may send it to another machine by reference).
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = field(default=())

    def __post_init__(self) -> None:
        if not callable(self.fn) or "<" in getattr(self.fn, "__qualname__", "<"):
            raise TypeError(f"Driver fn must be a module-level function (got {self.fn!r})")
        if not isinstance(self.args, tuple):
            raise TypeError(f"Driver args must be a tuple (got {type(self.args).__name__})")


def make_channel(folder: Path) -> tuple[int, int]:
    """Creates the two pipes in `folder` and opens the trusted ends: (write fd to the child, read fd from it).

    Both ends are opened read-write and non-blocking, so neither open waits for the child and a dead
    child shows as silence (the session's deadline), never as a blocked trusted process.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fds = []
    for name in (_TO_CHILD, _FROM_CHILD):
        path = folder / name
        os.mkfifo(path, 0o666)
        os.chmod(path, 0o666)  # the child may run as another uid
        fds.append(os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
    return fds[0], fds[1]


class Session:
    """The trusted side of a channel: `request(value)` sends one message and waits for the reply."""

    def __init__(self, to_child: int, from_child: int, *, child_done: Callable[[], bool],
                 max_reply_bytes: int) -> None:
        self._out, self._in = to_child, from_child
        self._child_done = child_done
        self._max_reply = max_reply_bytes
        self.requests = 0

    def request(self, value: Any, *, timeout_s: float) -> Any:
        """Sends `value` and returns the child's reply; raises ChannelClosed if it does not come in time."""
        deadline = time.monotonic() + timeout_s
        self.requests += 1
        self._write(bytes(_frame(value)), deadline)
        size = _FRAME.unpack(self._read(_FRAME.size, deadline))[0]
        if size > self._max_reply:
            raise ChannelClosed(f"the child's reply to request {self.requests} is {size} bytes, "
                                f"over the limit of {self._max_reply}")
        try:
            return decode_value(self._read(size, deadline))
        except CodecError as exc:
            raise ChannelClosed(f"the child's reply to request {self.requests} is not a plain value ({exc})") from None

    def stop(self) -> None:
        """Tells the child there are no more requests (it receives None); never blocks."""
        try:
            os.write(self._out, bytes(_frame(None)))
        except OSError:
            pass

    def close(self) -> None:
        """Closes the trusted ends (once): the child's next read sees end-of-file, its next write EPIPE."""
        for fd in (self._out, self._in):
            if fd >= 0:
                os.close(fd)
        self._out = self._in = -1

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._out, select.POLLOUT, deadline, "take request")
            try:
                sent = os.write(self._out, view[:_CHUNK])
            except BlockingIOError:
                continue
            view = view[sent:]

    def _read(self, size: int, deadline: float) -> bytes:
        parts, left = [], size
        while left:
            self._wait(self._in, select.POLLIN, deadline, "answer request")
            try:
                chunk = os.read(self._in, min(left, 1 << 20))
            except BlockingIOError:
                continue
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _wait(self, fd: int, event: int, deadline: float, doing: str) -> None:
        poller = select.poll()
        poller.register(fd, event)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelClosed(f"the child did not {doing} {self.requests} in time")
            if poller.poll(min(left, 0.05) * 1000):
                return
            if self._child_done():
                raise ChannelClosed(f"the child ended before it could {doing} {self.requests}")


class Channel:
    """The child's side: `receive()` the next request (None: no more), `send(value)` the reply."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        folder = Path(folder)
        self._in = os.open(folder / _TO_CHILD, os.O_RDONLY | os.O_CLOEXEC)
        self._out = os.open(folder / _FROM_CHILD, os.O_WRONLY | os.O_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Channel:
        folder = os.environ.get(CHANNEL_ENV)
        if not folder:
            raise SandboxError(f"no driven-call channel: ${CHANNEL_ENV} is not set (was the call made with a driver?)")
        return cls(folder)

    def receive(self) -> Any:
        size = _FRAME.unpack(self._exact(_FRAME.size))[0]
        return decode_value(self._exact(size))

    def send(self, value: Any) -> None:
        data = memoryview(bytes(_frame(value)))
        while data:
            data = data[os.write(self._out, data):]

    def _exact(self, size: int) -> bytes:
        parts, left = [], size
        while left:
            chunk = os.read(self._in, min(left, 1 << 20))
            if not chunk:
                raise ChannelClosed("the trusted side closed the channel")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)


def _frame(value: Any) -> bytearray:
    payload = encode_value(value, what="a channel message")
    return bytearray(_FRAME.pack(len(payload))) + payload
