"""KnowledgeBase: markdown documents split into sections, ranked for a query with BM25 (see ranking.py)."""

from __future__ import annotations

import ast
import copy
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError, EvoagentError
from .ranking import BuiltinIndex
from .ranking import tokenize as _tokenize
from .recipes import Recipe, RecipeError, find_recipe_blocks, parse_recipe, strip_recipe_blocks

BUILTIN_DIR = Path(__file__).parent / "docs"
LESSONS_DOC = "lessons"
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t]*$", re.MULTILINE)
_FENCE_LINE = re.compile(r"^(```|~~~)")
_SNIPPET_CHARS = 240


class KnowledgeError(EvoagentError, LookupError):
    """A document or section asked for does not exist; the message lists what does."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """One `##` section of a document (the text before the first `##` is the `overview`)."""

    doc: str
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One markdown document: its name (file stem), title (first `#` heading) and sections."""

    name: str
    title: str
    text: str
    sections: tuple[Section, ...]
    path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """One ranked search result; `read(doc, section)` returns its full text."""

    doc: str
    section: str
    title: str
    score: float
    snippet: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Lesson:
    """A one-line lesson a run stored after a trial (what was tried, its label, the score delta)."""

    run: str
    trial_id: int
    text: str


def slugify(text: str) -> str:
    """A lowercase id for a heading: 'Skip fully masked blocks' -> 'skip-fully-masked-blocks'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _light_stem(word: str) -> str:
    """Folds common English inflections so 'masked', 'masking' and 'mask' meet (no ranking here)."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Words of two or more characters, lowercased, English stopwords dropped, lightly stemmed."""
    return _tokenize(texts, _light_stem)


def split_sections(name: str, text: str) -> tuple[str, tuple[Section, ...]]:
    """The title (first `#` heading) and `##` sections of a markdown text, ignoring code fences."""
    title, title_span = name, (0, 0)
    starts: list[tuple[int, int, str]] = []  # (heading start, body start, heading text)
    in_fence, offset = False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE_LINE.match(line):
            in_fence = not in_fence
        elif not in_fence and (found := _HEADING.match(line)):
            starts.append((offset, offset + len(line), found.group(1)))
        elif not in_fence and not starts and title_span == (0, 0) and (found := _TITLE.match(line)):
            title, title_span = found.group(1), (offset, offset + len(line))
        offset += len(line)
    first = starts[0][0] if starts else len(text)
    preamble = text[:title_span[0]] + text[title_span[1]:first]
    sections: list[Section] = []
    seen: set[str] = set()
    if preamble.strip():
        sections.append(Section(doc=name, id="overview", title=title, text=preamble.strip()))
        seen.add("overview")
    for i, (_, body_start, heading) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        sid, n = slugify(heading), 2
        while sid in seen:
            sid, n = f"{slugify(heading)}-{n}", n + 1
        seen.add(sid)
        sections.append(Section(doc=name, id=sid, title=heading, text=text[body_start:end].strip()))
    return title, tuple(sections)


def load_document(path: str | os.PathLike[str]) -> Document:
    """Reads one markdown file into a Document named after its stem."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    title, sections = split_sections(path.stem, text)
    return Document(name=path.stem, title=title, text=text, sections=sections, path=str(path))


# The attention target's seed kernels, read as reference documents (by path: knowledge imports no target).
SEED_DIR = Path(__file__).resolve().parent.parent / "targets" / "attention" / "kernels"


def seed_document(path: str | os.PathLike[str]) -> Document:
    """A seed kernel file as a reference document `seed-<name>`: its docstring, then one section per
    top-level function or class (decorators included), as Python code."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    intro = ast.get_docstring(tree) or ""
    parts = [f"# Seed kernel {path.name} (a reference design shipped with evoagent)\n\n{intro}\n"]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            code = "\n".join(lines[start - 1:node.end_lineno])
            parts.append(f"## {node.name} (lines {start}-{node.end_lineno})\n```python\n{code}\n```\n")
    name = "seed-" + path.stem.replace("_", "-")
    text = "\n".join(parts)
    title, sections = split_sections(name, text)
    return Document(name=name, title=title, text=text, sections=sections, path=str(path))


