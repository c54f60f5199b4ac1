"""Driven sandbox calls: the trusted driver owns the clock and the checks; the child only answers."""

from __future__ import annotations

import channel_helpers as helpers
import pytest

from evoagent.channel import Driver
from evoagent.result import Status
from evoagent.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.xdist_group("driven_calls")


@pytest.fixture(scope="module")
def sb():
    with Sandbox(SandboxConfig(timeout_s=60, max_result_bytes=1 << 20)) as sandbox:
        yield sandbox


def test_the_driver_times_and_checks_every_answer_and_its_value_is_the_result(sb: Sandbox) -> None:
    out = sb.call(helpers.doubling_child, driver=Driver(helpers.measure, (5,)))
    assert out.status is Status.OK, out.reason
    assert out.value["wrong"] == 0 and out.value["requests"] == 5 and len(out.value["times_s"]) == 5
    assert all(t > 0 for t in out.value["times_s"])  # the child's own return value never reaches the caller


def test_a_child_that_forges_its_result_and_exits_is_a_crash_with_no_value(sb: Sandbox) -> None:
    out = sb.call(helpers.lying_child, driver=Driver(helpers.measure, (2,)))
    assert out.status is Status.CRASH and out.value is None
    assert "stopped answering its driver" in out.reason or "result" in out.reason


def test_a_child_that_never_answers_ends_at_the_call_limit(sb: Sandbox) -> None:
    out = sb.call(helpers.silent_child, timeout_s=3, driver=Driver(helpers.measure, (1, 600.0)))
    assert out.status is Status.TIMEOUT and out.value is None


def test_a_reply_over_the_size_limit_is_refused(sb: Sandbox) -> None:
    out = sb.call(helpers.flooding_child, 2 << 20, driver=Driver(helpers.measure, (1,)))
    assert out.status is Status.CRASH and "over the limit" in out.reason


def test_a_driver_must_be_a_module_level_function() -> None:
    with pytest.raises(TypeError, match="module-level function"):
        Driver(lambda session: None)
