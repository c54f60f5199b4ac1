"""The OpenAI-compatible backend: the real `openai` client against a local fake chat-completions server."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAIServer

from evoagent.errors import ConfigError, LLMError, PromptTooLong
from evoagent.llm.models import Prices
from evoagent.llm.openai_compat import OpenAICompatible, chat_messages

pytest.importorskip("openai")

KEY = "sk-local-test-1618033988"
SYSTEM = "You improve kernels."
TOOLS = [{"name": "read_file", "description": "read a file",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
CONVERSATION = [
    {"role": "user", "content": [{"type": "text", "text": "step 1"}]},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                      {"type": "text", "text": "Reading."},
                                      {"type": "tool_use", "id": "call_a", "name": "read_file",
                                       "input": {"path": "main.py"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_a", "content": "X = 1"},
                                 {"type": "text", "text": "go on"}]},
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv("LOCAL_KEY", KEY)
    with FakeOpenAIServer() as fake:
        yield fake


def backend(server: FakeOpenAIServer, sleeps: list[float] | None = None, **kwargs: object) -> OpenAICompatible:
    kwargs.setdefault("api_key_env", "LOCAL_KEY")
    return OpenAICompatible("local-coder", base_url=server.base_url,
                            sleep=sleeps.append if sleeps is not None else None, **kwargs)  # type: ignore[arg-type]


def test_a_tool_call_comes_back_as_a_tool_use_block_with_usage_and_cost(server: FakeOpenAIServer) -> None:
    server.tool_call("read_file", {"path": "main.py"}, usage={"prompt_tokens": 1000, "completion_tokens": 50,
                                                             "prompt_tokens_details": {"cached_tokens": 400}})
    prices = Prices(input_per_mtok=0.5, output_per_mtok=1.5, cache_write_per_mtok=0, cache_read_per_mtok=0.05)
    response = backend(server, prices=prices).complete(system=SYSTEM, messages=CONVERSATION, tools=TOOLS)
    assert response.stop_reason == "tool_use" and response.tool_uses[0]["name"] == "read_file"
    assert response.tool_uses[0]["input"] == {"path": "main.py"}
    usage = response.usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (600, 400, 50)
    assert usage.cost_usd == pytest.approx((600 * 0.5 + 400 * 0.05 + 50 * 1.5) / 1e6)
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["tools"][0] == {"type": "function", "function": {
        "name": "read_file", "description": "read a file", "parameters": TOOLS[0]["input_schema"]}}
    assert server.rejected == []


def test_messages_translate_to_chat_messages_with_tool_calls_and_tool_results() -> None:
    chat = chat_messages(SYSTEM, CONVERSATION)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "tool", "user"]
    assert chat[2]["content"] == "Reading." and chat[2]["tool_calls"][0]["function"] == {
        "name": "read_file", "arguments": '{"path": "main.py"}'}
    assert chat[3] == {"role": "tool", "tool_call_id": "call_a", "content": "X = 1"}
    assert "hmm" not in str(chat)  # thinking stays with Claude


def test_rate_limits_and_server_errors_are_retried(server: FakeOpenAIServer) -> None:
    server.error(429, "slow down", headers={"retry-after": "3"}).error(503, "overloaded").completion("done")
    sleeps: list[float] = []
    response = backend(server, sleeps, backoff_s=1.0).complete(system=SYSTEM, messages=CONVERSATION[:1])
    assert response.text == "done" and sleeps[0] == 3.0 and 0.5 <= sleeps[1] <= 2.0


def test_retries_run_out_with_an_llm_error(server: FakeOpenAIServer) -> None:
    server.error(500, "boom").error(500, "boom")
    with pytest.raises(LLMError, match=r"failed after 2 attempts: HTTP 500: boom"):
        backend(server, [], max_retries=1).complete(system=SYSTEM, messages=CONVERSATION[:1])


def test_a_context_overflow_is_prompt_too_long(server: FakeOpenAIServer) -> None:
    server.error(400, "This model's maximum context length is 32768 tokens", code="context_length_exceeded")
    with pytest.raises(PromptTooLong):
        backend(server, []).complete(system=SYSTEM, messages=CONVERSATION[:1])


def test_the_server_refuses_an_unanswered_tool_call(server: FakeOpenAIServer) -> None:
    broken = [*CONVERSATION[:2], {"role": "user", "content": [{"type": "text", "text": "no result"}]}]
    with pytest.raises(LLMError, match="must be followed by tool messages"):
        backend(server, []).complete(system=SYSTEM, messages=broken)


def test_unknown_price_counts_calls_and_the_key_stays_out_of_specs(server: FakeOpenAIServer) -> None:
    server.completion("ok")
    llm = backend(server)
    usage = llm.complete(system=SYSTEM, messages=CONVERSATION[:1]).usage
    assert usage.unpriced_calls == 1 and usage.cost_usd == 0 and usage.tokens == 230
    for text in (repr(llm), str(llm.spec()), llm.describe()):
        assert KEY not in text
    assert KEY.encode() not in pickle.dumps(llm)


def test_a_missing_key_and_a_keyless_local_server(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        OpenAICompatible("local-coder", base_url=server.base_url)
    server.completion("no key needed")
    llm = OpenAICompatible("local-coder", base_url=server.base_url, api_key_env="")
    assert llm.complete(system=SYSTEM, messages=CONVERSATION[:1]).text == "no key needed"
