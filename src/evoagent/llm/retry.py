"""When and how long a backend waits before retrying a failed API request (shared by every HTTP backend)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError

_RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx (529 'overloaded' included)
_MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries 408, 409, 429, every 5xx and connection errors with exponential backoff and jitter.

    A `retry-after-ms` or `retry-after` header (seconds or an HTTP date) is obeyed instead of the
    backoff, up to 5 minutes; `x-should-retry: true|false` overrides the status.

    Attributes:
        max_retries: retries after the first attempt.
        backoff_s: first backoff delay; doubles each retry up to `max_backoff_s`.
        max_backoff_s: the longest backoff delay.
        sleep: the function used to wait (tests replace it).
    """

    max_retries: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number of seconds, got {value!r}")

    def after_status(self, status: int, headers: Mapping[str, str], attempt: int) -> float | None:
        """Seconds to wait before retrying a request that got this HTTP status, or None: do not retry."""
        verdict = headers.get("x-should-retry")
        retryable = status in _RETRY_STATUSES or status >= 500
        if verdict in ("true", "false"):
            retryable = verdict == "true"
        if not retryable or attempt >= self.max_retries:
            return None
        after = retry_after_s(headers)
        return min(after, _MAX_RETRY_AFTER_S) if after is not None else self.backoff(attempt)

    def after_connection_error(self, attempt: int) -> float | None:
        """Seconds to wait before retrying after a connection error, or None: do not retry."""
        return self.backoff(attempt) if attempt < self.max_retries else None

    def backoff(self, attempt: int) -> float:
        delay = min(self.backoff_s * 2.0 ** attempt, self.max_backoff_s)
        return delay * random.uniform(0.5, 1.0)  # jitter spreads out clients that failed together


def retry_after_s(headers: Mapping[str, str]) -> float | None:
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
