"""What evoagent knows about Claude models: prices, how each one thinks, and its longest reply.

Sources, read in November 2026 (USD per million tokens):
- Anthropic's pricing page, https://platform.claude.com/docs/en/about-claude/pricing ("Model pricing":
  base input, 5-minute and 1-hour cache writes, cache hits, output), and each model's overview page
  (https://platform.claude.com/docs/en/models/<model>/overview: prices, max output, thinking modes).
- Claude Sonnet 5.5's cache-hit price was cut from $0.20 to $0.10 on 2026-10-07 and Claude Haiku 5.5
  is priced in two bands by prompt length (up to 100,000 prompt tokens, and above); both as given in
  the pricing changelogs of cost tools that audit that page (PromptFuel v1.0.23, claudit v1.9.2).
- Claude Fable 5.2's cache prices: the release notes of rightsize v0.10.2; its input and output
  prices: the overview pages' model comparison.
Models in the installed SDK's list with no published price (claude-mythos-5-2, claude-mythos-preview)
are left out: they run with cost unknown unless the config gives `prices`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["MODELS", "ModelInfo", "Prices", "Thinking", "model_info", "price_note", "prices_for"]

_PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cache_write_per_mtok", "cache_write_1h_per_mtok",
                 "cache_read_per_mtok")


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices:
    """Prices of one model in US dollars per million tokens.

    Attributes:
        input_per_mtok: uncached input tokens.
        output_per_mtok: output tokens (thinking included).
        cache_write_per_mtok: input tokens written to the prompt cache with a 5-minute lifetime.
        cache_read_per_mtok: input tokens read from the prompt cache.
        cache_write_1h_per_mtok: input tokens written with a 1-hour lifetime (None: twice the input
            price, as every Claude model is priced).
        long_prompt_tokens: prompts (input, cache reads and writes) above this many tokens are billed
            at `long_prompt` prices instead, output included (None: one price band).
        long_prompt: the prices above `long_prompt_tokens`.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float
    cache_read_per_mtok: float
    cache_write_1h_per_mtok: float | None = None
    long_prompt_tokens: int | None = None
    long_prompt: Prices | None = None

    def __post_init__(self) -> None:
        for name in _PRICE_FIELDS:
            value = getattr(self, name)
            if value is None and name == "cache_write_1h_per_mtok":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(
                    f"Prices.{name} must be a non-negative number of USD per million tokens, got {value!r}")
        if (self.long_prompt_tokens is None) != (self.long_prompt is None):
            raise ConfigError("Prices.long_prompt_tokens and Prices.long_prompt go together: set both or neither")

    def cost_usd(self, *, input_tokens: int, output_tokens: int, cache_write_tokens: int, cache_read_tokens: int,
                 cache_write_1h_tokens: int = 0) -> float:
        """The cost of one call; `cache_write_1h_tokens` is the part of `cache_write_tokens` kept for an hour."""
        prompt = input_tokens + cache_write_tokens + cache_read_tokens
        if self.long_prompt is not None and self.long_prompt_tokens is not None and prompt > self.long_prompt_tokens:
            return self.long_prompt.cost_usd(
                input_tokens=input_tokens, output_tokens=output_tokens, cache_write_tokens=cache_write_tokens,
                cache_read_tokens=cache_read_tokens, cache_write_1h_tokens=cache_write_1h_tokens)
        hour = self.cache_write_1h_per_mtok if self.cache_write_1h_per_mtok is not None else 2 * self.input_per_mtok
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
                + (cache_write_tokens - cache_write_1h_tokens) * self.cache_write_per_mtok
                + cache_write_1h_tokens * hour + cache_read_tokens * self.cache_read_per_mtok) / 1e6

    @classmethod
    def from_dict(cls, table: Mapping[str, object]) -> Prices:
        """Prices from their config-table form (a nested `long_prompt` table included)."""
        values = dict(table)
        if isinstance(values.get("long_prompt"), Mapping):
            values["long_prompt"] = cls.from_dict(values["long_prompt"])  # type: ignore[arg-type]
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"prices: {exc}; expected input_per_mtok, output_per_mtok, cache_write_per_mtok, "
                              "cache_read_per_mtok and optionally cache_write_1h_per_mtok") from None

    def to_dict(self) -> dict[str, object]:
        """The config-table form (what `Prices(**table)` reads back)."""
        out: dict[str, object] = {name: getattr(self, name) for name in _PRICE_FIELDS
                                  if getattr(self, name) is not None}
        if self.long_prompt is not None:
            out["long_prompt_tokens"] = self.long_prompt_tokens
            out["long_prompt"] = self.long_prompt.to_dict()
        return out


