"""The GPU queue: priority order, FIFO within a priority, busy-time accounting, closing."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evoagent.errors import SandboxError
from evoagent.scheduling import GpuQueue, Priority, current_priority, gpu_priority


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _grant_order(priorities: list[Priority]) -> list[int]:
    """Queues one call per priority (in list order) behind a held device; returns the order they got it."""
    queue: GpuQueue[str] = GpuQueue({"0": "worker0"})
    held = queue.acquire(Priority.CONFIRM)
    order: list[int] = []

    def call(index: int, priority: Priority) -> None:
        with queue.slot(priority):
            order.append(index)

    threads = []
    for i, priority in enumerate(priorities):
        threads.append(threading.Thread(target=call, args=(i, priority)))
        threads[-1].start()
        assert queue.wait_until(lambda s, n=i + 1: s.waiting_total == n, timeout_s=30)  # arrival order is fixed
    queue.release(held)
    for thread in threads:
        thread.join(30)
    return order


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=7))
def test_waiting_calls_are_served_by_priority_then_arrival(priorities: list[Priority]) -> None:
    expected = sorted(range(len(priorities)), key=lambda i: (priorities[i].rank, i))
    assert _grant_order(priorities) == expected


def test_equal_priorities_are_served_first_come_first_served() -> None:
    assert _grant_order([Priority.EXPLORATORY] * 6) == list(range(6))


def test_a_confirmation_jumps_queued_exploratory_calls() -> None:
    order = _grant_order([Priority.EXPLORATORY, Priority.EXPLORATORY, Priority.AUTHORITATIVE, Priority.CONFIRM])
    assert order == [3, 2, 0, 1]


_step = st.one_of(st.tuples(st.just("advance"), st.floats(0.0, 10.0)),
                  st.tuples(st.just("acquire"), st.sampled_from(list(Priority))),
                  st.tuples(st.just("release"), st.integers(0, 5)))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.lists(_step, max_size=40))
def test_busy_time_is_the_sum_of_held_intervals(devices: int, steps: list[tuple[str, object]]) -> None:
    clock = FakeClock()
    queue: GpuQueue[int] = GpuQueue({str(d): d for d in range(devices)}, clock=clock)
    held, expected_busy, expected_calls = [], dict.fromkeys(queue.devices, 0.0), dict.fromkeys(queue.devices, 0)
    for kind, arg in steps:
        if kind == "advance":
            assert isinstance(arg, float)
            clock.now += arg
            for slot in held:
                expected_busy[slot.device] += arg
        elif kind == "acquire" and len(held) < devices:  # a free device: no blocking
            assert isinstance(arg, Priority)
            held.append(queue.acquire(arg))
            expected_calls[held[-1].device] += 1
        elif kind == "release" and held:
            assert isinstance(arg, int)
            queue.release(held.pop(arg % len(held)))
    usage = {u.device: u for u in queue.usage()}
    wall = clock.now - 100.0
    for device in queue.devices:
        assert usage[device].busy_s == pytest.approx(expected_busy[device], abs=1e-9)
        assert usage[device].calls == expected_calls[device]
        assert usage[device].wall_s == pytest.approx(wall)
        assert usage[device].busy_s <= usage[device].wall_s + 1e-9
    assert set(queue.state().busy) == {s.device for s in held}


def test_busy_fraction_is_busy_over_wall_time() -> None:
    clock = FakeClock()
    queue: GpuQueue[str] = GpuQueue({"0": "w"}, clock=clock)
    assert queue.usage()[0].busy_fraction is None  # no wall time yet
    clock.now += 1.0
    slot = queue.acquire()
    clock.now += 3.0  # a running call counts up to now
    assert queue.usage()[0].busy_fraction == pytest.approx(0.75)
    queue.release(slot)
    clock.now += 4.0
    usage = queue.usage()[0]
    assert (usage.busy_s, usage.wall_s, usage.calls) == (3.0, 8.0, 1)
    assert slot.waited_s == 0.0 and slot.worker == "w"


def test_calls_use_every_free_device() -> None:
    queue: GpuQueue[str] = GpuQueue({"0": "a", "1": "b"})
    first, second = queue.acquire(), queue.acquire()
    assert {first.worker, second.worker} == {"a", "b"}
    assert queue.state().idle == ()


def test_closing_wakes_waiters_with_a_clear_error() -> None:
    queue: GpuQueue[str] = GpuQueue({"0": "w"})
    held = queue.acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            queue.acquire()
        except SandboxError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    assert queue.wait_until(lambda s: s.waiting_total == 1, timeout_s=30)
    queue.close()
    thread.join(30)
    assert len(errors) == 1 and "closed" in str(errors[0])
    assert queue.state().waiting_total == 0
    queue.release(held)  # a running call still ends normally
    with pytest.raises(SandboxError, match="closed"):
        queue.acquire()


def test_a_slot_released_twice_is_refused() -> None:
    queue: GpuQueue[str] = GpuQueue({"0": "w"})
    slot = queue.acquire()
    queue.release(slot)
    with pytest.raises(ValueError, match="not held"):
        queue.release(slot)


def test_a_queue_without_devices_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one device"):
        GpuQueue({})


def test_priority_comes_from_the_context_and_each_thread_starts_exploratory() -> None:
    assert current_priority() is Priority.EXPLORATORY
    seen: list[Priority] = []
    with gpu_priority("confirm") as chosen:
        assert chosen is Priority.CONFIRM and current_priority() is Priority.CONFIRM
        thread = threading.Thread(target=lambda: seen.append(current_priority()))
        thread.start()
        thread.join(30)
        queue: GpuQueue[str] = GpuQueue({"0": "w"})
        assert queue.acquire().priority is Priority.CONFIRM
    assert seen == [Priority.EXPLORATORY]
    assert current_priority() is Priority.EXPLORATORY


def test_an_unknown_priority_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be one of confirm, authoritative, exploratory"):
        with gpu_priority("urgent"):
            pass


def test_a_stale_slot_cannot_release_the_next_call_on_its_device() -> None:
    queue: GpuQueue[str] = GpuQueue({"0": "w"})
    first = queue.acquire()
    queue.release(first)
    second = queue.acquire()
    with pytest.raises(ValueError, match="not held"):
        queue.release(first)
    assert queue.state().busy == ("0",)
    queue.release(second)


def test_a_device_added_later_serves_a_waiting_call_and_counts_its_wall_time_from_then() -> None:
    clock = FakeClock()
    queue: GpuQueue[str] = GpuQueue({"0": "a"}, clock=clock)
    held = queue.acquire()
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(queue.acquire().worker))
    waiter.start()
    assert queue.wait_until(lambda s: s.waiting_total == 1, timeout_s=30)
    clock.now += 10.0
    queue.add("1", "b")  # a GPU joined the cluster
    waiter.join(30)
    assert got == ["b"] and queue.devices == ("0", "1")
    clock.now += 2.0
    assert {u.device: u.wall_s for u in queue.usage()} == {"0": 12.0, "1": 2.0}
    queue.release(held)
    with pytest.raises(ValueError, match="already has device '1'"):
        queue.add("1", "c")
