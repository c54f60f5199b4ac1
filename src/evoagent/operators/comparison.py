"""Same-process comparisons for the agent: per-configuration ratios of two versions timed in interleaved rounds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..tables import text_table


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Per configuration: the median ratio (workspace / other) over paired rounds and its spread.

    Attributes:
        rows: (configuration, median ratio, lowest ratio, highest ratio), higher is better for the workspace.
        rounds: how many interleaved pairs were timed.
    """

    rows: tuple[tuple[str, float, float, float], ...]
    rounds: int

    @property
    def geomean_ratio(self) -> float | None:
        ratios = [r for _, r, _, _ in self.rows if r > 0]
        return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None


def compare(mine: Sequence[Mapping[str, float]], theirs: Sequence[Mapping[str, float]]) -> Comparison:
    """Pairs round i of `mine` with round i of `theirs` (metrics where higher is better)."""
    pairs = list(zip(mine, theirs))
    configs = [c for c in (mine[0] if mine else {}) if all(c in a and c in b for a, b in pairs)]
    rows = []
    for config in configs:
        ratios = [a[config] / b[config] for a, b in pairs if b[config] > 0]
        if ratios:
            rows.append((config, statistics.median(ratios), min(ratios), max(ratios)))
    return Comparison(rows=tuple(rows), rounds=len(pairs))


def comparison_text(comparison: Comparison, *, other: str) -> str:
    """The comparison as the agent reads it: a table of ratios with their spread, then the geometric-mean Δ."""
    table = text_table(("configuration", f"ratio vs {other}", "spread (lowest..highest)"),
                       [(c, f"{r:.4f}", f"{lo:.4f}..{hi:.4f}") for c, r, lo, hi in comparison.rows])
    mean = comparison.geomean_ratio
    delta = f"{100 * (mean - 1):+.2f}%" if mean is not None else "-"
    return (f"== comparison with {other}: {comparison.rounds} interleaved rounds in this process "
            f"({other}, workspace, {other}, ...) ==\n{table}\ngeometric-mean Δ of the workspace vs {other}: {delta}; "
            "a ratio whose spread includes 1.0 is within the noise")
