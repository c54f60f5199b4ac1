"""OpenAICompatible: the LLM protocol over an OpenAI-compatible Chat Completions API (vLLM, local servers, vendors).

The agent speaks Anthropic-shaped messages; this backend translates them to chat messages with
tool calls and back: a `tool_result` block becomes a `tool` message, a `tool_use` block a tool
call, thinking blocks stay out (they belong to Claude). It needs the optional `openai` SDK
(`pip install 'evoagent[openai]'`); `import evoagent` works without it.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, LLMError, PromptTooLong
from ..records import Usage
from .base import Block, LLMResponse, Message
from .models import Prices, price_note
from .retry import RetryPolicy

__all__ = ["OpenAICompatible"]

log = logging.getLogger(__name__)

_STOPS = {"tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens", "stop": "end_turn",
          "content_filter": "refusal"}


class OpenAICompatible:
    """A model behind an OpenAI-compatible endpoint, speaking the evoagent LLM protocol.

    The key is read from the environment variable `api_key_env` when the backend is built and
    handed only to the SDK client (never stored, printed or pickled); `api_key_env = ""` is for
    local servers that take no key. Retries follow `RetryPolicy` (429, 408, 409, 5xx, connection
    errors; `retry-after` obeyed); the SDK's own retries are off.

    Args:
        model: the model name the server knows (e.g. "Qwen/Qwen3-Coder-30B-A3B-Instruct").
        base_url: the API address, e.g. "http://127.0.0.1:8000/v1" for vLLM (default: OPENAI_BASE_URL
            or OpenAI's API).
        api_key_env: the environment variable holding the key ("" for none).
        max_tokens: output tokens of a reply when the caller names none.
        prices: USD per million tokens (cached prompt tokens at `cache_read_per_mtok`); None: the
            cost is counted as unknown (`Usage.unpriced_calls`).
        max_retries, backoff_s, max_backoff_s: see `RetryPolicy`.
        timeout_s: per-request timeout.
        sleep: the function used to wait between retries (tests replace it).
    """

    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 8192, prices: Prices | None = None, max_retries: int = 8,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, timeout_s: float = 600.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"OpenAICompatible model must be the served model's name, got {model!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"OpenAICompatible max_tokens must be a positive integer, got {max_tokens!r}")
        self.model = model
        self.max_tokens = max_tokens
        self.prices = prices
        self.timeout_s = timeout_s
        self.api_key_env = api_key_env
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.retry = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                 **({"sleep": sleep} if sleep is not None else {}))
        if prices is None:
            log.warning("no prices given for model %r: its cost is counted as unknown "
                        "(set prices in its [operator.llm] table to count it)", model)
        self._client = _make_client(self.base_url, timeout_s, api_key_env)
        self._closer = weakref.finalize(self, self._client.close)

    def close(self) -> None:
        """Closes the HTTP connections; the backend cannot be used afterwards."""
        self._closer()

    def __repr__(self) -> str:
        return f"OpenAICompatible(model={self.model!r}, base_url={self.base_url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.spec()["params"],))

    def describe(self) -> str:
        """One line for the start of a run."""
        return f"{self.model} at {self.base_url or 'the OpenAI API'} (openai-compatible{price_note(self.prices)})"

    def spec(self) -> dict[str, Any]:
        """How to rebuild this backend (no key, no client)."""
        return {"class": "evoagent.llm.openai_compat:OpenAICompatible", "params": {
            "model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env,
            "max_tokens": self.max_tokens, "prices": self.prices.to_dict() if self.prices else None,
            "max_retries": self.retry.max_retries, "backoff_s": self.retry.backoff_s,
            "max_backoff_s": self.retry.max_backoff_s, "timeout_s": self.timeout_s}}

    def complete(self, *, system: str | Sequence[Block], messages: Sequence[Message],
                 tools: Sequence[Mapping[str, Any]] = (), max_tokens: int | None = None) -> LLMResponse:
        """Sends one chat completion (retrying transient failures); raises LLMError when it cannot."""
        if not self._closer.alive:
            raise LLMError("this OpenAICompatible backend was closed; build a new one")
        request: dict[str, Any] = {"model": self.model, "messages": chat_messages(system, messages),
                                   "max_tokens": max_tokens or self.max_tokens}
        if tools:
            request["tools"] = [{"type": "function", "function": {
                "name": t["name"], "description": t.get("description", ""),
                "parameters": t.get("input_schema", {"type": "object"})}} for t in tools]
        return self._response(self._send(request))

    def _send(self, request: dict[str, Any]) -> Any:
        import openai

        attempt = 0
        while True:
            try:
                return self._client.chat.completions.create(**request, timeout=self.timeout_s)
            except openai.APIStatusError as err:
                text = _error_message(err)
                if err.status_code == 400 and ("context_length_exceeded" in str(err.body)
                                               or "maximum context length" in text.lower()):
                    raise PromptTooLong(f"OpenAI-compatible API: {text}") from None
                delay = self.retry.after_status(err.status_code, err.response.headers, attempt)
                failure = f"HTTP {err.status_code}: {text}"
            except openai.APIConnectionError as err:
                delay = self.retry.after_connection_error(attempt)
                failure = f"{type(err).__name__}: {err}"
            if delay is None:
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise LLMError(f"OpenAI-compatible request for {self.model!r} at {self.base_url or 'api.openai.com'}"
                               f" failed{tried}: {failure}") from None
            log.warning("OpenAI-compatible API %s; retry %d of %d in %.2f s", failure, attempt + 1,
                        self.retry.max_retries, delay)
            self.retry.sleep(delay)
            attempt += 1

    def _response(self, completion: Any) -> LLMResponse:
        if not completion.choices:
            raise LLMError(f"OpenAI-compatible API answered {self.model!r} with no choices")
        choice = completion.choices[0]
        content: list[Block] = []
        if choice.message.content:
            content.append({"type": "text", "text": choice.message.content})
        for call in choice.message.tool_calls or []:
            content.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                            "input": _arguments(call.function.arguments)})
        return LLMResponse(content=content, stop_reason=_STOPS.get(choice.finish_reason or "stop", "end_turn"),
                           usage=self._usage(completion.usage), model=completion.model or self.model)

    def _usage(self, raw: Any) -> Usage:
        if raw is None:
            return Usage(unpriced_calls=0 if self.prices is not None else 1)
        details = getattr(raw, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        counts = {"input_tokens": max(0, (raw.prompt_tokens or 0) - cached),
                  "output_tokens": raw.completion_tokens or 0, "cache_read_tokens": cached, "cache_write_tokens": 0}
        if self.prices is None:
            return Usage(**counts, unpriced_calls=1)
        return Usage(**counts, cost_usd=self.prices.cost_usd(**counts))


def chat_messages(system: str | Sequence[Block], messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Anthropic-shaped messages as chat messages: tool results become `tool` messages, tool uses tool calls."""
    text = system if isinstance(system, str) else "\n\n".join(
        str(b.get("text", "")) for b in system if b.get("type") == "text")
    out: list[dict[str, Any]] = [{"role": "system", "content": text}] if text else []
    for message in messages:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if message.get("role") == "assistant":
            out.append(_assistant(blocks))
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": _result_text(block)})
        texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
        if texts:
            out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def _assistant(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))}}
             for b in blocks if b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
    return f"ERROR: {content}" if block.get("is_error") else str(content)


