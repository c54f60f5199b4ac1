from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from recording_services import RecordingServices

from evoagent import Candidate, ConfigError
from evoagent.operators.base import VariationContext
from evoagent.operators.mutation import ParameterMutation, find_parameters, set_parameter

SOURCE = """BLOCK_M = 64  # evo: choices 32 64 128
NUM_WARPS: int = 4  # evo: choices 4 8
SCALE = 0.5  # evo: range 0.1 0.9
ROWS = 5  # evo: range 3 8 step 1
UNMARKED = 7
"""


def test_marked_parameters_are_found_with_their_domains():
    params = {p.name: p for p in find_parameters({"k.py": SOURCE})}
    assert set(params) == {"BLOCK_M", "NUM_WARPS", "SCALE", "ROWS"}
    assert params["BLOCK_M"].choices == (32, 64, 128) and params["SCALE"].low == 0.1
    assert params["ROWS"].step == 1.0


def test_bad_marker_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"k.py:1: cannot read '# evo: pick 1 2'"):
        find_parameters({"k.py": "X = 1  # evo: pick 1 2\n"})


@given(st.integers(0, 10_000))
def test_draws_stay_in_domain_and_rewrite_only_the_value(seed):
    rng = random.Random(seed)
    for p in find_parameters({"k.py": SOURCE}):
        value = p.draw(rng)
        if p.choices:
            assert value in p.choices and value != p.value
        else:
            assert p.low <= value <= p.high
        if p.name == "ROWS":
            assert isinstance(value, int)
        text = set_parameter(SOURCE, p, value)
        again = {q.name: q for q in find_parameters({"k.py": text})}
        assert again[p.name].value == value
        assert text.count("\n") == SOURCE.count("\n") and "UNMARKED = 7" in text


def _context(parent, seen=()):
    seen = set(seen)
    return VariationContext(trial_id=1, parent=parent, parent_result=None, best=None, evaluator=None,
                            lineage=None, rng=random.Random(0),
                            services=RecordingServices(versions={cid: (parent, None) for cid in seen}))


def test_mutation_proposes_an_unseen_child_naming_its_changes():
    parent = Candidate.from_source(SOURCE, entry="k.py")
    proposal = ParameterMutation().vary(_context(parent))
    assert proposal.candidate is not None and proposal.candidate.id != parent.id
    assert proposal.hypothesis.startswith("set ") and "->" in proposal.hypothesis


def test_mutation_gives_up_without_marked_parameters():
    proposal = ParameterMutation().vary(_context(Candidate.from_source("x = 1\n")))
    assert proposal.candidate is None and "no '# evo:'" in proposal.reason
