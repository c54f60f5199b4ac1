"""Anthropic: the LLM protocol over the real Messages API (retries, prompt caching, token and dollar accounting).

Default prices are USD per million tokens from Anthropic's pricing page
(https://platform.claude.com/docs/en/about-claude/pricing, "Model pricing": base input, 5-minute
cache writes, cache hits, output), as listed in 2026. Pass `prices=Prices(...)` for any other model
or when the list changes.
"""

from __future__ import annotations

import copy
import email.utils
import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigError, LLMError
from ..records import Usage
from .base import Block, LLMResponse, Message

log = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-6"
_Self = TypeVar("_Self", bound="Anthropic")
_RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx, 529 'overloaded' included
_MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices:
    """Prices of one model in US dollars per million tokens.

    Attributes:
        input_per_mtok: uncached input tokens.
        output_per_mtok: output tokens (thinking included).
        cache_write_per_mtok: input tokens written to the prompt cache (5-minute lifetime).
        cache_read_per_mtok: input tokens read from the prompt cache.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float
    cache_read_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok", "cache_write_per_mtok", "cache_read_per_mtok"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(
                    f"Prices.{name} must be a non-negative number of USD per million tokens, got {value!r}")

    def cost_usd(self, *, input_tokens: int, output_tokens: int, cache_write_tokens: int,
                 cache_read_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
                + cache_write_tokens * self.cache_write_per_mtok
                + cache_read_tokens * self.cache_read_per_mtok) / 1e6


_OPUS = Prices(input_per_mtok=5.0, output_per_mtok=25.0, cache_write_per_mtok=6.25, cache_read_per_mtok=0.50)
_OPUS_OLD = Prices(input_per_mtok=15.0, output_per_mtok=75.0, cache_write_per_mtok=18.75, cache_read_per_mtok=1.50)
_SONNET = Prices(input_per_mtok=3.0, output_per_mtok=15.0, cache_write_per_mtok=3.75, cache_read_per_mtok=0.30)
_HAIKU = Prices(input_per_mtok=1.0, output_per_mtok=5.0, cache_write_per_mtok=1.25, cache_read_per_mtok=0.10)

PRICES: Mapping[str, Prices] = {
    "claude-opus-5": _OPUS,
    "claude-opus-4-8": _OPUS,
    "claude-opus-4-7": _OPUS,
    "claude-opus-4-6": _OPUS,
    "claude-opus-4-5": _OPUS,
    "claude-opus-4-1": _OPUS_OLD,
    "claude-opus-4": _OPUS_OLD,
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4": _SONNET,
    "claude-haiku-4-5": _HAIKU,
}


def prices_for(model: str) -> Prices | None:
    """The default prices of a model name (a dated snapshot matches its alias), or None."""
    if model in PRICES:
        return PRICES[model]
    base, _, suffix = model.rpartition("-")
    if suffix.isdigit() and len(suffix) == 8 and base in PRICES:  # e.g. claude-sonnet-4-5-20250929
        return PRICES[base]
    return None


class Anthropic:
    """Claude through the `anthropic` SDK, speaking the evoagent LLM protocol.

    The API key is read from ANTHROPIC_API_KEY when the backend is built and handed only to the
    SDK client; it is never an attribute of this object, never in `repr`, `spec()` or a pickle.
    ANTHROPIC_BASE_URL (or `base_url`) points the client elsewhere (a proxy, a test server).

    Retries are ours (the SDK's are switched off so that they can be configured and tested):
    429, 408, 409, every 5xx (529 'overloaded' included) and connection errors are retried up to
    `max_retries` times with exponential backoff and jitter; a `retry-after` or `retry-after-ms`
    header is obeyed instead of the backoff when present.

    Args:
        model: the Claude model name.
        max_tokens: the most output tokens per reply (a call asking for more gets this many).
        thinking_budget: None (no extended thinking), a token budget (>= 1024; added on top of
            the reply's max_tokens), or "adaptive" (the model decides).
        prices: USD per million tokens; default from `PRICES` for known models.
        max_retries: retries after the first attempt.
        timeout_s: per-request timeout.
        backoff_s: first backoff delay; doubles each retry up to `max_backoff_s`.
        cache: put prompt-cache breakpoints on the system prompt, the last tool definition and the
            newest message (the stable prefix is then read from cache on every turn).
        base_url: API address; default ANTHROPIC_BASE_URL or the SDK's default.
        sleep: the function used to wait between retries (tests replace it).
    """

    name = "anthropic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        max_tokens: int = 16_000,
        thinking_budget: int | str | None = None,
        prices: Prices | None = None,
        max_retries: int = 8,
        timeout_s: float = 600.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        cache: bool = True,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_args(model, max_tokens, thinking_budget, max_retries, timeout_s, backoff_s, max_backoff_s)
        resolved_prices = prices if prices is not None else prices_for(model)
        if resolved_prices is None:
            raise ConfigError(
                f"no default prices for model {model!r} (known: {sorted(PRICES)}); "
                "pass prices=Prices(input_per_mtok=..., output_per_mtok=..., "
                "cache_write_per_mtok=..., cache_read_per_mtok=...)"
            )
        self.model = model
        self.max_tokens = max_tokens
        self.thinking_budget = thinking_budget
        self.prices = resolved_prices
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.cache = cache
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._sleep = sleep
        self._client = _make_client(self.base_url, timeout_s)
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
        return (f"Anthropic(model={self.model!r}, max_tokens={self.max_tokens}, "
                f"thinking_budget={self.thinking_budget!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the environment on the other side: a pickle never carries the client or key.
        return (_rebuild, (self.spec()["params"],))

    def spec(self) -> dict[str, Any]:
        """How to rebuild this backend (no key, no client)."""
        return {
            "class": "evoagent.llm.anthropic:Anthropic",
            "params": {
                "model": self.model, "max_tokens": self.max_tokens, "thinking_budget": self.thinking_budget,
                "prices": {"input_per_mtok": self.prices.input_per_mtok, "output_per_mtok": self.prices.output_per_mtok,
                           "cache_write_per_mtok": self.prices.cache_write_per_mtok,
                           "cache_read_per_mtok": self.prices.cache_read_per_mtok},
                "max_retries": self.max_retries, "timeout_s": self.timeout_s, "backoff_s": self.backoff_s,
                "max_backoff_s": self.max_backoff_s, "cache": self.cache, "base_url": self.base_url,
            },
        }

    def complete(
        self,
        *,
        system: str | Sequence[Block],
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int = 8192,
    ) -> LLMResponse:
        """Sends one request (retrying transient failures); raises LLMError when it cannot."""
        if not self._closer.alive:
            raise LLMError("this Anthropic backend was closed; build a new one")
        request = self._request(system, messages, tools, max_tokens)
        message = self._send(request)
        return self._response(message)

    def _request(self, system: str | Sequence[Block], messages: Sequence[Message],
                 tools: Sequence[Mapping[str, Any]], max_tokens: int) -> dict[str, Any]:
        visible = min(max_tokens, self.max_tokens)
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": visible,
            "system": _system_blocks(system, cache=self.cache),
            "messages": _cached_messages(messages) if self.cache else list(messages),
        }
        if tools:
            request["tools"] = _cached_tools(tools) if self.cache else list(tools)
        if self.thinking_budget == "adaptive":
            request["thinking"] = {"type": "adaptive"}
        elif isinstance(self.thinking_budget, int):
            request["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
            request["max_tokens"] = visible + self.thinking_budget  # thinking counts toward max_tokens
        return request

    def _send(self, request: dict[str, Any]) -> Any:
        import anthropic

        attempt = 0
        while True:
            try:
                return self._client.messages.create(**request, timeout=self.timeout_s)
            except anthropic.APIStatusError as err:
                retry, delay = self._should_retry(err.status_code, err.response.headers, attempt)
                failure = f"HTTP {err.status_code} {err.type or 'error'}: {err.api_message or err.message}"
            except anthropic.APIConnectionError as err:
                retry, delay = attempt < self.max_retries, self._backoff(attempt)
                failure = f"{type(err).__name__}: {err}"
            if not retry:
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise LLMError(f"Anthropic Messages API request for {self.model!r} failed{tried}: {failure}") from None
            log.warning("Anthropic API %s; retry %d of %d in %.2f s", failure, attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    def _should_retry(self, status: int, headers: Mapping[str, str], attempt: int) -> tuple[bool, float]:
        verdict = headers.get("x-should-retry")
        retryable = status in _RETRY_STATUSES or status >= 500
        if verdict in ("true", "false"):
            retryable = verdict == "true"
        if not retryable or attempt >= self.max_retries:
            return False, 0.0
        after = _retry_after_s(headers)
        return True, (min(after, _MAX_RETRY_AFTER_S) if after is not None else self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_s * 2.0 ** attempt, self.max_backoff_s)
        return delay * random.uniform(0.5, 1.0)  # jitter spreads out clients that failed together

    def _response(self, message: Any) -> LLMResponse:
        content = [block.to_dict(mode="json", exclude_none=True) for block in message.content]
        raw = message.usage
        counts = {
            "input_tokens": raw.input_tokens or 0,
            "output_tokens": raw.output_tokens or 0,
            "cache_write_tokens": raw.cache_creation_input_tokens or 0,
            "cache_read_tokens": raw.cache_read_input_tokens or 0,
        }
        usage = Usage(**counts, cost_usd=self.prices.cost_usd(**counts))
        return LLMResponse(content=content, stop_reason=message.stop_reason or "end_turn", usage=usage,
                           model=message.model or self.model)


def _check_args(model: str, max_tokens: int, thinking_budget: int | str | None, max_retries: int,
                timeout_s: float, backoff_s: float, max_backoff_s: float) -> None:
    if not isinstance(model, str) or not model:
        raise ConfigError(f"Anthropic model must be a model name such as {DEFAULT_MODEL!r}, got {model!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"Anthropic max_tokens must be a positive integer, got {max_tokens!r}")
    if thinking_budget is not None and thinking_budget != "adaptive" and (
        not isinstance(thinking_budget, int) or isinstance(thinking_budget, bool) or thinking_budget < 1024
    ):
        raise ConfigError(
            f"Anthropic thinking_budget must be None, 'adaptive' or an integer >= 1024, got {thinking_budget!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"Anthropic max_retries must be an integer >= 0, got {max_retries!r}")
    for name, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"Anthropic {name} must be a non-negative number of seconds, got {value!r}")


def _make_client(base_url: str | None, timeout_s: float) -> Any:
    try:
        import anthropic
    except ImportError:
        raise ConfigError("the Anthropic backend needs the anthropic SDK, which is not installed; "
                          "run `pip install 'evoagent[anthropic]'` (or use the offline HeuristicPolicy)") from None

    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set; export it to use the Anthropic backend "
            "(or run with the offline HeuristicPolicy)"
        )
    kwargs: dict[str, Any] = {"api_key": key, "max_retries": 0, "timeout": timeout_s}
    if base_url:
        kwargs["base_url"] = base_url
    return anthropic.Anthropic(**kwargs)


def _rebuild(params: dict[str, Any]) -> Anthropic:
    params = dict(params)
    params["prices"] = Prices(**params["prices"])
    return Anthropic(**params)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if given."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _cache_mark(block: Mapping[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": {"type": "ephemeral"}}


def _system_blocks(system: str | Sequence[Block], *, cache: bool) -> list[dict[str, Any]]:
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else [dict(b) for b in system]
    blocks = [b for b in blocks if b.get("type") != "text" or b.get("text")]
    if cache and blocks:
        blocks[-1] = _cache_mark(blocks[-1])
    return blocks


def _cached_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    marked = [dict(t) for t in tools]
    marked[-1] = _cache_mark(marked[-1])
    return marked


_CACHEABLE = frozenset({"text", "tool_result", "tool_use", "image", "document"})


def _cached_messages(messages: Sequence[Message]) -> list[Any]:
    """The messages with a cache breakpoint on the newest block (the conversation so far is reused next turn)."""
    out: list[Any] = list(messages)
    if not out:
        return out
    last = copy.deepcopy(dict(out[-1]))
    content = last.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if isinstance(content, list) and content and content[-1].get("type") in _CACHEABLE:
        content[-1] = _cache_mark(content[-1])
        last["content"] = content
        out[-1] = last
    return out
