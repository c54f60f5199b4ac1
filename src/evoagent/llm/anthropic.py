"""Anthropic: the LLM protocol over the real Messages API (streaming when the SDK requires it, retries,
prompt caching, thinking, token and dollar accounting). Model facts and prices live in `models`."""

from __future__ import annotations

import copy
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import ConfigError, LLMError, PromptTooLong
from ..records import Usage
from .base import Block, LLMResponse, Message
from .models import MODELS, Prices, Thinking, model_info, price_note, prices_for
from .retry import RetryPolicy

__all__ = ["DEFAULT_MODEL", "PRICES", "Anthropic", "Prices", "needs_streaming", "prices_for"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 32_000
DEFAULT_THINKING_BUDGET = 8_000  # for models that take manual budgets only
PRICES: Mapping[str, Prices] = {name: info.prices for name, info in MODELS.items() if info.prices is not None}
_Self = TypeVar("_Self", bound="Anthropic")
_CACHE_TTLS = ("5m", "1h")
# The SDK refuses a non-streaming request that may run past 10 minutes at 128,000 output tokens an
# hour (anthropic._base_client._calculate_nonstreaming_timeout), and some models lower the limit.
_NONSTREAMING_S, _TOKENS_PER_HOUR = 600, 128_000


def needs_streaming(model: str, max_tokens: int) -> bool:
    """Whether the SDK requires streaming for a request of `max_tokens` to `model` (its own rule)."""
    try:
        from anthropic._constants import MODEL_NONSTREAMING_TOKENS as limits
    except ImportError:  # pragma: no cover (older SDKs have no per-model limits)
        limits = {}
    limit = limits.get(model)
    return 3600 * max_tokens / _TOKENS_PER_HOUR > _NONSTREAMING_S or bool(limit and max_tokens > limit)


class Anthropic:
    """Claude through the `anthropic` SDK, speaking the evoagent LLM protocol.

    The API key is read from the environment variable named by `api_key_env` when the backend is
    built and handed only to the SDK client; it is never an attribute of this object, never in
    `repr`, `spec()` or a pickle. ANTHROPIC_BASE_URL (or `base_url`) points the client elsewhere.

    A request whose `max_tokens` would trip the SDK's non-streaming guard is streamed
    (`messages.stream(...).get_final_message()`); both paths keep the explicit timeout. Retries are
    ours (the SDK's are off so that they can be configured and tested): 429, 408, 409, every 5xx
    (529 'overloaded' included) and connection errors are retried up to `max_retries` times with
    exponential backoff and jitter; a `retry-after` or `retry-after-ms` header is obeyed instead.
    A prompt the API finds too long raises `PromptTooLong` (the operator compacts and retries).

    Args:
        model: the Claude model name.
        max_tokens: output tokens of a reply when the caller names none (thinking included for
            adaptive thinking). A call asking for more than the model's longest reply gets the
            model's longest, with a logged warning.
        thinking: "adaptive" (the model decides), "off", a token budget (>= 1024, for models that
            take manual budgets; added on top of the reply's max_tokens), or None: adaptive where the
            model supports it, a budget of 8,000 for models with manual budgets only, off for
            models evoagent does not know.
        cache_ttl: lifetime of the prompt-cache breakpoints on the stable prefix (system prompt and
            tool definitions) and of the rolling one on the newest message, "1h" or "5m".
        prices: USD per million tokens; default the published prices of known models. A model
            with no known price runs with its cost counted as unknown (`Usage.unpriced_calls`).
        max_retries: retries after the first attempt.
        timeout_s: per-request timeout.
        backoff_s: first backoff delay; doubles each retry up to `max_backoff_s`.
        cache: put prompt-cache breakpoints on the system prompt, the last tool and the newest message.
        base_url: API address; default ANTHROPIC_BASE_URL or the SDK's default.
        api_key_env: the environment variable holding the API key.
        sleep: the function used to wait between retries (tests replace it).
    """

    name = "anthropic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking: int | str | None = None,
        cache_ttl: str = "1h",
        prices: Prices | None = None,
        max_retries: int = 8,
        timeout_s: float = 600.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        cache: bool = True,
        base_url: str | None = None,
        api_key_env: str = "ANTHROPIC_API_KEY",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_args(model, max_tokens, timeout_s)
        if cache_ttl not in _CACHE_TTLS:
            raise ConfigError(f"Anthropic cache_ttl must be '5m' or '1h', got {cache_ttl!r}")
        info = model_info(model)
        self.model = model
        self.thinking = _thinking(model, thinking)
        if info is not None:
            budget = self.thinking if isinstance(self.thinking, int) else 0
            max_tokens = _fits(model, max_tokens, budget, info.max_output_tokens)
        self.max_tokens = max_tokens
        self.cache_ttl = cache_ttl
        self.prices = prices if prices is not None else prices_for(model)
        if self.prices is None:
            log.warning("no published price for model %r: its cost is counted as unknown "
                        "(set [operator.llm] prices to count it)", model)
        self.retry = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                 sleep=sleep)
        self.timeout_s = timeout_s
        self.cache = cache
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.api_key_env = api_key_env
        self._longest = info.max_output_tokens if info is not None else None
        self._client = _make_client(self.base_url, timeout_s, api_key_env)
        # Closes the client's pooled connections when this backend is dropped (no ResourceWarning).
        self._closer = weakref.finalize(self, self._client.close)

    def close(self) -> None:
        """Closes the HTTP connections; the backend cannot be used afterwards."""
        self._closer()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Anthropic(model={self.model!r}, max_tokens={self.max_tokens}, thinking={self.thinking!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the environment on the other side: a pickle never carries the client or key.
        return (_rebuild, (self.spec()["params"],))

    def describe(self) -> str:
        """One line for the start of a run: model, thinking, cache lifetime, and whether cost is counted."""
        cache = self.cache_ttl if self.cache else "off"
        return f"{self.model} (thinking {self.thinking}, cache {cache}{price_note(self.prices)})"

    def spec(self) -> dict[str, Any]:
        """How to rebuild this backend (no key, no client)."""
        return {
            "class": "evoagent.llm.anthropic:Anthropic",
            "params": {
                "model": self.model, "max_tokens": self.max_tokens, "thinking": self.thinking,
                "cache_ttl": self.cache_ttl, "prices": self.prices.to_dict() if self.prices else None,
                "max_retries": self.retry.max_retries, "timeout_s": self.timeout_s,
                "backoff_s": self.retry.backoff_s, "max_backoff_s": self.retry.max_backoff_s, "cache": self.cache,
                "base_url": self.base_url,
                "api_key_env": self.api_key_env,
            },
        }

    def complete(
        self,
        *,
        system: str | Sequence[Block],
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int | None = None,
    ) -> LLMResponse:
        """Sends one request (retrying transient failures); raises LLMError when it cannot."""
        if not self._closer.alive:
            raise LLMError("this Anthropic backend was closed; build a new one")
        request = self._request(system, messages, tools, max_tokens or self.max_tokens)
        message = self._send(request)
        return self._response(message)

    def _request(self, system: str | Sequence[Block], messages: Sequence[Message],
                 tools: Sequence[Mapping[str, Any]], max_tokens: int) -> dict[str, Any]:
        stable = {"type": "ephemeral", "ttl": self.cache_ttl}
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": _system_blocks(system, mark=stable if self.cache else None),
            "messages": _cached_messages(messages, stable) if self.cache else list(messages),
        }
        if tools:
            request["tools"] = _cached_tools(tools, stable) if self.cache else list(tools)
        if self.thinking == "adaptive":
            request["thinking"] = {"type": "adaptive"}
        elif isinstance(self.thinking, int):
            request["thinking"] = {"type": "enabled", "budget_tokens": self.thinking}
            request["max_tokens"] = max_tokens + self.thinking  # thinking counts toward max_tokens
        if self._longest is not None and request["max_tokens"] > self._longest:
            log.warning("asked for %d output tokens; %s replies with at most %d: asking for that",
                        request["max_tokens"], self.model, self._longest)
            request["max_tokens"] = self._longest
        return request

    def _send(self, request: dict[str, Any]) -> Any:
        import anthropic

        stream = needs_streaming(self.model, request["max_tokens"])
        attempt = 0
        while True:
            try:
                if not stream:
                    return self._client.messages.create(**request, timeout=self.timeout_s)
                with self._client.messages.stream(**request, timeout=self.timeout_s) as events:
                    return events.get_final_message()
            except anthropic.APIStatusError as err:
                kind, text = _error_fields(err)
                if err.status_code == 400 and "prompt is too long" in text.lower():
                    raise PromptTooLong(f"Anthropic Messages API: {text}") from None
                delay = self.retry.after_status(err.status_code, err.response.headers, attempt)
                failure = f"HTTP {err.status_code} {kind}: {text}"
            except anthropic.APIConnectionError as err:
                delay = self.retry.after_connection_error(attempt)
                failure = f"{type(err).__name__}: {err}"
            if delay is None:
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise LLMError(f"Anthropic Messages API request for {self.model!r} failed{tried}: {failure}") from None
            log.warning("Anthropic API %s; retry %d of %d in %.2f s", failure, attempt + 1, self.retry.max_retries,
                        delay)
            self.retry.sleep(delay)
            attempt += 1

    def _response(self, message: Any) -> LLMResponse:
        content = [block.to_dict(mode="json", exclude_none=True) for block in message.content]
        raw = message.usage
        counts = {
            "input_tokens": raw.input_tokens or 0,
            "output_tokens": raw.output_tokens or 0,
            "cache_write_tokens": raw.cache_creation_input_tokens or 0,
            "cache_read_tokens": raw.cache_read_input_tokens or 0,
        }
        split = getattr(raw, "cache_creation", None)  # 5-minute and 1-hour writes (newer SDKs)
        hour = (getattr(split, "ephemeral_1h_input_tokens", 0) or 0) if split is not None else 0
        if self.prices is None:
            usage = Usage(**counts, unpriced_calls=1)
        else:
            usage = Usage(**counts, cost_usd=self.prices.cost_usd(**counts, cache_write_1h_tokens=hour))
        return LLMResponse(content=content, stop_reason=message.stop_reason or "end_turn", usage=usage,
                           model=message.model or self.model)


def _thinking(model: str, thinking: int | str | None) -> int | str:
    """The thinking setting to use: the given one checked against what the model accepts, or its default."""
    info = model_info(model)
    kind = info.thinking if info is not None else None
    if thinking is None:
        if kind is None:
            return "off"
        return DEFAULT_THINKING_BUDGET if kind is Thinking.EXTENDED else "adaptive"
    if isinstance(thinking, bool) or not (thinking in ("adaptive", "off") or (
            isinstance(thinking, int) and thinking >= 1024)):
        raise ConfigError(f"Anthropic thinking must be 'adaptive', 'off' or a token budget >= 1024, got {thinking!r}")
    if kind is Thinking.ALWAYS and thinking != "adaptive":
        raise ConfigError(f"{model} always thinks adaptively: thinking must be 'adaptive' (got {thinking!r})")
    if kind in (Thinking.ADAPTIVE, Thinking.ALWAYS) and isinstance(thinking, int):
        raise ConfigError(f"{model} takes thinking = 'adaptive' or 'off', not a token budget (got {thinking})")
    if kind is Thinking.EXTENDED and thinking == "adaptive":
        raise ConfigError(f"{model} takes a thinking token budget (>= 1024) or 'off', not 'adaptive'")
    return thinking


def _fits(model: str, max_tokens: int, budget: int, longest: int) -> int:
    """max_tokens checked against the model's longest reply; the default shrinks to fit, a given value must."""
    if max_tokens + budget <= longest:
        return max_tokens
    if max_tokens == DEFAULT_MAX_TOKENS and longest - budget >= 1024:
        return longest - budget
    raise ConfigError(f"max_tokens {max_tokens}{f' + thinking budget {budget}' if budget else ''} exceeds the "
                      f"{longest} output tokens {model} can write; lower max_tokens")


def _check_args(model: str, max_tokens: int, timeout_s: float) -> None:
    if not isinstance(model, str) or not model:
        raise ConfigError(f"Anthropic model must be a model name such as {DEFAULT_MODEL!r}, got {model!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"Anthropic max_tokens must be a positive integer, got {max_tokens!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s < 0:
        raise ConfigError(f"Anthropic timeout_s must be a non-negative number of seconds, got {timeout_s!r}")


def _make_client(base_url: str | None, timeout_s: float, api_key_env: str) -> Any:
    try:
        import anthropic
    except ImportError:
        raise ConfigError("the Anthropic backend needs the anthropic SDK, which is not installed; "
                          "run `pip install 'evoagent[anthropic]'` (or use the offline HeuristicPolicy)") from None

    key = os.environ.get(api_key_env)
    if not key:
        raise ConfigError(
            f"{api_key_env} is not set; export it to use the Anthropic backend "
            "(or run with the offline HeuristicPolicy: [operator] kind = \"heuristic\")"
        )
    kwargs: dict[str, Any] = {"api_key": key, "max_retries": 0, "timeout": timeout_s}
    if base_url:
        kwargs["base_url"] = base_url
    return anthropic.Anthropic(**kwargs)


def _error_fields(err: Any) -> tuple[str, str]:
    """The error's type and message from the response body (read directly: older SDKs lack the attributes)."""
    body: Mapping[str, Any] = err.body if isinstance(err.body, Mapping) else {}
    inner = body.get("error")
    error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    return str(error.get("type") or "error"), str(error.get("message") or err.message)


def _rebuild(params: dict[str, Any]) -> Anthropic:
    params = dict(params)
    if params.get("prices") is not None:
        params["prices"] = Prices.from_dict(params["prices"])
    return Anthropic(**params)


def _system_blocks(system: str | Sequence[Block], *, mark: Mapping[str, str] | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = ([{"type": "text", "text": system}] if isinstance(system, str)
                                    else [dict(b) for b in system])
    blocks = [b for b in blocks if b.get("type") != "text" or b.get("text")]
    if mark is not None and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": {**mark}}
    return blocks


def _cached_tools(tools: Sequence[Mapping[str, Any]], mark: Mapping[str, str]) -> list[dict[str, Any]]:
    marked = [dict(t) for t in tools]
    marked[-1] = {**marked[-1], "cache_control": dict(mark)}
    return marked


_CACHEABLE = frozenset({"text", "tool_result", "tool_use", "image", "document"})


def _cached_messages(messages: Sequence[Message], mark: Mapping[str, str]) -> list[Any]:
    """The messages with a cache breakpoint on the newest block (the conversation is reused next turn).

    It carries the prefix's lifetime (1 hour by default): a step boundary (an authoritative evaluation,
    often minutes) would let a 5-minute entry expire, and the next step would write the whole
    conversation again.
    """
    out: list[Any] = list(messages)
    if not out:
        return out
    last = copy.deepcopy(dict(out[-1]))
    content = last.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if isinstance(content, list) and content and content[-1].get("type") in _CACHEABLE:
        content[-1] = {**content[-1], "cache_control": dict(mark)}
        last["content"] = content
        out[-1] = last
    return out
