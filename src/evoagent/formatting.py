"""How token counts, durations and small HTML tables read for people (a leaf module: it imports nothing).

The CLI, the progress displays, the `_repr_html_` of records and the report format through here
(scores: `result.format_score`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence


def format_tokens(tokens: int) -> str:
    return f"{tokens / 1e6:.2f}M" if tokens >= 1_000_000 else f"{tokens / 1e3:.1f}k" if tokens >= 1000 else str(tokens)


def clip(text: str, limit: int) -> str:
    """The first line of `text` cut at a word boundary to at most `limit` characters, '…' marking a cut."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    if len(line) <= limit and len(lines) <= 1:
        return line
    if len(line) > limit:
        cut = line[: limit - 1]
        space = cut.rfind(" ")
        line = (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:")
    return line + " …"


def plural(count: int, noun: str) -> str:
    """'1 commit', '2 commits'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_duration(seconds: float | None) -> str:
    """'12m05s', or '3h07m' from an hour on; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def table_html(fields: Sequence[tuple[str, object]], *, title: str) -> str:
    """A two-column HTML table (name, value) with a caption, every text escaped; for Jupyter displays."""
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in fields)
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"


def format_delta(new: float | None, old: float | None) -> str:
    """The change from `old` to `new` in percent, '+1.23%'; '-' when either is missing or `old` is 0."""
    if new is None or not old or not math.isfinite(new) or not math.isfinite(old):
        return "-"
    return f"{100 * (new / old - 1):+.2f}%"


def config_deltas(new: Mapping[str, float], old: Mapping[str, float], *, limit: int = 12) -> str:
    """'cfg_a +1.20%, cfg_b -0.40%' over the configurations both have (at most `limit`, then a count)."""
    shared = [k for k in new if k in old]
    parts = [f"{k} {format_delta(new[k], old[k])}" for k in shared[:limit]]
    if len(shared) > limit:
        parts.append(f"... {len(shared) - limit} more")
    return ", ".join(parts)
