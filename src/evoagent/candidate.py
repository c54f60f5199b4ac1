"""Candidate: an immutable version of the evolved source, identified by a hash of its normalized text."""

from __future__ import annotations

import ast
import difflib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any


def normalize_source(text: str) -> str:
    """Normalizes line endings, trailing whitespace and trailing blank lines (used for the id)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def fingerprint(files: Mapping[str, str]) -> str:
    """Hash of what the files mean: Python files by their normalised AST, other files by normalized text.

    Two versions with the same fingerprint differ only in comments, docstrings, blank lines,
    line breaks inside brackets, quoting or other formatting, so evaluating both would waste an
    evaluation (the engine labels the second `duplicate`).
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        text = normalize_source(files[name])
        if name.endswith(".py"):
            try:
                text = ast.dump(_without_docstrings(ast.parse(text)), annotate_fields=False)
            except (SyntaxError, ValueError):  # not parseable: compare the text itself
                pass
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _check_relpath(path: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ValueError(
            f"candidate file name {path!r} must be a relative path inside the candidate "
            "(no '..', no leading '/')"
        )
    return str(pure)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Candidate:
    """One version of the evolved program: one or several text files.

    Attributes:
        files: relative path -> file text.
        entry: the main file (the one a single-file target imports).
        parents: ids of the versions this one was derived from.
        hypothesis: what the change is expected to do, in the proposer's words.
        metadata: free-form JSON-serializable facts (operator name, recipe, ...).
    """

    files: Mapping[str, str]
    entry: str = ""
    parents: tuple[str, ...] = ()
    hypothesis: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.files, Mapping) or not self.files:
            raise ValueError("Candidate 'files' must be a non-empty mapping of relative path to text")
        files = {}
        for name, text in self.files.items():
            if not isinstance(text, str):
                raise TypeError(f"Candidate file {name!r} must be text (got {type(text).__name__})")
            files[_check_relpath(name)] = text
        entry = self.entry or (next(iter(files)) if len(files) == 1 else "")
        if entry not in files:
            raise ValueError(f"Candidate entry {self.entry!r} is not one of its files {sorted(files)}")
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(files.items()))))
        object.__setattr__(self, "entry", entry)
        object.__setattr__(self, "parents", tuple(self.parents))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        digest = hashlib.sha256()
        for name, text in self.files.items():
            digest.update(name.encode() + b"\0" + normalize_source(text).encode() + b"\0")
        object.__setattr__(self, "id", digest.hexdigest()[:16])

    @classmethod
    def from_source(cls, source: str, *, entry: str = "main.py", **kwargs: Any) -> Candidate:
        """A single-file candidate."""
        return cls(files={entry: source}, entry=entry, **kwargs)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, entry: str | None = None, **kwargs: Any) -> Candidate:
        """Reads a file (single-file candidate named `entry`, default its own name) or a directory."""
        path = Path(path)
        if path.is_dir():
            files = {
                p.relative_to(path).as_posix(): p.read_text()
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts
            }
            if not files:
                raise FileNotFoundError(f"candidate directory {str(path)!r} holds no files")
            return cls(files=files, entry=entry or "", **kwargs)
        if not path.is_file():
            raise FileNotFoundError(f"candidate file {str(path)!r} does not exist")
        return cls(files={entry or path.name: path.read_text()}, entry=entry or path.name, **kwargs)

    @property
    def fingerprint(self) -> str:
        """The hash of its normalised AST (see `fingerprint`): equal for versions that differ only in form."""
        return fingerprint(self.files)

    @property
    def source(self) -> str:
        """The text of the entry file."""
        return self.files[self.entry]

    def with_files(self, files: Mapping[str, str], **kwargs: Any) -> Candidate:
        """A child of this candidate with new file contents (parents set to this one)."""
        merged = {**self.files, **files}
        kwargs.setdefault("parents", (self.id,))
        kwargs.setdefault("entry", self.entry)
        return Candidate(files=merged, **kwargs)

    def diff(self, other: Candidate | None, *, context: int = 3) -> str:
        """Unified diff from `other` (the parent) to this candidate."""
        old = dict(other.files) if other is not None else {}
        chunks: list[str] = []
        for name in sorted(set(old) | set(self.files)):
            a, b = old.get(name, ""), self.files.get(name, "")
            if a == b:
                continue
            chunks.extend(
                difflib.unified_diff(
                    a.splitlines(keepends=True), b.splitlines(keepends=True),
                    fromfile=f"a/{name}", tofile=f"b/{name}", n=context,
                )
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)

    def write_to(self, directory: str | os.PathLike[str]) -> Path:
        """Writes the files under `directory` (created); returns the entry file's path."""
        directory = Path(directory)
        for name, text in self.files.items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return directory / self.entry

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(self.files), self.entry, self.parents, self.hypothesis, dict(self.metadata)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Candidate) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Candidate(id={self.id!r}, entry={self.entry!r}, files={len(self.files)}, parents={self.parents!r})"


def _rebuild(
    files: dict[str, str], entry: str, parents: tuple[str, ...], hypothesis: str, metadata: dict[str, Any]
) -> Candidate:
    return Candidate(files=files, entry=entry, parents=parents, hypothesis=hypothesis, metadata=metadata)
