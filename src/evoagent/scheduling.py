"""GPU scheduling: a priority-ordered queue of GPU slots with busy-time accounting per device.

Executors (the local `Sandbox`, the Ray driver) hand out their GPU workers through a `GpuQueue`:
one slot per device, a call holds its device's slot while it runs. Waiting calls are served by
priority, then first come first served:

    CONFIRM        re-measurements of a would-be commit (`Remeasure`, stored as `confirmation`)
    AUTHORITATIVE  the engine's own evaluation of a submitted version (and of the seeds)
    EXPLORATORY    an agent's tool calls during its step (the default)

so a trial that is about to end never waits behind drafts. The priority of a call is read from a
context variable that the engine sets around its evaluations (`with gpu_priority(Priority.CONFIRM):`),
so neither `Evaluator.evaluate` nor `Sandbox.call` needs an extra argument. Engine slots are
threads, and a new thread starts at the default (EXPLORATORY).

The queue also keeps, per device, the seconds a slot was held ("busy") over the seconds since the
queue started ("wall"): the busy fraction `evoagent status` reports.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import SandboxError

__all__ = ["DeviceUsage", "GpuQueue", "GpuSlot", "Priority", "QueueState", "current_priority", "gpu_priority"]

T = TypeVar("T")


class Priority(str, enum.Enum):
    """How urgently a GPU call should run; earlier members are served first."""

    CONFIRM = "confirm"
    AUTHORITATIVE = "authoritative"
    EXPLORATORY = "exploratory"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _RANKS[self]


_RANKS = {p: i for i, p in enumerate(Priority)}
_PRIORITY: contextvars.ContextVar[Priority] = contextvars.ContextVar("evoagent_gpu_priority",
                                                                     default=Priority.EXPLORATORY)


def current_priority() -> Priority:
    """The priority GPU calls made now (in this thread or task) queue with."""
    return _PRIORITY.get()


@contextlib.contextmanager
def gpu_priority(priority: Priority | str) -> Iterator[Priority]:
    """Within the block, GPU calls of this thread queue with `priority`."""
    try:
        chosen = Priority(priority)
    except ValueError:
        names = ", ".join(p.value for p in Priority)
        raise ValueError(f"gpu priority must be one of {names} (got {priority!r})") from None
    token = _PRIORITY.set(chosen)
    try:
        yield chosen
    finally:
        _PRIORITY.reset(token)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceUsage:
    """How much one device was used since its queue started.

    Attributes:
        device: the device id (as the executor names it, e.g. "0").
        busy_s: seconds a call held the device (a call still running counts up to now).
        wall_s: seconds since the queue started.
        calls: calls that acquired the device (running ones included).
    """

    device: str
    busy_s: float
    wall_s: float
    calls: int

    @property
    def busy_fraction(self) -> float | None:
        """busy_s / wall_s (None before any wall time passed)."""
        return self.busy_s / self.wall_s if self.wall_s > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    """What a queue holds at one moment: calls waiting per priority, devices busy and idle."""

    waiting: Mapping[Priority, int]
    busy: tuple[str, ...]
    idle: tuple[str, ...]
    closed: bool

    @property
    def waiting_total(self) -> int:
        return sum(self.waiting.values())


@dataclass(frozen=True, slots=True)
class GpuSlot(Generic[T]):
    """One device's slot, held by one call from `acquire` to `release`."""

    device: str
    worker: T  # what the executor runs the call on (a fork server, an actor)
    priority: Priority
    acquired_at: float  # on the queue's clock
    waited_s: float


