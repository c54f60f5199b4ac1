"""The Anthropic backend: the real `anthropic` client against a local fake Messages API server."""

from __future__ import annotations

import pickle
import time
import typing
from collections.abc import Iterator

import pytest
from fake_messages_server import FakeMessagesServer

from evoagent.errors import ConfigError, LLMError, PromptTooLong
from evoagent.llm.anthropic import DEFAULT_MODEL, Anthropic, Prices, needs_streaming, prices_for
from evoagent.llm.models import model_info

KEY = "sk-ant-test-0123456789-SECRET"


def anthropic_version() -> str:
    import anthropic

    return str(anthropic.__version__)
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
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert [("cache_control" in t) for t in body["tools"]] == [False, True]
    marks = [b.get("cache_control") for m in body["messages"] for b in m["content"]]
    assert marks == [None, None, {"type": "ephemeral", "ttl": "1h"}]  # the rolling breakpoint outlives a step boundary
    assert "cache_control" not in conversation[-1]["content"][0]  # the caller's messages are untouched
    backend(cache=False).complete(system=SYSTEM, messages=conversation, tools=TOOLS)
    assert "cache_control" not in str(server.requests[1].body)


def test_max_tokens_stop_is_returned_to_the_caller(server: FakeMessagesServer) -> None:
    server.message([{"type": "text", "text": "The kernel needs a long expl"}], stop_reason="max_tokens")
    server.text("ok")
    llm = backend(max_tokens=500, thinking="off")
    response = call(llm)
    assert response.stop_reason == "max_tokens"  # type: ignore[attr-defined]
    assert server.requests[0].body["max_tokens"] == 500  # the backend's setting when the caller names none
    call(llm, max_tokens=8192)
    assert server.requests[1].body["max_tokens"] == 8192  # never cut to the backend's setting


def test_extended_thinking_adds_its_budget_and_keeps_signed_blocks(server: FakeMessagesServer) -> None:
    server.message([{"type": "thinking", "thinking": "consider tiles", "signature": "sig=="},
                    {"type": "text", "text": "done"}])
    response = call(backend(model="claude-haiku-4-5", thinking=2048), max_tokens=1000)
    body = server.requests[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and body["max_tokens"] == 3048
    assert response.content[0] == {"type": "thinking", "thinking": "consider tiles", "signature": "sig=="}  # type: ignore[attr-defined]


def test_adaptive_thinking_is_passed_through(server: FakeMessagesServer) -> None:
    server.text("ok")
    call(backend(thinking="adaptive"))
    assert server.requests[0].body["thinking"] == {"type": "adaptive"}


def test_prices_come_from_the_table_or_must_be_given(server: FakeMessagesServer) -> None:
    assert DEFAULT_MODEL == "claude-sonnet-4-6" and prices_for(DEFAULT_MODEL) is not None
    assert prices_for("claude-sonnet-4-5-20250929") == prices_for("claude-sonnet-4-5")
    custom = Prices(input_per_mtok=1, output_per_mtok=2, cache_write_per_mtok=0, cache_read_per_mtok=0)
    server.text("ok", usage={"input_tokens": 1_000_000, "output_tokens": 1_000_000})
    assert call(Anthropic(model="claude-future-9", prices=custom)).usage.cost_usd == pytest.approx(3.0)  # type: ignore[attr-defined]
    assert server.requests[0].body["model"] == "claude-future-9"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"thinking": 100}, "thinking"),
    ({"cache_ttl": "2h"}, "cache_ttl"),
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


# -- the SDK's rules, thinking, prices ---------------------------------------------------------


def test_a_long_reply_is_streamed_and_a_short_one_is_not(server: FakeMessagesServer) -> None:
    server.message([{"type": "thinking", "thinking": "tile sizes first"}, {"type": "text", "text": "streamed"}],
                   usage={"input_tokens": 10, "output_tokens": 30000})
    server.text("in one piece")
    llm = backend(thinking="adaptive")
    response = call(llm, max_tokens=30_000)
    assert server.requests[0].body["stream"] is True and response.text == "streamed"  # type: ignore[attr-defined]
    thinking = response.content[0]  # type: ignore[attr-defined]
    assert thinking["thinking"] == "tile sizes first" and thinking["signature"].startswith("sig_")
    assert response.usage.output_tokens == 30000  # type: ignore[attr-defined]
    assert call(llm, max_tokens=4000).text == "in one piece"  # type: ignore[attr-defined]
    assert "stream" not in server.requests[1].body
    assert server.rejected == []


def test_the_streaming_rule_is_the_sdks_own(server: FakeMessagesServer) -> None:
    llm = backend()
    client = llm._client
    if not hasattr(client, "_calculate_nonstreaming_timeout"):
        pytest.skip(f"anthropic {anthropic_version()} has no non-streaming guard")
    from anthropic import _constants

    limits = getattr(_constants, "MODEL_NONSTREAMING_TOKENS", {})  # per-model limits came later
    for model in ("claude-sonnet-4-6", "claude-opus-4-0"):
        for max_tokens in (8192, 8193, 21_333, 21_334, 64_000):
            try:
                client._calculate_nonstreaming_timeout(max_tokens, limits.get(model))
                sdk_requires = False
            except ValueError:
                sdk_requires = True
            assert needs_streaming(model, max_tokens) is sdk_requires, (model, max_tokens)


