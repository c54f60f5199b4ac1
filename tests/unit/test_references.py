"""Loading a user's evaluator file: its neighbours import, and a failure is one line naming file, line and a fix."""

from __future__ import annotations

import pytest

from evoagent.errors import ConfigError
from evoagent.references import load_object


def test_an_evaluator_file_imports_the_module_beside_it(tmp_path):
    (tmp_path / "helpers_for_refs.py").write_text("ANSWER = 42\n")
    (tmp_path / "ev.py").write_text("from helpers_for_refs import ANSWER\n\nclass E:\n    value = ANSWER\n")
    assert load_object(f"{tmp_path / 'ev.py'}:E").value == 42


def test_a_module_that_raises_on_import_is_one_line_with_its_file_and_line(tmp_path):
    (tmp_path / "broken_ev.py").write_text("import os\n\nx = 1 / 0\n")
    with pytest.raises(ConfigError) as err:
        load_object(f"{tmp_path / 'broken_ev.py'}:E")
    message = str(err.value)
    assert "\n" not in message and "broken_ev.py line 3 raised ZeroDivisionError: division by zero" in message
    assert "hint: run `python" in message


def test_a_missing_module_names_the_folder_on_sys_path(tmp_path):
    (tmp_path / "needs_ev.py").write_text("import no_such_helper_module\n")
    with pytest.raises(ConfigError) as err:
        load_object(f"{tmp_path / 'needs_ev.py'}:E")
    assert "No module named 'no_such_helper_module'" in str(err.value)
    assert f"put no_such_helper_module.py beside needs_ev.py: its folder {str(tmp_path)!r} is on sys.path" \
        in str(err.value)


def test_a_syntax_error_in_the_evaluator_names_its_line(tmp_path):
    (tmp_path / "syntax_ev.py").write_text("import os\ndef f(:\n    pass\n")
    with pytest.raises(ConfigError, match=r"syntax_ev.py line 2 has a syntax error: invalid syntax \(hint"):
        load_object(f"{tmp_path / 'syntax_ev.py'}:E")
