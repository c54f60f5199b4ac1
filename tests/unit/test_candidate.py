from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evoagent.candidate import Candidate, normalize_source


def test_id_ignores_trailing_whitespace_and_line_endings():
    a = Candidate.from_source("x = 1\r\ny = 2   \n\n\n")
    b = Candidate.from_source("x = 1\ny = 2\n")
    assert a.id == b.id and a == b


def test_id_changes_with_content_and_file_name():
    base = Candidate.from_source("x = 1\n")
    assert base.id != Candidate.from_source("x = 2\n").id
    assert base.id != Candidate.from_source("x = 1\n", entry="other.py").id


def test_paths_outside_the_candidate_are_rejected():
    with pytest.raises(ValueError, match="relative path"):
        Candidate(files={"../evil.py": "x"})
    with pytest.raises(ValueError, match="relative path"):
        Candidate(files={"/etc/passwd": "x"})


def test_multi_file_candidate_needs_an_entry_among_its_files():
    with pytest.raises(ValueError, match="entry"):
        Candidate(files={"a.py": "1", "b.py": "2"})
    c = Candidate(files={"a.py": "1", "b.py": "2"}, entry="b.py")
    assert c.source == "2"


def test_diff_names_files_and_lines():
    parent = Candidate.from_source("a = 1\nb = 2\n", entry="kernel.py")
    child = parent.with_files({"kernel.py": "a = 1\nb = 3\n"}, hypothesis="b up")
    diff = child.diff(parent)
    assert "--- a/kernel.py" in diff and "-b = 2" in diff and "+b = 3" in diff
    assert child.parents == (parent.id,)


def test_from_path_reads_file_and_refuses_missing(tmp_path):
    f = tmp_path / "seed.py"
    f.write_text("print(1)\n")
    assert Candidate.from_path(f, entry="kernel.py").files == {"kernel.py": "print(1)\n"}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Candidate.from_path(tmp_path / "nope.py")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_normalization_is_idempotent_and_pickle_round_trips(text):
    assert normalize_source(normalize_source(text)) == normalize_source(text)
    c = Candidate.from_source(text, metadata={"k": 1})
    back = pickle.loads(pickle.dumps(c))
    assert back == c and back.files == c.files and back.metadata == c.metadata


def test_the_fingerprint_ignores_form_but_not_meaning():
    base = Candidate.from_source('def f(x):\n    """Adds one."""\n    return x + 1\n')
    same = [
        "def f(x):\n    return x + 1\n",
        "def f(x):  # comment\n\n    return (x +\n            1)\n",
        "def f(x):\n    'Another docstring.'\n    return x+1\n",
    ]
    different = ["def f(x):\n    return x + 2\n", "def f(y):\n    return y + 1\n", "def f(x):\n    return 1 + x\n"]
    assert all(Candidate.from_source(s).fingerprint == base.fingerprint for s in same)
    assert all(Candidate.from_source(s).fingerprint != base.fingerprint for s in different)
    assert Candidate.from_source("def (:\n").fingerprint != Candidate.from_source("def ( :\n").fingerprint