class Thinking(enum.Enum):
    """How a model thinks: which `thinking` settings its API accepts."""

    ADAPTIVE = "adaptive"  # {"type": "adaptive"} and "off"; manual budgets refused or deprecated
    ALWAYS = "always"  # adaptive thinking that cannot be switched off
    EXTENDED = "extended"  # manual budgets only ({"type": "enabled", "budget_tokens": N})


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What is known of one model: prices (USD/MTok), thinking modes, longest reply in tokens."""

    prices: Prices | None
    thinking: Thinking
    max_output_tokens: int


def _p(input_: float, write_5m: float, write_1h: float, read: float, output: float) -> Prices:
    return Prices(input_per_mtok=input_, cache_write_per_mtok=write_5m, cache_write_1h_per_mtok=write_1h,
                  cache_read_per_mtok=read, output_per_mtok=output)


_FABLE_51 = _p(10, 12.50, 20, 0.25, 50)
_FABLE_5 = _p(10, 12.50, 20, 1.00, 50)
_OPUS = _p(5, 6.25, 10, 0.50, 25)
_OPUS_OLD = _p(15, 18.75, 30, 1.50, 75)
_SONNET_5 = _p(2, 2.50, 4, 0.20, 10)
_SONNET_4 = _p(3, 3.75, 6, 0.30, 15)
_HAIKU_55 = Prices(input_per_mtok=0.10, cache_write_per_mtok=0.125, cache_write_1h_per_mtok=0.20,
                   cache_read_per_mtok=0.01, output_per_mtok=0.50, long_prompt_tokens=100_000,
                   long_prompt=_p(0.50, 0.625, 1.00, 0.05, 2.50))

MODELS: Mapping[str, ModelInfo] = {
    "claude-fable-5-2": ModelInfo(prices=_p(8, 10, 16, 0.20, 40), thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-mythos-5-2": ModelInfo(prices=None, thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-fable-5-1": ModelInfo(prices=_FABLE_51, thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-mythos-5-1": ModelInfo(prices=_FABLE_51, thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-fable-5": ModelInfo(prices=_FABLE_5, thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-mythos-5": ModelInfo(prices=_FABLE_5, thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-opus-5-5": ModelInfo(prices=_p(4, 5, 8, 0.20, 20), thinking=Thinking.ALWAYS, max_output_tokens=128_000),
    "claude-sonnet-5-5": ModelInfo(prices=_p(2, 2.50, 4, 0.10, 10), thinking=Thinking.ADAPTIVE,
                                   max_output_tokens=128_000),
    "claude-haiku-5-5": ModelInfo(prices=_HAIKU_55, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-opus-5": ModelInfo(prices=_OPUS, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-sonnet-5": ModelInfo(prices=_SONNET_5, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-opus-4-8": ModelInfo(prices=_OPUS, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-opus-4-7": ModelInfo(prices=_OPUS, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-mythos-preview": ModelInfo(prices=None, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-opus-4-6": ModelInfo(prices=_OPUS, thinking=Thinking.ADAPTIVE, max_output_tokens=128_000),
    "claude-sonnet-4-6": ModelInfo(prices=_SONNET_4, thinking=Thinking.ADAPTIVE, max_output_tokens=64_000),
    "claude-opus-4-5": ModelInfo(prices=_OPUS, thinking=Thinking.EXTENDED, max_output_tokens=64_000),
    "claude-sonnet-4-5": ModelInfo(prices=_SONNET_4, thinking=Thinking.EXTENDED, max_output_tokens=64_000),
    "claude-haiku-4-5": ModelInfo(prices=_p(1, 1.25, 2, 0.10, 5), thinking=Thinking.EXTENDED,
                                  max_output_tokens=64_000),
    "claude-opus-4-1": ModelInfo(prices=_OPUS_OLD, thinking=Thinking.EXTENDED, max_output_tokens=32_000),
    "claude-opus-4": ModelInfo(prices=_OPUS_OLD, thinking=Thinking.EXTENDED, max_output_tokens=32_000),
    "claude-sonnet-4": ModelInfo(prices=_SONNET_4, thinking=Thinking.EXTENDED, max_output_tokens=64_000),
}


def price_note(prices: Prices | None) -> str:
    """What a start line says of a model whose cost cannot be counted ('' when its price is known)."""
    return "" if prices is not None else "; price unknown: cost not counted"


def model_info(model: str) -> ModelInfo | None:
    """What is known of a model name (a dated snapshot matches its alias), or None."""
    if model in MODELS:
        return MODELS[model]
    base, _, suffix = model.rpartition("-")
    if suffix.isdigit() and len(suffix) == 8 and base in MODELS:  # e.g. claude-sonnet-4-5-20250929
        return MODELS[base]
    return None


def prices_for(model: str) -> Prices | None:
    """The published prices of a model name, or None when none are known."""
    info = model_info(model)
    return info.prices if info is not None else None
