"""Recipes: machine-applicable edits or parameter changes carried by knowledge-base sections.

A recipe is a fenced block in a markdown section whose info string is `recipe`, holding TOML:

    ```recipe
    id = "exp2-softmax"                 # unique slug; hypotheses name it ("recipe exp2-softmax: ...")
    title = "Use exp2 with log2(e) folded into the scale"
    kind = "edit"                       # "edit" (exact text replacements) or "param"
    requires = ["tl.exp("]              # text that must be present in the source
    forbids = ["tl.exp2("]              # text that must be absent
    [[edits]]                           # applied in order; each `old` must occur exactly once
    old = '''
        p = tl.exp(qk)
    '''
    new = '''
        p = tl.exp2(qk)
    '''
    ```

A `param` recipe sets module-level assignments instead, one `NAME = value` line each:

    ```recipe
    id = "hopper-tile-128x64"
    title = "128x64 tiles with 8 warps"
    kind = "param"
    [params]
    BLOCK_M = 128                       # ints, floats and bools are written with repr()
    BLOCK_N = 64                        # strings are inserted verbatim as Python source
    ```

When the line carries a marker `# evo: choices a b c`, the new value must be one of the choices.

In a CUDA candidate the knobs are C++ constants inside its `CUDA_SOURCE` string, written one per line
as `constexpr int BLOCK_N = 64;  // evo: choices 32 64 128`; a param recipe sets them the same way
(the value between `=` and `;`), so one recipe can move the tiles of a Triton and a CUDA kernel.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import EvoagentError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KINDS = ("edit", "param")
_KEYS = ("id", "title", "kind", "requires", "forbids", "edits", "params", "notes", "needs")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FENCE = re.compile(r"^```recipe[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_CHOICES = re.compile(r"(?:#|//)\s*evo:\s*choices\s+([^#\n]+)")
_CXX_CONSTANT = r"^[ \t]*(?:static[ \t]+)?constexpr[ \t]+[A-Za-z_][\w:]*[ \t]+"  # `constexpr int ` before a C++ knob


class RecipeError(EvoagentError, ValueError):
    """A recipe is malformed, or does not apply to the source it was given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    """One exact text replacement: `old` must occur exactly once in the source."""

    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """A machine-applicable change with its preconditions.

    Attributes:
        id: unique slug; a hypothesis names it as "recipe <id>: <title>".
        title: one line saying what the change does.
        kind: "edit" (exact replacements) or "param" (module-level assignments).
        requires: text that must be present in the source for the recipe to apply.
        forbids: text that must be absent (typically: the change is already made).
        edits: the replacements of an "edit" recipe, applied in order.
        params: (NAME, value) pairs of a "param" recipe.
        notes: why the change should help (free text).
        needs: traits the target's suite must have for the change to pay off (e.g. "gqa"); the
            supervisor proposes it only then (`Evaluator.traits`).
        doc, section: where the recipe was found in the knowledge base ("" when built in code).
    """

    id: str
    title: str
    kind: str
    requires: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    notes: str = ""
    needs: tuple[str, ...] = ()
    doc: str = ""
    section: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise RecipeError(
                f"recipe id {self.id!r} must be a lowercase slug (letters, digits, '-', '_', '.')"
            )
        if not isinstance(self.title, str) or not self.title.strip() or "\n" in self.title:
            raise RecipeError(f"recipe {self.id!r}: 'title' must be one non-empty line")
        if self.kind not in KINDS:
            raise RecipeError(f"recipe {self.id!r}: 'kind' must be one of {KINDS} (got {self.kind!r})")
        if self.kind == "edit":
            _check_edits(self)
        else:
            _check_params(self)

    @property
    def hypothesis(self) -> str:
        """The submit hypothesis that names this recipe."""
        return f"recipe {self.id}: {self.title}"

    def check(self, source: str) -> str | None:
        """Why this recipe does not apply to `source`, or None when it does."""
        try:
            self.changes(source)
        except RecipeError as exc:
            return str(exc)
        return None

    def applies(self, source: str) -> bool:
        return self.check(source) is None

    def changes(self, source: str) -> list[Edit]:
        """The concrete replacements, in order, that turn `source` into `apply(source)`.

        Raises RecipeError naming the first precondition that fails.
        """
        for text in self.requires:
            if text not in source:
                raise RecipeError(f"recipe {self.id!r} does not apply: required text {text!r} is absent")
        for text in self.forbids:
            if text in source:
                raise RecipeError(f"recipe {self.id!r} does not apply: forbidden text {text!r} is present")
        if self.kind == "edit":
            return self._edit_changes(source)
        return self._param_changes(source)

    def apply(self, source: str) -> str:
        """The source with this recipe applied; raises RecipeError when a precondition fails."""
        for change in self.changes(source):
            source = source.replace(change.old, change.new, 1)
        return source

    def _edit_changes(self, source: str) -> list[Edit]:
        for i, edit in enumerate(self.edits, 1):
            count = source.count(edit.old)
            if count != 1:
                where = "is absent" if count == 0 else f"occurs {count} times"
                raise RecipeError(
                    f"recipe {self.id!r} does not apply: the text of edit {i} {where} "
                    f"(expected exactly once): {_head(edit.old)!r}"
                )
            source = source.replace(edit.old, edit.new, 1)
        return list(self.edits)

    def _param_changes(self, source: str) -> list[Edit]:
        changes = []
        for name, value in self.params:
            line, start, end = _param_line(self.id, source, name)
            current, text = line[start:end], _format_value(value)
            if current == text:
                continue  # already set; the recipe applies if another parameter changes
            choices = _CHOICES.search(line)
            if choices and text not in choices.group(1).split():
                raise RecipeError(
                    f"recipe {self.id!r} does not apply: {name} = {text} is not among the "
                    f"marked choices {choices.group(1).split()}"
                )
            new_line = line[:start] + text + line[end:]
            changes.append(Edit(old=line, new=new_line))
            source = source.replace(line, new_line, 1)
        if not changes:
            settings = ", ".join(f"{n} = {_format_value(v)}" for n, v in self.params)
            raise RecipeError(f"recipe {self.id!r} does not apply: the source already has {settings}")
        return changes


