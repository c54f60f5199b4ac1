"""HeuristicPolicy: an offline LLM backend that applies knowledge-base recipes through the agent's tools."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..candidate import fingerprint
from ..formatting import plural
from ..knowledge.recipes import Edit, Recipe, RecipeError, marked_params, param_recipe
from ..records import Usage
from ..services import Knowledge
from ..tables import file_text
from .base import Block, LLMResponse, Message

_NAMED = re.compile(r"\brecipe ([a-z0-9][a-z0-9._-]*):")  # how hypotheses name a recipe
_ENTRY = re.compile(r"\bentry ([^\s;,]+?)\.?(?:\s|$)")
_STEP = re.compile(r"^## Variation step \d+ \(trial (\d+)\)", re.MULTILINE)
_NO_TOOL = "You called no tool"


@dataclass(kw_only=True)
class _Step:
    """What the policy is doing in one variation step (found again through its tool_use ids)."""

    trial: str
    entry: str
    original: str | None = None  # the entry file as read at the start of the step
    move: Recipe | None = None
    pending: list[Edit] = field(default_factory=list)  # edits of `move` still to send
    attempts: int = 0


class HeuristicPolicy:
    """An offline backend of the LLM protocol: it drives the agent's tools with knowledge-base recipes.

    Each variation step it calls `lineage`, reads the entry file, picks the first untried move that
    applies to the file (a recipe of the knowledge base, else a change of one `# evo: choices`
    parameter, else a pair of them), applies it with `edit_file`, runs `compile` and `test`, reverts
    with `write_file` and tries the next move when either fails, and submits with the hypothesis
    "recipe <id>: <title>" (answering the operator's critique request by submitting again).

    A move is untried when no earlier hypothesis visible in the conversation (submissions, lineage,
    summaries) names it and this policy has not attempted it; once every move was tried, moves not
    yet tried on the current version are tried again (the version changed since). A move whose
    result is a version this policy already read or made (the same normalised AST) is never tried:
    it would only be a duplicate. The order of moves is fixed for a seed: recipes before parameter
    moves, each position jittered by a hash of (seed, move id).

    It is not a model and says so: a step it ends without a submission ends with its own reason
    (stop reason 'end_step'), and when no move is left for the version it starts from it answers
    'exhausted' with "the offline policy has nothing more to try for this target: N parameters,
    M recipes tried", which ends the run.
    Requests without tools (summaries, supervisor questions) get an empty answer, so callers use
    their deterministic fallbacks. Usage is zero: no tokens, no cost.

    Args:
        knowledge: a KnowledgeBase whose recipes are the moves (None: the built-in documents).
        seed: perturbs the order of moves.
        max_attempts: moves tried per step before giving up on the step.
    """

    name = "heuristic"

    def __init__(self, knowledge: Knowledge | None = None, seed: int = 0, *, max_attempts: int = 4) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"HeuristicPolicy seed must be an int (got {seed!r})")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"HeuristicPolicy max_attempts must be a positive int (got {max_attempts!r})")
        self._knowledge = knowledge
        self.seed = seed
        self.max_attempts = max_attempts
        self._calls: dict[str, tuple[_Step, str]] = {}  # tool_use id -> (step, tool name)
        self._tried: set[str] = set()
        self._tried_on: dict[str, set[str]] = {}  # source hash -> moves tried on that version
        self._done_trials: set[str] = set()
        self._versions: set[str] = set()  # fingerprints of the entry files read or made: never made again
        self._ids = itertools.count(1)
        self._scan = _NameScan()
        self._current_trial = ""

    def describe(self) -> str:
        """One line for the start of a run."""
        return "offline HeuristicPolicy (knowledge-base recipes, no API calls)"

    def __repr__(self) -> str:
        return f"HeuristicPolicy(seed={self.seed}, max_attempts={self.max_attempts})"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "max_attempts": self.max_attempts}

    @property
    def knowledge(self) -> Knowledge:
        if self._knowledge is None:
            from ..knowledge import KnowledgeBase

            self._knowledge = KnowledgeBase()
        return self._knowledge

    # -- the protocol ----------------------------------------------------------------------------

    def complete(self, *, system: str | Sequence[Block], messages: Sequence[Message],
                 tools: Sequence[Mapping[str, Any]] = (), max_tokens: int | None = None) -> LLMResponse:
        """The next assistant turn for this conversation."""
        if not tools:
            return _reply([_text("")], "end_turn")
        names = {t.get("name") for t in tools}
        last = _last_user_texts(messages)
        opening = next((t for t in last if _STEP.search(t)), None)
        result = _newest_result(messages)
        if opening is None and result is not None and result.get("tool_use_id") in self._calls:
            step, tool = self._calls.pop(str(result["tool_use_id"]))
            return self._advance(step, tool, _result_text(result), bool(result.get("is_error")), messages, names)
        trial = _trial_of(opening) if opening is not None else self._current_trial
        if opening is None and (any(t.startswith(_NO_TOOL) for t in last) or trial in self._done_trials):
            return _reply([_text("No untried move applies to this version; ending the step without a submission.")],
                          "end_turn")
        self._calls.clear()  # a new step: calls of earlier steps can no longer be answered
        self._current_trial = trial
        step = _Step(trial=trial, entry=_entry_of(opening or ""))
        if "lineage" in names:
            return self._call(step, "lineage", {}, "Reading the lineage to see which recipes were tried.")
        return self._read(step)

    def moves(self, source: str, tried: set[str] | frozenset[str] = frozenset()) -> list[Recipe]:
        """The untried moves that apply to `source`, in this policy's order (first is next)."""
        recipes = [r for r in self.knowledge.recipes() if r.id not in tried]
        params = marked_params(source)
        singles = [param_recipe(p.name, c) for p in params for c in p.choices if c != p.value]
        ordered = self._order(recipes) + self._order([r for r in singles if r.id not in tried])
        found = [r for r in ordered if r.applies(source)]
        if found:
            return found
        return [r for r in self._order(_pairs(singles)) if r.id not in tried and r.applies(source)]

    # -- steps -----------------------------------------------------------------------------------

    def _advance(self, step: _Step, tool: str, text: str, is_error: bool, messages: Sequence[Message],
                 names: set[Any]) -> LLMResponse:
        if tool == "lineage":
            return self._read(step)
        if tool == "read_file":
            if is_error:
                return self._give_up(step, f"could not read {step.entry}: {text[:200]}")
            step.original = file_text(text)
            self._versions.add(_print(step.entry, step.original))
            return self._next_move(step, messages)
        if tool == "edit_file":
            if is_error:
                return self._revert(step, f"the edit of recipe {_id(step)} did not apply: {text[:200]}")
            return self._send_edit(step) if step.pending else self._evaluate(step, "compile", names)
        if tool == "write_file":
            return self._next_move(step, messages)
        if tool in ("compile", "test"):
            status = _status(text)
            if "budget_overrun" in status:
                return self._give_up(step, "the exploratory evaluation budget of this step is spent")
            if status == "harness_error":  # the evaluator failed, not the move: the authoritative run records why
                return self._submit(step, f"The {tool} stage failed in the evaluator itself, not in this move; "
                                          "submitting so that the run records the evaluator's error.")
            if status != "ok":
                return self._revert(step, f"{tool} of recipe {_id(step)} ended {status or 'in an error'}")
            if tool == "compile":
                return self._evaluate(step, "test", names)
            return self._submit(step, "Tests pass; submitting.")
        if tool == "submit":
            if text.startswith("submitted"):
                return _reply([_text(f"Submitted recipe {_id(step)}.")], "end_turn")
            if text.startswith("critique requested") and not is_error:
                return self._submit(step, "Critique: the diff is exactly the recipe's edit, every output element is "
                                          "still written and the version passed the test stage; submitting again.")
            return self._revert(step, f"submit was refused: {text[:200]}")
        return self._give_up(step, f"unexpected result of {tool}")

    def _read(self, step: _Step) -> LLMResponse:
        return self._call(step, "read_file", {"path": step.entry}, f"Reading {step.entry}.")

    def _next_move(self, step: _Step, messages: Sequence[Message]) -> LLMResponse:
        assert step.original is not None  # Check internal correctness.
        if step.attempts >= self.max_attempts:
            return self._give_up(step, f"{plural(step.attempts, 'move')} failed their compile or test in this step")
        here = self._tried_on.setdefault(hashlib.sha256(step.original.encode()).hexdigest(), set())
        move = self._fresh(step, self.moves(step.original, self._tried | self._scan.named(messages)))
        if move is None:  # everything was tried somewhere: retry what was not tried on this version
            move = self._fresh(step, self.moves(step.original, here))
        if move is None:
            if step.attempts:
                return self._give_up(step, f"the {plural(step.attempts, 'move')} left for this version failed")
            return self._exhausted(step)
        step.move, step.attempts = move, step.attempts + 1
        self._tried.add(step.move.id)
        here.add(step.move.id)
        self._versions.add(_print(step.entry, step.move.apply(step.original)))
        try:
            step.pending = step.move.changes(step.original)
        except RecipeError:  # cannot happen after applies(); count it as tried and move on
            return self._next_move(step, messages)
        return self._send_edit(step, intro=f"Trying recipe {step.move.id}: {step.move.title}.")

    def _send_edit(self, step: _Step, intro: str = "") -> LLMResponse:
        edit = step.pending.pop(0)
        return self._call(step, "edit_file", {"path": step.entry, "old": edit.old, "new": edit.new},
                          intro or f"Next edit of recipe {_id(step)}.")

    def _evaluate(self, step: _Step, tool: str, names: set[Any]) -> LLMResponse:
        if tool not in names:
            return self._submit(step, f"No {tool} tool; submitting.")
        return self._call(step, tool, {}, f"Running {tool}.")

    def _submit(self, step: _Step, note: str) -> LLMResponse:
        assert step.move is not None  # Check internal correctness.
        return self._call(step, "submit", {"hypothesis": step.move.hypothesis}, note)

    def _revert(self, step: _Step, why: str) -> LLMResponse:
        assert step.original is not None  # Check internal correctness.
        step.pending = []
        return self._call(step, "write_file", {"path": step.entry, "content": step.original},
                          f"{why}; restoring {step.entry} and trying the next recipe.")

    def _fresh(self, step: _Step, moves: list[Recipe]) -> Recipe | None:
        """The first move whose result is a version not read or made before (a repeat would be a duplicate)."""
        assert step.original is not None  # Check internal correctness.
        for move in moves:
            try:
                made = move.apply(step.original)
            except RecipeError:
                continue
            if _print(step.entry, made) not in self._versions:
                return move
        return None

    def _give_up(self, step: _Step, why: str) -> LLMResponse:
        if step.trial:
            self._done_trials.add(step.trial)
        return _reply([_text(f"the offline policy ended this step without a submission: {why}")], "end_step")

    def _exhausted(self, step: _Step) -> LLMResponse:
        """The run's end: no recipe or parameter move gives a new version of this one."""
        if step.trial:
            self._done_trials.add(step.trial)
        assert step.original is not None  # Check internal correctness.
        params = len(marked_params(step.original))
        recipes = sum(1 for move_id in self._tried if not move_id.startswith("param-"))
        values = plural(len(self._tried) - recipes, "parameter value")
        return _reply([_text(f"the offline policy has nothing more to try for this target: "
                             f"{plural(params, 'parameter')}, {plural(recipes, 'recipe')} tried ({values} tried; "
                             "every other move gives a version already evaluated)")], "exhausted")

    def _call(self, step: _Step, tool: str, tool_input: dict[str, Any], note: str) -> LLMResponse:
        use_id = f"toolu_heuristic_{self.seed}_{next(self._ids):06d}"
        self._calls[use_id] = (step, tool)
        block = {"type": "tool_use", "id": use_id, "name": tool, "input": tool_input}
        return _reply([_text(note), block], "tool_use")

    def _order(self, recipes: Sequence[Recipe]) -> list[Recipe]:
        """A seeded, history-independent shuffle that keeps each recipe near its listed position."""
        def key(item: tuple[int, Recipe]) -> float:
            digest = hashlib.sha256(f"{self.seed}:{item[1].id}".encode()).digest()
            return item[0] + 3.0 * int.from_bytes(digest[:8], "big") / 2**64
        return [r for _, r in sorted(enumerate(recipes), key=key)]


def _print(entry: str, source: str) -> str:
    return fingerprint({entry: source})


def _pairs(singles: Sequence[Recipe]) -> list[Recipe]:
    """Two-parameter moves (different parameters) for when every single move was tried."""
    pairs = []
    for a, b in itertools.combinations(singles, 2):
        (name_a, value_a), (name_b, value_b) = a.params[0], b.params[0]
        if name_a == name_b:
            continue
        pairs.append(Recipe(id=f"{a.id}--{b.id[len('param-'):]}", kind="param",
                            title=f"set {name_a} = {value_a} and {name_b} = {value_b}",
                            params=((name_a, value_a), (name_b, value_b))))
    return pairs


def _id(step: _Step) -> str:
    return step.move.id if step.move is not None else "-"


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _reply(content: list[Block], stop_reason: str) -> LLMResponse:
    return LLMResponse(content=content, stop_reason=stop_reason, usage=Usage(), model="heuristic")


def _blocks(message: Message) -> list[Mapping[str, Any]]:
    content = message.get("content", "")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, Mapping)]


