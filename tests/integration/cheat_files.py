"""Loads the cheating candidates under cheats/ and the honest ones under honest/ (the honest kernel and
launcher they share are kept once, in cheats/_honest_kernel.py)."""

from __future__ import annotations

from pathlib import Path

from evoagent import Candidate

CHEATS = Path(__file__).parent / "cheats"
HONEST = Path(__file__).parent / "honest"
MARK = "# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>\n"
LAUNCHER_MARK = "# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>\n"


def honest_kernel_block() -> str:
    """The `@triton.jit` `_attn` kernel of `_honest_kernel.py`, which most cheats reuse unchanged."""
    source = (CHEATS / "_honest_kernel.py").read_text()
    start, end = source.index("@triton.jit\ndef _attn"), source.index("def attention(")
    return source[start:end].rstrip("\n") + "\n"


def honest_launcher_block() -> str:
    """The `attention()` wrapper of `_honest_kernel.py` that launches `_attn`, reused by the cheats that keep it."""
    source = (CHEATS / "_honest_kernel.py").read_text()
    return source[source.index("def attention("):]


def _load(path: Path) -> Candidate:
    source = path.read_text().replace(MARK, honest_kernel_block(), 1)
    source = source.replace(LAUNCHER_MARK, honest_launcher_block(), 1)
    return Candidate.from_source(source, entry="kernel.py")


def cheat(name: str) -> Candidate:
    """The candidate `kernel.py` of cheats/<name>, with the shared honest parts put in their places."""
    return _load(CHEATS / name)


def honest(name: str) -> Candidate:
    """The candidate `kernel.py` of honest/<name>, with the shared honest parts put in their places."""
    return _load(HONEST / name)
