"""The Anthropic backend: the real `anthropic` client against a local fake Messages API server."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator

import pytest
from fake_messages_server import FakeMessagesServer

from evoagent.errors import ConfigError, LLMError
from evoagent.llm.anthropic import DEFAULT_MODEL, Anthropic, Prices, prices_for

KEY = "sk-ant-test-0123456789-SECRET"
SYSTEM = "You improve kernels."
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
TOOLS = [{"name": "read_file", "description": "read", "input_schema": {"type": "object", "properties": {}}},
         {"name": "submit", "description": "submit", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessagesServer]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeMessagesServer() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake


def backend(sleeps: list[float] | None = None, **kwargs: object) -> Anthropic:
    return Anthropic(sleep=sleeps.append if sleeps is not None else time.sleep, **kwargs)  # type: ignore[arg-type]


def call(llm: Anthropic, **kwargs: object) -> object:
    return llm.complete(system=SYSTEM, messages=MESSAGES, tools=TOOLS, **kwargs)  # type: ignore[arg-type]


def test_a_reply_with_text_and_tool_use_becomes_blocks_and_usage(server: FakeMessagesServer) -> None:
    server.tool_use("read_file", {"path": "kernel.py"}, text="Let me look.",
                    usage={"input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": 300,
                           "cache_read_input_tokens": 5000})
    response = call(backend())
    assert response.stop_reason == "tool_use" and response.text == "Let me look."  # type: ignore[attr-defined]
    use = response.tool_uses[0]  # type: ignore[attr-defined]
    assert use["name"] == "read_file" and use["input"] == {"path": "kernel.py"} and use["id"].startswith("toolu_")
    usage = response.usage  # type: ignore[attr-defined]
    assert (usage.input_tokens, usage.output_tokens, usage.cache_write_tokens, usage.cache_read_tokens) == (1000, 200, 300, 5000)
    # claude-sonnet-4-6: $3 in, $15 out, $3.75 cache write, $0.30 cache read per million tokens
    assert usage.cost_usd == pytest.approx((1000 * 3 + 200 * 15 + 300 * 3.75 + 5000 * 0.30) / 1e6)
    assert server.requests[0].path == "/v1/messages"


def test_the_key_goes_only_into_the_request_header(server: FakeMessagesServer) -> None:
    server.text("ok")
    llm = backend()
    call(llm)
    headers = server.requests[0].headers
    assert KEY in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert KEY not in str(server.requests[0].body)
    for text in (repr(llm), str(llm.spec()), str(vars(llm)) if hasattr(llm, "__dict__") else ""):
        assert KEY not in text
    assert KEY.encode() not in pickle.dumps(llm)


def test_a_pickled_backend_is_rebuilt_from_the_environment(server: FakeMessagesServer) -> None:
    server.text("from the copy")
    copy = pickle.loads(pickle.dumps(backend(model="claude-haiku-4-5", max_tokens=123)))
    assert copy.model == "claude-haiku-4-5" and copy.max_tokens == 123
    assert call(copy).text == "from the copy"  # type: ignore[attr-defined]


def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        Anthropic()


def test_rate_limit_is_retried_after_the_time_the_server_asks(server: FakeMessagesServer) -> None:
    server.error(429, "rate_limit_error", retry_after="7").text("after the wait")
    sleeps: list[float] = []
    assert call(backend(sleeps)).text == "after the wait"  # type: ignore[attr-defined]
    assert sleeps == [7.0] and len(server.requests) == 2


def test_retry_after_ms_and_a_real_wait_are_respected(server: FakeMessagesServer) -> None:
    server.error(429, "rate_limit_error", headers={"retry-after-ms": "200"}).text("ok")
    started = time.perf_counter()
    call(backend())
    assert time.perf_counter() - started >= 0.2


def test_overloaded_529_backs_off_exponentially_with_jitter(server: FakeMessagesServer) -> None:
    server.error(529, "overloaded_error", "Overloaded").error(529, "overloaded_error").error(500, "api_error").text("ok")
    sleeps: list[float] = []
    assert call(backend(sleeps, backoff_s=1.0)).text == "ok"  # type: ignore[attr-defined]
    assert len(sleeps) == 3 and len(server.requests) == 4
    for attempt, slept in enumerate(sleeps):
        assert 0.5 * 2 ** attempt <= slept <= 2 ** attempt


def test_backoff_is_capped(server: FakeMessagesServer) -> None:
    for _ in range(4):
        server.error(503, "api_error")
    server.text("ok")
    sleeps: list[float] = []
    call(backend(sleeps, backoff_s=1.0, max_backoff_s=2.0))
    assert max(sleeps) <= 2.0 and sleeps[-1] >= 1.0


def test_a_dropped_connection_is_retried(server: FakeMessagesServer) -> None:
    server.drop().text("ok")
    sleeps: list[float] = []
    assert call(backend(sleeps)).text == "ok"  # type: ignore[attr-defined]
    assert len(sleeps) == 1


def test_retries_run_out_with_an_llm_error_naming_the_failure(server: FakeMessagesServer) -> None:
    for _ in range(3):
        server.error(529, "overloaded_error", "Overloaded")
    sleeps: list[float] = []
    with pytest.raises(LLMError, match=r"failed after 3 attempts: HTTP 529 overloaded_error: Overloaded"):
        call(backend(sleeps, max_retries=2))
    assert len(sleeps) == 2 and server.pending == 0


def test_a_bad_request_is_not_retried(server: FakeMessagesServer) -> None:
    server.error(400, "invalid_request_error", "messages: roles must alternate").text("never sent")
    sleeps: list[float] = []
    with pytest.raises(LLMError, match="HTTP 400 invalid_request_error: messages: roles must alternate"):
        call(backend(sleeps))
    assert sleeps == [] and len(server.requests) == 1


def test_the_server_can_forbid_a_retry(server: FakeMessagesServer) -> None:
    server.error(500, "api_error", headers={"x-should-retry": "false"}).text("never sent")
    with pytest.raises(LLMError):
        call(backend([]))
    assert len(server.requests) == 1


def test_stable_prefix_and_newest_message_carry_cache_breakpoints(server: FakeMessagesServer) -> None:
    server.text("ok").text("ok")
    conversation = [*MESSAGES, {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "user", "content": [{"type": "text", "text": "go on"}]}]
    backend().complete(system=SYSTEM, messages=conversation, tools=TOOLS)
    body = server.requests[0].body
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert [("cache_control" in t) for t in body["tools"]] == [False, True]
    marks = [("cache_control" in b) for m in body["messages"] for b in m["content"]]
    assert marks == [False, False, True]
    assert "cache_control" not in conversation[-1]["content"][0]  # the caller's messages are untouched
    backend(cache=False).complete(system=SYSTEM, messages=conversation, tools=TOOLS)
    assert "cache_control" not in str(server.requests[1].body)


def test_max_tokens_stop_is_returned_to_the_caller(server: FakeMessagesServer) -> None:
    server.message([{"type": "text", "text": "The kernel needs a long expl"}], stop_reason="max_tokens")
    response = call(backend(max_tokens=500), max_tokens=8192)
    assert response.stop_reason == "max_tokens"  # type: ignore[attr-defined]
    assert server.requests[0].body["max_tokens"] == 500  # the backend's cap wins


def test_extended_thinking_adds_its_budget_and_keeps_signed_blocks(server: FakeMessagesServer) -> None:
    server.message([{"type": "thinking", "thinking": "consider tiles", "signature": "sig=="},
                    {"type": "text", "text": "done"}])
    response = call(backend(thinking_budget=2048), max_tokens=1000)
    body = server.requests[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and body["max_tokens"] == 3048
    assert response.content[0] == {"type": "thinking", "thinking": "consider tiles", "signature": "sig=="}  # type: ignore[attr-defined]


def test_adaptive_thinking_is_passed_through(server: FakeMessagesServer) -> None:
    server.text("ok")
    call(backend(thinking_budget="adaptive"))
    assert server.requests[0].body["thinking"] == {"type": "adaptive"}


def test_prices_come_from_the_table_or_must_be_given(server: FakeMessagesServer) -> None:
    assert DEFAULT_MODEL == "claude-sonnet-4-6" and prices_for(DEFAULT_MODEL) is not None
    assert prices_for("claude-sonnet-4-5-20250929") == prices_for("claude-sonnet-4-5")
    with pytest.raises(ConfigError, match="no default prices for model 'claude-future-9'"):
        Anthropic(model="claude-future-9")
    custom = Prices(input_per_mtok=1, output_per_mtok=2, cache_write_per_mtok=0, cache_read_per_mtok=0)
    server.text("ok", usage={"input_tokens": 1_000_000, "output_tokens": 1_000_000})
    assert call(Anthropic(model="claude-future-9", prices=custom)).usage.cost_usd == pytest.approx(3.0)  # type: ignore[attr-defined]
    assert server.requests[0].body["model"] == "claude-future-9"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"thinking_budget": 100}, "thinking_budget"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_retries": -1}, "max_retries"),
    ({"timeout_s": -5}, "timeout_s"),
])
def test_bad_settings_are_rejected(server: FakeMessagesServer, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Anthropic(**kwargs)  # type: ignore[arg-type]


def test_base_url_argument_overrides_the_environment(server: FakeMessagesServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    server.text("reached")
    assert call(Anthropic(base_url=server.url)).text == "reached"  # type: ignore[attr-defined]


def test_closing_the_backend_releases_its_connections(server: FakeMessagesServer) -> None:
    server.text("ok")
    with Anthropic() as llm:
        call(llm)
    assert llm._client.is_closed
    with pytest.raises(LLMError, match="closed"):
        call(llm)
    assert len(server.requests) == 1