def _newest_result(messages: Sequence[Message]) -> Mapping[str, Any] | None:
    """The last tool_result of the last user message, if it has any."""
    if not messages or messages[-1].get("role") != "user":
        return None
    results = [b for b in _blocks(messages[-1]) if b.get("type") == "tool_result"]
    return results[-1] if results else None


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, Mapping))
    return str(content)


def _last_user_texts(messages: Sequence[Message]) -> list[str]:
    """The text blocks of the last message when it is the user's."""
    if not messages or messages[-1].get("role") != "user":
        return []
    return [str(b.get("text", "")) for b in _blocks(messages[-1]) if b.get("type") == "text"]


def _texts(message: Message) -> list[str]:
    """Every text a message shows: text blocks, tool results, and submitted hypotheses."""
    texts = []
    for block in _blocks(message):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_result":
            texts.append(_result_text(block))
        elif kind == "tool_use" and isinstance(block.get("input"), Mapping):
            texts.append(str(block["input"].get("hypothesis", "")))
    return texts


class _NameScan:
    """Recipe ids named as `recipe <id>:` in a conversation, scanning only what is new since last time.

    The operator appends messages (and extends its last user message), or replaces older ones with
    a summary when it compacts; a changed first message means a rescan.
    """

    def __init__(self) -> None:
        self._first: int | None = None
        self._count = 0
        self._names: set[str] = set()

    def named(self, messages: Sequence[Message]) -> set[str]:
        if not messages:
            return set()
        if id(messages[0]) != self._first or len(messages) < self._count:
            self._first, self._count, self._names = id(messages[0]), 0, set()
        start = max(self._count - 1, 0)  # the last message seen may have grown since
        for message in messages[start:]:
            for text in _texts(message):
                self._names.update(m.group(1) for m in _NAMED.finditer(text))
        self._count = len(messages)
        return set(self._names)


def _trial_of(opening: str) -> str:
    found = _STEP.search(opening)
    return found.group(1) if found else ""


def _entry_of(opening: str) -> str:
    """The entry file the step opening names ('kernel.py' when it names none)."""
    for line in opening.splitlines():
        if "workspace" in line and "entry" in line:
            found = _ENTRY.search(line)
            if found:
                return found.group(1)
    return "kernel.py"


def _status(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.removeprefix("status:").strip() if first.startswith("status:") else ""