def test_the_server_refuses_a_long_request_that_does_not_stream(server: FakeMessagesServer) -> None:
    import anthropic

    llm = backend()
    client = llm._client
    with pytest.raises(anthropic.BadRequestError, match="streaming is required"):
        client.messages.create(model=DEFAULT_MODEL, max_tokens=30_000, messages=MESSAGES, timeout=5)


def test_a_prompt_that_is_too_long_raises_its_own_error(server: FakeMessagesServer) -> None:
    server.error(400, "invalid_request_error", "prompt is too long: 1050000 tokens > 1000000 maximum")
    with pytest.raises(PromptTooLong, match="prompt is too long"):
        call(backend([]))
    assert len(server.requests) == 1


def test_a_model_without_a_known_price_runs_with_cost_unknown(server: FakeMessagesServer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    server.text("ok", usage={"input_tokens": 1000, "output_tokens": 100})
    with caplog.at_level("WARNING"):
        llm = backend(model="claude-future-9")
    assert "no published price for model 'claude-future-9'" in caplog.text and llm.prices is None
    usage = call(llm).usage  # type: ignore[attr-defined]
    assert usage.cost_usd == 0 and usage.unpriced_calls == 1 and usage.tokens == 1100
    assert "price unknown" in llm.describe() and llm.thinking == "off"
    assert "thinking" not in server.requests[0].body


def test_one_hour_cache_writes_are_priced_as_such(server: FakeMessagesServer) -> None:
    server.text("ok", usage={"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 3000,
                             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}})
    usage = call(backend(model="claude-sonnet-5-5")).usage  # type: ignore[attr-defined]
    assert usage.cost_usd == pytest.approx((1000 * 2.50 + 2000 * 4.0) / 1e6)  # Sonnet 5.5: $2.50 5m, $4 1h


def test_short_cache_lifetime_and_no_cache(server: FakeMessagesServer) -> None:
    server.text("ok")
    call(backend(cache_ttl="5m"))
    assert server.requests[0].body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert server.requests[0].body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}


@pytest.mark.parametrize(("model", "expected"), [
    ("claude-sonnet-5-5", {"type": "adaptive"}),
    ("claude-opus-5-5", {"type": "adaptive"}),
    ("claude-haiku-4-5", {"type": "enabled", "budget_tokens": 8000}),
])
def test_thinking_is_on_by_default_where_the_model_supports_it(server: FakeMessagesServer, model: str,
                                                               expected: dict[str, object]) -> None:
    server.text("ok")
    call(backend(model=model), max_tokens=2000)
    assert server.requests[0].body["thinking"] == expected and server.rejected == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model": "claude-opus-5-5", "thinking": "off"}, "always thinks adaptively"),
    ({"model": "claude-sonnet-5-5", "thinking": 4096}, "not a token budget"),
    ({"model": "claude-haiku-4-5", "thinking": "adaptive"}, "not 'adaptive'"),
    ({"model": "claude-haiku-4-5", "max_tokens": 64_000}, "exceeds the 64000 output tokens"),
    ({"model": "claude-sonnet-4-6", "max_tokens": 100_000}, "lower max_tokens"),
])
def test_settings_the_model_does_not_take_are_refused_at_once(server: FakeMessagesServer, kwargs: dict[str, object],
                                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Anthropic(**kwargs)  # type: ignore[arg-type]


def test_a_request_above_the_models_longest_reply_is_raised_to_it_with_a_warning(
        server: FakeMessagesServer, caplog: pytest.LogCaptureFixture) -> None:
    server.text("ok")
    with caplog.at_level("WARNING"):
        call(backend(model="claude-haiku-4-5", thinking="off"), max_tokens=100_000)
    assert server.requests[0].body["max_tokens"] == 64_000 and "at most 64000" in caplog.text


def test_the_price_table_covers_every_sdk_model_with_a_published_price() -> None:
    from anthropic.types import model_param

    if "claude-sonnet-5-5" not in str(model_param.ModelParam):
        pytest.skip(f"anthropic {anthropic_version()} lists older models")
    names = [a for a in typing.get_args(typing.get_args(model_param.ModelParam)[0])]
    assert "claude-sonnet-5-5" in names
    unpublished = {"claude-mythos-5-2", "claude-mythos-preview"}
    for name in names:
        info = model_info(name)
        assert info is not None, f"{name} from the SDK's model list is not in evoagent.llm.models.MODELS"
        assert (info.prices is None) == (name in unpublished), name


def test_haiku_5_5_is_priced_by_prompt_length() -> None:
    prices = prices_for("claude-haiku-5-5")
    assert prices is not None
    short = prices.cost_usd(input_tokens=100_000, output_tokens=1000, cache_write_tokens=0, cache_read_tokens=0)
    long = prices.cost_usd(input_tokens=100_001, output_tokens=1000, cache_write_tokens=0, cache_read_tokens=0)
    assert short == pytest.approx((100_000 * 0.10 + 1000 * 0.50) / 1e6)
    assert long == pytest.approx((100_001 * 0.50 + 1000 * 2.50) / 1e6)