@lru_cache(maxsize=1)
def _builtin_documents() -> tuple[Document, ...]:
    docs = [load_document(p) for p in sorted(BUILTIN_DIR.glob("*.md"))]
    return tuple(docs + [seed_document(p) for p in sorted(SEED_DIR.glob("*.py")) if p.stem != "__init__"])


def _user_documents(paths: Iterable[str | os.PathLike[str]]) -> list[Document]:
    docs: list[Document] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(path.rglob("*.md"))
            if not files:
                raise ConfigError(f"knowledge folder '{path}' holds no .md files; expected markdown documents")
        elif path.is_file() and path.suffix == ".md":
            files = [path]
        else:
            raise ConfigError(
                f"knowledge path '{path}' is not a folder or a .md file; "
                "expected a folder of markdown documents or one .md file"
            )
        docs.extend(load_document(f) for f in files)
    return docs


def _lesson_section(lesson: Lesson, taken: set[str]) -> Section:
    """The section of one lesson; its id is unique among `taken` (which it joins)."""
    base = slugify(f"{lesson.run}-{lesson.trial_id}")
    sid, n = base, 2
    while sid in taken:
        sid, n = f"{base}-{n}", n + 1
    taken.add(sid)
    title = f"run {lesson.run}, trial {lesson.trial_id}"
    return Section(doc=LESSONS_DOC, id=sid, title=title, text=lesson.text.strip())


def _lessons_document(sections: Sequence[Section]) -> Document:
    text = "# Lessons\n\n" + "\n\n".join(f"## {s.title}\n\n{s.text}" for s in sections) + "\n"
    return Document(name=LESSONS_DOC, title=_LESSONS_TITLE, text=text, sections=tuple(sections))


_LESSONS_TITLE = "Lessons from trials"
_LESSONS_HEAD = Document(name=LESSONS_DOC, title=_LESSONS_TITLE, text="", sections=())


class _SharedIndex:
    """One growing BM25 index over the documents' sections and then lessons' sections, shared by copies.

    A knowledge base and the copies `with_lessons` makes share it: a copy whose lessons extend the ones
    indexed so far adds only the new ones, and ranks just the first documents + its own lessons, so a
    search costs the same whatever the number of lessons other copies added.
    """

    def __init__(self, doc_sections: list[Section], doc_tokens: list[list[str]]) -> None:
        self._lock = threading.Lock()
        self.index = BuiltinIndex(doc_tokens)
        self._doc_sections = doc_sections
        self._lessons: list[Lesson] = []
        self._sections: list[Section] = []  # of the lessons, in their order
        self._taken: set[str] = set()
        self._position: dict[str, int] = {}  # lesson section id -> its position among the lessons

    def extend(self, lessons: tuple[Lesson, ...]) -> bool:
        """Indexes what `lessons` add to the lessons indexed; False if they are not an extension of those."""
        with self._lock:
            n = min(len(lessons), len(self._lessons))
            if tuple(self._lessons[:n]) != lessons[:n]:
                return False
            for lesson in lessons[n:]:
                section = _lesson_section(lesson, self._taken)
                self._position[section.id] = len(self._lessons)
                self._lessons.append(lesson)
                self._sections.append(section)
                self.index.add(tokenize([_index_text(_LESSONS_HEAD, section)])[0])
            return True

    def section(self, i: int) -> Section:
        """The i-th indexed section: the documents' first, then the lessons'."""
        docs = len(self._doc_sections)
        return self._doc_sections[i] if i < docs else self._sections[i - docs]

    def lesson_sections(self, count: int) -> list[Section]:
        return self._sections[:count]

    def lesson_section(self, section_id: str, count: int) -> Section | None:
        """The section with this id among the first `count` lessons (None if it is not there)."""
        at = self._position.get(section_id)
        return self._sections[at] if at is not None and at < count else None


