"""BudgetMeter: a run's `Budget` as it is spent (trials, time, new tokens, dollars), and why it must stop."""

from __future__ import annotations

import threading
import time

from .config import Budget
from .records import Usage


class BudgetMeter:
    """Counts one evolve() call's spending against its budget; `lock` is the engine's (it guards the counts).

    The time budget counts from the meter's creation (the engine makes it once its sandbox is ready);
    the counts start from the run's totals so far, so a resumed run keeps its budget.
    """

    def __init__(self, budget: Budget, lock: threading.Lock, *, trials_done: int, new_tokens: int,
                 cost_usd: float) -> None:
        self.budget, self.lock = budget, lock
        self.trials_done = trials_done
        self.pending = 0  # trials started and not yet handed back to the caller's thread
        self.tokens, self.cost_usd = new_tokens, cost_usd  # cache reads are not budgeted
        self.started = time.monotonic()

    def spend(self, usage: Usage) -> str:
        """Adds one model call's usage; returns why the run must stop now ('' if it may go on)."""
        with self.lock:
            self.tokens += usage.new_tokens
            self.cost_usd += usage.cost_usd
            return self.usage_over()

    def usage_over(self) -> str:
        """Why the run must stop now: time, tokens or dollars ('' if none). Checked at every model call too."""
        if self.budget.hours is not None and time.monotonic() - self.started >= self.budget.hours * 3600:
            return f"time budget of {self.budget.hours} h reached"
        if self.budget.tokens is not None and self.tokens >= self.budget.tokens:
            return f"token budget of {self.budget.tokens} reached ({self.tokens} new tokens used; cache reads apart)"
        if self.budget.usd is not None and self.cost_usd >= self.budget.usd:
            return f"USD budget of {self.budget.usd} reached ({self.cost_usd:.4f} spent)"
        return ""

    def left(self) -> str:
        """What is left of each set budget, in words (for the agent's step opening)."""
        budget, parts = self.budget, []
        with self.lock:
            if budget.trials is not None:
                parts.append(f"{max(0, budget.trials - self.trials_done - self.pending)} trials after this one")
            if budget.hours is not None:
                left_h = budget.hours - (time.monotonic() - self.started) / 3600
                parts.append(f"{max(0.0, left_h):.2f} h")
            if budget.tokens is not None:
                parts.append(f"{max(0, budget.tokens - self.tokens):,} new tokens")
            if budget.usd is not None:
                parts.append(f"${max(0.0, budget.usd - self.cost_usd):.2f}")
        return ", ".join(parts) or "no limit set"

    def exhausted(self) -> str:
        """Why no further trial may start ('' if one may), counting trials in flight."""
        if self.budget.trials is not None and self.trials_done + self.pending >= self.budget.trials:
            return f"trial budget of {self.budget.trials} reached"
        return self.usage_over()
