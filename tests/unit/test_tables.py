"""Plain text for agents: tables one row per line, numbered lines, cuts only between lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evoagent.tables import cut_lines, file_text, numbered, numbered_file, text_table


def test_a_table_aligns_columns_and_formats_numbers() -> None:
    table = text_table(("configuration", "TFLOPS"), [("n64", 1.23456789), ("n1024-causal", None)])
    assert table.splitlines() == ["configuration  TFLOPS", "n64            1.235", "n1024-causal   -"]


def test_numbered_lines_count_from_the_start_line() -> None:
    assert numbered("a\nb\nc\n", 2) == "2\tb\n3\tc"
    assert numbered("x\n" * 10, 9, 10) == " 9\tx\n10\tx"


@given(st.lists(st.text(alphabet="abc xyz", max_size=40), min_size=1, max_size=200), st.integers(80, 2000))
def test_a_cut_keeps_whole_lines_stays_within_the_limit_and_says_what_went(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)
    out = cut_lines(text, limit)
    assert len(out) <= limit
    if out == text:
        return
    kept = out.split("\n")  # not splitlines(): a kept empty last line must still count
    notes = [line for line in kept if line.startswith("[... ")]
    assert len(notes) == 1
    gone = int(notes[0].split()[1])
    # every line (as cut_lines counts them: a final newline ends a line) is kept whole or counted as cut
    assert len(kept) - 1 + gone == len(text.splitlines())
    assert all(line in lines for line in kept if line not in notes)


def test_many_lines_none_of_which_fits_are_counted_as_cut_not_cut_by_characters() -> None:
    text = "\n".join(["a" * 14, "", "", "", "a" * 4, "a" * 17])
    assert cut_lines(text, 80) == text
    out = cut_lines(text * 3, 80)
    assert len(out) <= 80 and out.startswith("[... 16 lines (") and "a" * 14 not in out


def test_a_single_overlong_line_is_cut_in_the_middle() -> None:
    out = cut_lines("x" * 1000, 200)
    assert len(out) <= 200 and "characters cut" in out


@given(st.text(alphabet="ab \t\n\r", max_size=60))
def test_a_numbered_file_gives_back_the_exact_text(text: str) -> None:
    assert file_text(numbered_file("main.py", text)) == text
