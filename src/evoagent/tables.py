"""Plain text for agents: aligned tables, numbered lines, and cuts made only at line boundaries."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any


def cell(value: Any) -> str:
    """One table cell: numbers with 4 significant digits, None as '-', the rest as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with two spaces, one row per line (so that a cut never splits a row)."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _lines(text: str) -> list[str]:
    """Lines split at '\n' only (so that numbering round-trips), without the empty one after a final newline."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def numbered(text: str, start: int = 1, end: int | None = None) -> str:
    """Lines `start`..`end` (1-based, inclusive) of `text`, each prefixed by its number and a tab."""
    lines = _lines(text)
    last = len(lines) if end is None else min(end, len(lines))
    width = len(str(max(last, 1)))
    return "\n".join(f"{i:>{width}}\t{lines[i - 1]}" for i in range(max(start, 1), last + 1))


def line_count(text: str) -> int:
    return len(_lines(text))


def numbered_file(name: str, text: str) -> str:
    """A whole file for an agent: a header line, then numbered lines; `file_text` gives the text back."""
    tail = "" if not text or text.endswith("\n") else "; no newline at the end"
    return f"{name} ({line_count(text)} lines{tail})\n{numbered(text)}"


_HEADER = re.compile(r".+ \((\d+) lines(; no newline at the end)?\)")
_NUMBER = re.compile(r" *\d+\t")


def file_text(shown: str) -> str:
    """The exact file text behind `numbered_file`'s output (other text is returned as it is)."""
    header, _, body = shown.partition("\n")
    found = _HEADER.fullmatch(header)
    lines = body.split("\n") if body else []
    if found is None or int(found[1]) != len(lines) or not all(_NUMBER.match(line) for line in lines):
        return shown
    text = "\n".join(line.split("\t", 1)[1] for line in lines)
    return text + ("" if found[2] or not lines else "\n")


def cut_lines(text: str, limit_chars: int) -> str:
    """`text` if it fits, else its first and last whole lines with a note of how many lines were cut.

    The head keeps about two thirds of the limit and the tail one third (the result stays within the
    limit); a text of lines each longer than the limit is cut in the middle of a line, with a note.
    """
    if len(text) <= limit_chars:
        return text
    lines = text.splitlines()
    room = max(limit_chars - 60, 3)  # the note takes the rest
    head: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > room * 2 // 3:
            break
        head.append(line)
        size += len(line) + 1
    tail: list[str] = []
    size = 0
    for line in reversed(lines[len(head):]):
        if size + len(line) + 1 > room // 3:
            break
        tail.append(line)
        size += len(line) + 1
    tail.reverse()
    if not head and not tail and len(lines) <= 1:  # one line longer than the limit
        first, last = room * 2 // 3, room // 3
        return f"{text[:first]}\n[... {len(text) - first - last} characters cut ...]\n{text[-last:]}"
    gone = lines[len(head):len(lines) - len(tail)]
    note = f"[... {len(gone)} lines ({sum(len(g) + 1 for g in gone)} characters) cut ...]"
    return "\n".join([*head, note, *tail])