class GpuQueue(Generic[T]):
    """One slot per device; `acquire` blocks until a device is free and no earlier or more urgent call waits.

    Thread-safe. `workers` maps each device id to what runs its calls. `clock` (monotonic seconds)
    is replaceable for tests.
    """

    def __init__(self, workers: Mapping[str, T], *, clock: Callable[[], float] = time.monotonic) -> None:
        if not workers:
            raise ValueError("GpuQueue needs at least one device, e.g. GpuQueue({'0': worker})")
        self._workers = dict(workers)
        self._clock = clock
        self._cond = threading.Condition()
        self._idle: deque[str] = deque(self._workers)
        self._waiting: list[tuple[int, int]] = []  # heap of (rank, arrival number)
        self._waiting_by: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self._arrivals = itertools.count()
        self._closed = False
        self._since = dict.fromkeys(self._workers, clock())  # each device's wall time counts from here
        self._busy_s = dict.fromkeys(self._workers, 0.0)
        self._held: dict[str, GpuSlot[T]] = {}  # device -> the slot of the call running on it
        self._calls = dict.fromkeys(self._workers, 0)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._workers)

    def add(self, device: str, worker: T) -> None:
        """A new device (a GPU that joined a cluster): waiting calls may take it at once; its wall time starts now."""
        with self._cond:
            if device in self._workers:
                raise ValueError(f"GPU queue already has device {device!r}; add each device once")
            self._workers[device] = worker
            self._since[device], self._busy_s[device], self._calls[device] = self._clock(), 0.0, 0
            self._idle.append(device)
            self._cond.notify_all()

    def acquire(self, priority: Priority | None = None) -> GpuSlot[T]:
        """Waits for a device (priority order, FIFO within a priority); `priority` defaults to `current_priority()`.

        Raises SandboxError if the queue is closed before or while waiting.
        """
        chosen = current_priority() if priority is None else Priority(priority)
        with self._cond:
            queued_at = self._clock()
            ticket = (chosen.rank, next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            self._waiting_by[chosen] += 1
            self._cond.notify_all()  # a change of state for `wait_until`
            granted = False
            try:
                self._cond.wait_for(lambda: self._closed or (bool(self._idle) and self._waiting[0] == ticket))
                if self._closed:
                    raise SandboxError("the GPU queue is closed (its executor was closed); create a new executor")
                heapq.heappop(self._waiting)
                device, now = self._idle.popleft(), self._clock()
                slot = GpuSlot(device, self._workers[device], chosen, now, now - queued_at)
                self._held[device] = slot
                self._calls[device] += 1
                granted = True
            finally:
                self._waiting_by[chosen] -= 1
                if not granted:  # closed or interrupted: leave the line, so the calls behind are not stuck
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                self._cond.notify_all()  # the next waiter may take another idle device
            return slot

    def release(self, slot: GpuSlot[T]) -> None:
        """Ends the call holding `slot`: its busy time is counted and the device goes to the next waiter."""
        with self._cond:
            if self._held.get(slot.device) is not slot:
                raise ValueError(f"GPU slot of device {slot.device!r} is not held; release each slot once")
            del self._held[slot.device]
            self._busy_s[slot.device] += self._clock() - slot.acquired_at
            self._idle.append(slot.device)
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self, priority: Priority | None = None) -> Iterator[GpuSlot[T]]:
        """`acquire` ... `release` as a block."""
        held = self.acquire(priority)
        try:
            yield held
        finally:
            self.release(held)

    def close(self) -> None:
        """Wakes every waiter with SandboxError; calls already running keep their slots until released."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def usage(self) -> tuple[DeviceUsage, ...]:
        """Busy and wall seconds of each device, up to now."""
        with self._cond:
            now = self._clock()
            running = {d: now - slot.acquired_at for d, slot in self._held.items()}
            return tuple(DeviceUsage(device=d, busy_s=self._busy_s[d] + running.get(d, 0.0),
                                     wall_s=now - self._since[d], calls=self._calls[d]) for d in self._workers)

    def state(self) -> QueueState:
        with self._cond:
            return self._state()

    def _state(self) -> QueueState:
        return QueueState(waiting=dict(self._waiting_by), busy=tuple(d for d in self._workers if d in self._held),
                          idle=tuple(self._idle), closed=self._closed)

    def wait_until(self, predicate: Callable[[QueueState], bool], timeout_s: float | None = None) -> bool:
        """Blocks until `predicate(state)` holds (re-checked at every change of the queue); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._state()), timeout_s)
