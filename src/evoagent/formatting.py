"""How token counts, durations and small HTML tables read for people (a leaf module: it imports nothing).

The CLI, the progress displays, the `_repr_html_` of records and the report format through here
(scores: `result.format_score`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence


def format_tokens(tokens: int) -> str:
    return f"{tokens / 1e6:.2f}M" if tokens >= 1_000_000 else f"{tokens / 1e3:.1f}k" if tokens >= 1000 else str(tokens)


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