class KnowledgeBase:
    """Markdown documents, their sections ranked for a query, and the recipes they carry.

    Args:
        paths: user folders (every `*.md` below them) or single `.md` files. A user document with
            the name (file stem) of a built-in one replaces it; two user documents with one name
            are an error.
        builtin: include the built-in attention documents.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]] = (), builtin: bool = True) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        user = _user_documents(paths)
        names: dict[str, str] = {}
        for doc in user:
            if doc.name in names or doc.name == LESSONS_DOC:
                other = names.get(doc.name, "the run's lessons")
                raise ConfigError(
                    f"knowledge document name '{doc.name}' is used twice ({other} and {doc.path}); "
                    "rename one of the files"
                )
            names[doc.name] = doc.path
        docs = [d for d in (_builtin_documents() if builtin else ()) if d.name not in names]
        self._init(tuple(docs + user))

    def _init(self, docs: tuple[Document, ...]) -> None:
        self._docs = {d.name: d for d in docs}
        self._doc_sections = [s for d in docs for s in d.sections]
        self._recipes = _collect_recipes(docs)  # first: a malformed recipe is a ConfigError naming its file
        self._doc_tokens = tokenize([_index_text(self._docs[s.doc], s) for s in self._doc_sections])
        self._shared = _SharedIndex(self._doc_sections, self._doc_tokens)  # shared by copies (with_lessons)
        self._set_lessons(())

    def _set_lessons(self, lessons: Sequence[Lesson]) -> None:
        self._lessons = tuple(lessons)
        self._lessons_doc: Document | None = None  # built when first read whole
        self._indexed = False  # the lessons are in self._shared

    def with_lessons(self, lessons: Sequence[Lesson]) -> KnowledgeBase:
        """A copy whose `lessons` document holds these lessons (replacing any it had).

        Cheap at any number of lessons: the copy shares this knowledge base's index, and when its
        lessons extend the ones indexed, its first search indexes only the new ones (each lesson is
        tokenized once); other lessons get an index of their own at the copy's first search.
        """
        other = copy.copy(self)
        other._set_lessons(lessons)
        return other

    def _lesson_sections(self) -> list[Section]:
        """The lessons' sections, from the shared index when they are in it."""
        if self._indexed:
            return self._shared.lesson_sections(len(self._lessons))
        taken: set[str] = set()
        return [_lesson_section(lesson, taken) for lesson in self._lessons]

    def _lessons_document(self) -> Document | None:
        if self._lessons and self._lessons_doc is None:
            self._lessons_doc = _lessons_document(self._lesson_sections())
        return self._lessons_doc

    def _ranking(self) -> _SharedIndex:
        """The shared index, holding this copy's lessons (a new one when they are not an extension of its)."""
        if not self._indexed:
            if not self._shared.extend(self._lessons):
                self._shared = _SharedIndex(self._doc_sections, self._doc_tokens)
                self._shared.extend(self._lessons)
            self._indexed = True
        return self._shared

    @property
    def lessons(self) -> tuple[Lesson, ...]:
        """The lessons this knowledge base holds (see `with_lessons`)."""
        return self._lessons

    @property
    def documents(self) -> list[Document]:
        lessons = self._lessons_document()
        return [*self._docs.values(), *((lessons,) if lessons else ())]

    def __len__(self) -> int:
        """The number of sections."""
        return len(self._doc_sections) + len(self._lessons)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` sections that best match `query`, best first; no hit scores zero."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        tokens = tokenize([query])
        if not tokens[0] or not len(self):
            return []
        shared = self._ranking()
        terms = set(tokens[0])
        hits = []
        for i, score in shared.index.top(tokens[0], k, size=len(self)):
            if score <= 0:
                continue
            s = shared.section(i)
            hits.append(
                Hit(doc=s.doc, section=s.id, title=s.title, score=round(float(score), 4),
                    snippet=_snippet(s.text, terms))
            )
        return hits

    def read(self, doc: str, section: str | None = None) -> str:
        """A whole document, or one section (by id or by heading, case-insensitive)."""
        if doc == LESSONS_DOC and section is not None and self._lessons:  # a search hit: no need for every lesson
            found = self._ranking().lesson_section(section.strip(), len(self._lessons))
            if found is not None:
                return f"## {found.title}\n\n{found.text}\n"
        document = self._docs.get(doc) or (self._lessons_document() if doc == LESSONS_DOC else None)
        if document is None:
            known = ", ".join(sorted(d.name for d in self.documents)) or "none"
            raise KnowledgeError(f"unknown knowledge document {doc!r}; known documents: {known}")
        if section is None or not section.strip():
            return document.text
        wanted = section.strip().lstrip("#").strip()
        for s in document.sections:
            if wanted == s.id or wanted.lower() == s.title.lower() or slugify(wanted) == s.id:
                level = "#" if s.id == "overview" else "##"
                return f"{level} {s.title}\n\n{s.text}\n"
        known = ", ".join(s.id for s in document.sections)
        raise KnowledgeError(f"unknown section {section!r} in document {doc!r}; its sections: {known}")

    def recipes(self) -> list[Recipe]:
        """Every recipe the documents carry, in document then section order."""
        return list(self._recipes)

    def recipe(self, recipe_id: str) -> Recipe:
        for r in self._recipes:
            if r.id == recipe_id:
                return r
        known = ", ".join(r.id for r in self._recipes) or "none"
        raise KnowledgeError(f"unknown recipe {recipe_id!r}; known recipes: {known}")


def _index_text(doc: Document, section: Section) -> str:
    recipes = " ".join(
        f"{r.id.replace('-', ' ')} {r.title}" for r in _section_recipes(section)
    )
    # Headings count twice: they say what a section is about better than its body does.
    body = strip_recipe_blocks(section.text)
    return f"{section.title}\n{section.title}\n{doc.title}\n{body}\n{recipes}"


def _section_recipes(section: Section) -> list[Recipe]:
    return [parse_recipe(b, doc=section.doc, section=section.id) for b in find_recipe_blocks(section.text)]


def _collect_recipes(docs: Iterable[Document]) -> tuple[Recipe, ...]:
    recipes: dict[str, Recipe] = {}
    for doc in docs:
        for section in doc.sections:
            try:
                found = _section_recipes(section)
            except RecipeError as exc:
                raise ConfigError(f"{doc.path or doc.name}: {exc}") from None
            for r in found:
                if r.id in recipes:
                    first = recipes[r.id]
                    raise ConfigError(
                        f"recipe id {r.id!r} appears twice ({first.doc}#{first.section} and "
                        f"{r.doc}#{r.section}); recipe ids must be unique"
                    )
                recipes[r.id] = r
    return tuple(recipes.values())


def _snippet(text: str, terms: set[str]) -> str:
    """The first paragraph of a section that mentions a query term (else its first), shortened."""
    paragraphs = [p.strip() for p in strip_recipe_blocks(text).split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    chosen = next(
        (p for p in paragraphs if terms & set(tokenize([p])[0]) and not p.startswith("```")),
        paragraphs[0],
    )
    flat = " ".join(chosen.split())
    return flat if len(flat) <= _SNIPPET_CHARS else flat[: _SNIPPET_CHARS - 3].rstrip() + "..."


__all__ = [
    "BUILTIN_DIR",
    "Document",
    "Hit",
    "KnowledgeBase",
    "KnowledgeError",
    "Lesson",
    "Section",
    "load_document",
    "slugify",
    "split_sections",
    "tokenize",
]
