"""Recipes: the TOML block parser, apply() on exact text and on marked parameters, precondition errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evoagent.knowledge import Edit, Recipe, RecipeError, marked_params, param_recipe, parse_recipe
from evoagent.knowledge.recipes import find_recipe_blocks, strip_recipe_blocks

SOURCE = '''\
import triton.language as tl

BLOCK_M = 128  # evo: choices 64 128
BLOCK_N = 64  # evo: choices 32 64 128
SCALE: float = 0.5


def kernel(x):
    p = tl.exp(x)
    return p
'''

EDIT_BLOCK = """\
id = "exp-to-exp2"
title = "Use exp2"
kind = "edit"
requires = ["tl.exp("]
forbids = ["tl.exp2("]
notes = "MUFU.EX2 is the hardware instruction."
[[edits]]
old = '''
    p = tl.exp(x)
'''
new = '''
    p = tl.exp2(x * 1.4426950408889634)
'''
"""


def test_an_edit_block_parses_into_a_recipe() -> None:
    recipe = parse_recipe(EDIT_BLOCK, doc="d", section="s")
    assert (recipe.id, recipe.title, recipe.kind) == ("exp-to-exp2", "Use exp2", "edit")
    assert recipe.requires == ("tl.exp(",) and recipe.forbids == ("tl.exp2(",)
    assert recipe.edits == (Edit(old="    p = tl.exp(x)\n", new="    p = tl.exp2(x * 1.4426950408889634)\n"),)
    assert (recipe.doc, recipe.section, recipe.notes) == ("d", "s", "MUFU.EX2 is the hardware instruction.")
    assert recipe.hypothesis == "recipe exp-to-exp2: Use exp2"


def test_apply_replaces_the_exact_text() -> None:
    out = parse_recipe(EDIT_BLOCK).apply(SOURCE)
    assert "p = tl.exp2(x * 1.4426950408889634)\n" in out and "tl.exp(x)" not in out
    assert out.replace("tl.exp2(x * 1.4426950408889634)", "tl.exp(x)") == SOURCE


def test_a_forbidden_text_means_the_recipe_was_already_applied() -> None:
    recipe = parse_recipe(EDIT_BLOCK)
    once = recipe.apply(SOURCE)
    assert not recipe.applies(once)
    with pytest.raises(RecipeError, match="recipe 'exp-to-exp2' does not apply: required text 'tl.exp\\(' is absent"):
        recipe.apply(once)
    assert recipe.check(once + "# tl.exp(\n") == "recipe 'exp-to-exp2' does not apply: forbidden text 'tl.exp2(' is present"


def test_an_edit_whose_text_is_absent_or_repeated_does_not_apply() -> None:
    recipe = Recipe(id="r", title="t", kind="edit", edits=(Edit(old="return p\n", new="return p + 0\n"),))
    with pytest.raises(RecipeError, match="the text of edit 1 is absent \\(expected exactly once\\): 'return p'"):
        recipe.apply("nothing here\n")
    with pytest.raises(RecipeError, match="the text of edit 1 occurs 2 times"):
        recipe.apply("return p\nreturn p\n")


def test_later_edits_see_the_text_left_by_earlier_ones() -> None:
    recipe = Recipe(id="r", title="t", kind="edit", edits=(Edit(old="a = 1", new="a = 2"), Edit(old="a = 2", new="a = 3")))
    assert recipe.changes("a = 1\n") == [Edit(old="a = 1", new="a = 2"), Edit(old="a = 2", new="a = 3")]
    assert recipe.apply("a = 1\n") == "a = 3\n"


def test_a_param_recipe_rewrites_only_the_value_of_its_lines() -> None:
    recipe = parse_recipe('id = "big"\ntitle = "big tiles"\nkind = "param"\n[params]\nBLOCK_N = 128\nSCALE = 0.25\n')
    out = recipe.apply(SOURCE)
    assert "BLOCK_N = 128  # evo: choices 32 64 128\n" in out
    assert "SCALE: float = 0.25\n" in out
    assert out.count("\n") == SOURCE.count("\n")


def test_a_param_recipe_applies_when_one_of_its_values_changes() -> None:
    recipe = Recipe(id="p", title="t", kind="param", params=(("BLOCK_M", 128), ("BLOCK_N", 32)))
    assert recipe.changes(SOURCE) == [Edit(old="BLOCK_N = 64  # evo: choices 32 64 128",
                                           new="BLOCK_N = 32  # evo: choices 32 64 128")]
    same = Recipe(id="p", title="t", kind="param", params=(("BLOCK_M", 128),))
    assert same.check(SOURCE) == "recipe 'p' does not apply: the source already has BLOCK_M = 128"


def test_a_param_value_outside_the_marked_choices_is_refused() -> None:
    recipe = Recipe(id="p", title="t", kind="param", params=(("BLOCK_M", 256),))
    assert recipe.check(SOURCE) == ("recipe 'p' does not apply: BLOCK_M = 256 is not among the marked choices "
                                    "['64', '128']")


def test_a_param_that_is_not_assigned_exactly_once_is_refused() -> None:
    recipe = Recipe(id="p", title="t", kind="param", params=(("NUM_WARPS", 8),))
    assert "no lines assign NUM_WARPS (expected exactly one line like `NUM_WARPS = value" in recipe.check(SOURCE)
    twice = SOURCE + "NUM_WARPS = 4\nNUM_WARPS = 8\n"
    assert "2 lines assign NUM_WARPS" in recipe.check(twice)


def test_comparisons_are_not_taken_for_assignments() -> None:
    source = "X = 1  # evo: choices 1 2\nif X == 3:\n    pass\n"
    assert Recipe(id="p", title="t", kind="param", params=(("X", 2),)).apply(source).startswith("X = 2  #")


def test_marked_params_lists_the_choices_lines() -> None:
    assert [(p.name, p.value, p.choices) for p in marked_params(SOURCE)] == [
        ("BLOCK_M", "128", ("64", "128")), ("BLOCK_N", "64", ("32", "64", "128"))]
    recipe = param_recipe("BLOCK_N", "32")
    assert (recipe.id, recipe.title, recipe.hypothesis) == (
        "param-block_n-32", "set BLOCK_N = 32", "recipe param-block_n-32: set BLOCK_N = 32")
    assert "BLOCK_N = 32  #" in recipe.apply(SOURCE)


CUDA_SOURCE_TEXT = """
constexpr int BLOCK_M = 128;  // evo: choices 64 128
constexpr int NUM_WARPS = BLOCK_M / 16;
static constexpr int BLOCK_N = 64;  // evo: choices 32 64 128
  const int n_start = tile * BLOCK_N;
