"""ParameterMutation: the classical baseline operator; mutates parameters a source marks with `# evo:`.

A marked line assigns one literal and says which values it may take:

    BLOCK_M = 64          # evo: choices 32 64 128
    SCALE = 0.5           # evo: range 0.1 0.9
    ROWS = 5              # evo: range 3 8 step 1

`choices` lists values; `range LO HI` draws uniformly (integers stay integers), optionally on a
`step` grid. Each step changes one to `max_changes` parameters of the parent.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .base import Proposal, VariationContext, VariationOperator

_MARKED = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Za-z_]\w*)\s*(?::\s*[\w\[\], ]+)?=\s*(?P<value>[^#\n]+?)\s*"
                     r"#\s*evo:\s*(?P<spec>.+?)\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    """One marked parameter: where it is and which values it may take."""

    file: str
    line: int  # 0-based line index
    name: str
    value: Any
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def draw(self, rng: Any) -> Any:
        if self.choices:
            others = [c for c in self.choices if c != self.value] or list(self.choices)
            return rng.choice(others)
        value = self.value
        for _ in range(16):  # a draw equal to the current value changes nothing: draw again
            value = self._draw_in_range(rng)
            if value != self.value:
                break
        return value

    def _draw_in_range(self, rng: Any) -> Any:
        assert self.low is not None and self.high is not None  # Check internal correctness.
        if self.step:
            count = int(round((self.high - self.low) / self.step))
            value = self.low + self.step * rng.randint(0, count)
        else:
            value = rng.uniform(self.low, self.high)
        if isinstance(self.value, int) and float(value).is_integer():
            return int(value)
        return round(value, 6)


def _literal(text: str, where: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ConfigError(f"{where}: marked value {text.strip()!r} must be a Python literal") from None


def find_parameters(files: dict[str, str] | Any) -> list[Parameter]:
    """Every `# evo:` marked parameter in the candidate's files."""
    found = []
    for name, text in files.items():
        for index, line in enumerate(text.splitlines()):
            match = _MARKED.match(line)
            if match is None:
                continue
            where = f"{name}:{index + 1}"
            spec = match["spec"].split()
            value = _literal(match["value"], where)
            if spec[0] == "choices" and len(spec) > 1:
                found.append(Parameter(file=name, line=index, name=match["name"], value=value,
                                       choices=tuple(_literal(v, where) for v in spec[1:])))
            elif spec[0] == "range" and len(spec) in (3, 5) and (len(spec) == 3 or spec[3] == "step"):
                low, high = float(_literal(spec[1], where)), float(_literal(spec[2], where))
                step = float(_literal(spec[4], where)) if len(spec) == 5 else None
                if not low < high:
                    raise ConfigError(f"{where}: range needs LO < HI (got {spec[1]} {spec[2]})")
                found.append(Parameter(file=name, line=index, name=match["name"], value=value,
                                       low=low, high=high, step=step))
            else:
                raise ConfigError(f"{where}: cannot read '# evo: {match['spec']}'; expected "
                                  "'choices A B C' or 'range LO HI [step S]'")
    return found


def set_parameter(text: str, param: Parameter, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    line = lines[param.line]
    match = _MARKED.match(line.rstrip("\n"))
    assert match is not None  # Check internal correctness.
    start, end = match.span("value")
    lines[param.line] = line[:start] + repr(value) + line[end:]
    return "".join(lines)


class ParameterMutation(VariationOperator):
    """Changes 1..max_changes marked parameters of the parent; retries to avoid already-seen versions."""

    name = "parameter_mutation"

    def __init__(self, *, max_changes: int = 2, attempts: int = 20) -> None:
        if max_changes < 1:
            raise ConfigError(f"ParameterMutation max_changes must be >= 1 (got {max_changes!r})")
        self.max_changes = max_changes
        self.attempts = attempts

    def vary(self, context: VariationContext) -> Proposal:
        params = find_parameters(context.parent.files)
        if not params:
            return Proposal(candidate=None, reason="the parent has no '# evo:' marked parameters to mutate")
        for _ in range(self.attempts):
            chosen = context.rng.sample(params, context.rng.randint(1, min(self.max_changes, len(params))))
            files = dict(context.parent.files)
            changes = []
            for p in sorted(chosen, key=lambda p: (p.file, p.line)):
                new = p.draw(context.rng)
                files[p.file] = set_parameter(files[p.file], p, new)
                changes.append(f"{p.name} {p.value!r} -> {new!r}")
            hypothesis = "set " + ", ".join(changes)
            child = context.parent.with_files(files, hypothesis=hypothesis, metadata={"operator": self.name})
            if child.id != context.parent.id and context.get(child.id) is None:
                return Proposal(candidate=child, hypothesis=hypothesis)
        return Proposal(candidate=None, reason=f"no unseen mutation found in {self.attempts} attempts")

    def spec(self) -> dict[str, Any]:
        return {"class": "evoagent.operators.mutation:ParameterMutation",
                "params": {"max_changes": self.max_changes, "attempts": self.attempts}}