def _arguments(text: str | None) -> dict[str, Any]:
    """A tool call's arguments; text that is not a JSON object goes to the tool as-is (it answers with an error)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"_unparsed_arguments": text}
    return value if isinstance(value, dict) else {"_unparsed_arguments": text}


def _error_message(err: Any) -> str:
    body = err.body if isinstance(err.body, Mapping) else {}
    inner = body.get("error", body)
    if isinstance(inner, Mapping) and inner.get("message"):
        return str(inner["message"])
    return str(body.get("message") or err.message)


def _make_client(base_url: str | None, timeout_s: float, api_key_env: str) -> Any:
    try:
        import openai
    except ImportError:
        raise ConfigError("backend \"openai\" needs the openai SDK, which is not installed; "
                          "run `pip install 'evoagent[openai]'`") from None
    key = os.environ.get(api_key_env) if api_key_env else "none"  # local servers take any key
    if not key:
        raise ConfigError(f"{api_key_env} is not set; export it for the openai backend, or set api_key_env = \"\" "
                          "for a server that takes no key")
    kwargs: dict[str, Any] = {"api_key": key, "max_retries": 0, "timeout": timeout_s}
    if base_url:
        kwargs["base_url"] = base_url
    return openai.OpenAI(**kwargs)


def _rebuild(params: dict[str, Any]) -> OpenAICompatible:
    params = dict(params)
    if params.get("prices") is not None:
        params["prices"] = Prices.from_dict(params["prices"])
    return OpenAICompatible(**params)