"""


def test_cxx_constexpr_knobs_are_marked_params_and_param_recipes_set_them() -> None:
    assert [(p.name, p.value, p.choices) for p in marked_params(CUDA_SOURCE_TEXT)] == [
        ("BLOCK_M", "128", ("64", "128")), ("BLOCK_N", "64", ("32", "64", "128"))]
    recipe = Recipe(id="p", title="t", kind="param", params=(("BLOCK_M", 64), ("NUM_WARPS", 4), ("BLOCK_N", 64)))
    out = recipe.apply(CUDA_SOURCE_TEXT)
    assert "constexpr int BLOCK_M = 64;  // evo: choices 64 128\n" in out
    assert "constexpr int NUM_WARPS = 4;\n" in out and "static constexpr int BLOCK_N = 64;" in out
    assert "  const int n_start = tile * BLOCK_N;" in out  # a use is not an assignment
    refused = Recipe(id="p", title="t", kind="param", params=(("BLOCK_N", 256),)).check(CUDA_SOURCE_TEXT)
    assert refused == "recipe 'p' does not apply: BLOCK_N = 256 is not among the marked choices ['32', '64', '128']"


def test_a_knob_assigned_in_python_and_in_cxx_is_refused_as_ambiguous() -> None:
    both = "BLOCK_M = 128  # evo: choices 64 128\n" + CUDA_SOURCE_TEXT
    check = Recipe(id="p", title="t", kind="param", params=(("BLOCK_M", 64),)).check(both)
    assert check is not None and "2 lines assign BLOCK_M" in check and "constexpr int BLOCK_M = value;" in check


@pytest.mark.parametrize(("block", "match"), [
    ('id = "x"\ntitle = "t"\nkind = "edit"\n[[edits]]\nold = "a"\nnew = "b"\ncolour = 1\n', "must have exactly 'old' and 'new'"),
    ('id = "x"\ntitle = "t"\nkind = "edit"\nrequire = ["a"]\n', "unknown key 'require' in recipe block; did you mean 'requires'"),
    ('title = "t"\nkind = "edit"\n', "recipe block is missing the key 'id'"),
    ('id = "X Y"\ntitle = "t"\nkind = "edit"\n', "recipe id 'X Y' must be a lowercase slug"),
    ('id = "x"\ntitle = "t"\nkind = "rewrite"\n', "'kind' must be one of \\('edit', 'param'\\)"),
    ('id = "x"\ntitle = "t"\nkind = "param"\n', "a 'param' recipe needs a non-empty \\[params\\] table"),
    ('id = "x"\ntitle = "t"\nkind = "param"\n[params]\n"not a name" = 1\n', "is not a Python name"),
    ('id = "x"\ntitle = "t"\nkind = "param"\n[params]\nA = [1]\n', "parameter A must be an int, float, bool"),
    ('id = "x"\ntitle = "t"\nkind = "edit"\n[[edits]]\nold = "a"\nnew = "a"\n', "edit 1 has 'new' equal to 'old'"),
    ('id = "x"\ntitle = "t"\nkind = "edit"\n[[edits]]\nold = ""\nnew = "a"\n', "edit 1 has an empty 'old' text"),
    ('id = "x"\ntitle = "t"\nkind = "edit"\nrequires = [1]\n', "'requires' in recipe block must be a list of non-empty"),
    ('id = "x"\ntitle = "t\n', "recipe block is not valid TOML"),
])
def test_malformed_blocks_raise_a_recipe_error_saying_what_is_wrong(block: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe(block)


def test_recipe_blocks_are_found_and_stripped_from_markdown() -> None:
    markdown = f"## Section\n\nProse.\n\n```recipe\n{EDIT_BLOCK}```\n\n```python\nx = 1\n```\n"
    assert find_recipe_blocks(markdown) == [EDIT_BLOCK]
    assert strip_recipe_blocks(markdown) == "## Section\n\nProse.\n\n\n\n```python\nx = 1\n```\n"


# -- property: any recipe written as a block parses back to the same recipe ------------------------

_slug = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip)
_code = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="'\r\x7f"), max_size=60).filter(
    lambda s: "\x00" not in s and all(ord(c) >= 32 or c in "\n\t" for c in s))
_name = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
_value = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                   st.from_regex(r"[a-z0-9_.]{1,8}", fullmatch=True))


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_multiline(text: str) -> str:
    # a literal multi-line string keeps the text as is; the newline after the opening quotes is dropped
    return "'''\n" + text + "'''"


@st.composite
def recipe_blocks(draw: st.DrawFn) -> tuple[str, Recipe]:
    rid, title, kind = draw(_slug), draw(_line), draw(st.sampled_from(["edit", "param"]))
    requires = draw(st.lists(_line, max_size=3))
    forbids = draw(st.lists(_line, max_size=3))
    lines = [f"id = {_toml_str(rid)}", f"title = {_toml_str(title)}", f"kind = {_toml_str(kind)}",
             f"requires = [{', '.join(map(_toml_str, requires))}]", f"forbids = [{', '.join(map(_toml_str, forbids))}]"]
    edits: tuple[Edit, ...] = ()
    params: tuple[tuple[str, object], ...] = ()
    if kind == "edit":
        pairs = draw(st.lists(st.tuples(_code.filter(str.strip), _code), min_size=1, max_size=3).filter(
            lambda ps: all(o != n for o, n in ps)))
        edits = tuple(Edit(old=o, new=n) for o, n in pairs)
        for e in edits:
            lines += ["[[edits]]", f"old = {_toml_multiline(e.old)}", f"new = {_toml_multiline(e.new)}"]
    else:
        table = draw(st.dictionaries(_name, _value, min_size=1, max_size=4))
        params = tuple(table.items())
        lines.append("[params]")
        lines += [f"{k} = {_toml_str(v) if isinstance(v, str) else repr(v).lower() if isinstance(v, bool) else repr(v)}"
                  for k, v in params]
    expected = Recipe(id=rid, title=title, kind=kind, requires=tuple(requires), forbids=tuple(forbids),
                      edits=edits, params=params)
    return "\n".join(lines) + "\n", expected


@settings(max_examples=150, deadline=None)
@given(recipe_blocks())
def test_generated_recipe_blocks_parse_back_to_the_recipe_they_describe(case: tuple[str, Recipe]) -> None:
    block, expected = case
    assert parse_recipe(block) == expected
    markdown = f"## S\n\ntext\n\n```recipe\n{block}```\n"
    assert [parse_recipe(b) for b in find_recipe_blocks(markdown)] == [expected]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 9)), min_size=1, max_size=3,
                unique_by=lambda t: t[0]))
def test_param_recipes_set_exactly_the_values_they_name(settings_: list[tuple[str, int]]) -> None:
    source = "A = 1  # evo: choices 0 1 2 3 4 5 6 7 8 9\nB = 2\nC: int = 3  # tuned\n"
    recipe = Recipe(id="p", title="t", kind="param", params=tuple(settings_))
    current = {"A": 1, "B": 2, "C": 3}
    wanted = {**current, **dict(settings_)}
    if wanted == current:
        assert not recipe.applies(source)
        return
    out = recipe.apply(source)
    assert out == f"A = {wanted['A']}  # evo: choices 0 1 2 3 4 5 6 7 8 9\nB = {wanted['B']}\nC: int = {wanted['C']}  # tuned\n"