def _head(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= 80 else first[:77] + "..."


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _param_line(recipe_id: str, source: str, name: str) -> tuple[str, int, int]:
    """The one line `NAME = value  # ...` (or C++ `constexpr T NAME = value;  // ...`) of `source`,
    and where its value starts and ends."""
    python = re.compile(
        rf"^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]+)?=(?!=)[ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#.*)?$",
        re.MULTILINE,
    )
    cxx = re.compile(
        rf"{_CXX_CONSTANT}{re.escape(name)}[ \t]*=[ \t]*(?P<value>[^;\n]*?)[ \t]*;[ \t]*(?://.*)?$",
        re.MULTILINE,
    )
    matches = [*python.finditer(source), *cxx.finditer(source)]
    if len(matches) != 1 or not matches[0].group("value"):
        found = "no" if not matches else f"{len(matches)}"
        raise RecipeError(
            f"recipe {recipe_id!r} does not apply: {found} lines assign {name} "
            f"(expected exactly one line like `{name} = value  # evo: choices ...` or "
            f"`constexpr int {name} = value;  // evo: choices ...`)"
        )
    match = matches[0]
    return match.group(0), match.start("value") - match.start(), match.end("value") - match.start()


def _check_edits(recipe: Recipe) -> None:
    if recipe.params:
        raise RecipeError(f"recipe {recipe.id!r}: an 'edit' recipe takes [[edits]], not [params]")
    if not recipe.edits:
        raise RecipeError(f"recipe {recipe.id!r}: an 'edit' recipe needs at least one [[edits]] entry")
    for i, edit in enumerate(recipe.edits, 1):
        if not isinstance(edit, Edit) or not isinstance(edit.old, str) or not isinstance(edit.new, str):
            raise RecipeError(f"recipe {recipe.id!r}: edit {i} needs string 'old' and 'new'")
        if not edit.old.strip():
            raise RecipeError(f"recipe {recipe.id!r}: edit {i} has an empty 'old' text")
        if edit.old == edit.new:
            raise RecipeError(f"recipe {recipe.id!r}: edit {i} has 'new' equal to 'old'")


def _check_params(recipe: Recipe) -> None:
    if recipe.edits:
        raise RecipeError(f"recipe {recipe.id!r}: a 'param' recipe takes [params], not [[edits]]")
    if not recipe.params:
        raise RecipeError(f"recipe {recipe.id!r}: a 'param' recipe needs a non-empty [params] table")
    for name, value in recipe.params:
        if not _NAME.match(name):
            raise RecipeError(f"recipe {recipe.id!r}: parameter name {name!r} is not a Python name")
        if not isinstance(value, (int, float, str)) or (isinstance(value, str) and not value.strip()):
            raise RecipeError(
                f"recipe {recipe.id!r}: parameter {name} must be an int, float, bool or non-empty "
                f"string (got {value!r})"
            )


def parse_recipe(text: str, *, doc: str = "", section: str = "") -> Recipe:
    """Parses the TOML body of one recipe block; raises RecipeError naming what is wrong."""
    where = f" in {doc}#{section}" if doc else ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe block{where} is not valid TOML: {exc}") from None
    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {_KEYS}"
            raise RecipeError(f"unknown key {key!r} in recipe block{where}{hint}")
    for key in ("id", "title", "kind"):
        if key not in data:
            raise RecipeError(f"recipe block{where} is missing the key {key!r}")
    return Recipe(
        id=data["id"],
        title=data["title"],
        kind=data["kind"],
        requires=_strings(data, "requires", where),
        forbids=_strings(data, "forbids", where),
        edits=tuple(_edit(e, i, where) for i, e in enumerate(data.get("edits", []), 1)),
        params=tuple(_params(data.get("params", {}), where).items()),
        notes=str(data.get("notes", "")),
        needs=_strings(data, "needs", where),
        doc=doc,
        section=section,
    )


def _strings(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RecipeError(f"'{key}' in recipe block{where} must be a list of non-empty strings")
    return tuple(value)


def _edit(entry: Any, i: int, where: str) -> Edit:
    if not isinstance(entry, dict) or set(entry) != {"old", "new"}:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise RecipeError(f"edit {i} in recipe block{where} must have exactly 'old' and 'new' (got {keys})")
    return Edit(old=entry["old"], new=entry["new"])


def _params(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise RecipeError(f"'params' in recipe block{where} must be a table of NAME = value")
    return dict(table)


def find_recipe_blocks(markdown: str) -> list[str]:
    """The TOML bodies of the ```recipe fenced blocks of a markdown text, in order."""
    return [m.group(1) for m in _FENCE.finditer(markdown)]


def strip_recipe_blocks(markdown: str) -> str:
    """The markdown without its recipe blocks (for indexing prose only)."""
    return _FENCE.sub("", markdown)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkedParam:
    """A module-level `NAME = value  # evo: choices a b c` line of a source."""

    name: str
    value: str
    choices: tuple[str, ...] = field(default_factory=tuple)


_MARKED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::[^=\n]+)?=[ \t]*(?P<value>[^#\n]*?)[ \t]*"
    r"#\s*evo:\s*choices\s+(?P<choices>[^#\n]+)$",
    re.MULTILINE,
)
_MARKED_CXX = re.compile(
    _CXX_CONSTANT + r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(?P<value>[^;\n]*?)[ \t]*;[ \t]*"
    r"//\s*evo:\s*choices\s+(?P<choices>[^#\n]+?)[ \t]*$",
    re.MULTILINE,
)


def marked_params(source: str) -> list[MarkedParam]:
    """The parameters a source marks with `# evo: choices ...` (Python) or `// evo: choices ...` (a C++
    `constexpr` line, as in a CUDA candidate's CUDA_SOURCE), in source order."""
    found = sorted([*_MARKED.finditer(source), *_MARKED_CXX.finditer(source)], key=lambda m: m.start())
    return [MarkedParam(name=m["name"], value=m["value"].strip(), choices=tuple(m["choices"].split())) for m in found]


def param_recipe(name: str, value: str) -> Recipe:
    """A one-parameter recipe (as a heuristic's move): set NAME to the given source text."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", f"param-{name.lower()}-{value.lower()}").strip("-")
    return Recipe(id=slug, title=f"set {name} = {value}", kind="param", params=((name, value),))
