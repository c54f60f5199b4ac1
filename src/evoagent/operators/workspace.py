"""The agent's private workspace: a directory holding a copy of one version's files, edited by the tools."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from ..candidate import Candidate

MAX_FILE_CHARS = 256_000


class ToolError(Exception):
    """A tool call the model got wrong; its message goes back as an is_error tool result."""


class Workspace:
    """A private directory holding a copy of the starting version's files."""

    def __init__(self, root: str | Path, parent: Candidate, *, new_files: bool = True) -> None:
        self.root = Path(root).resolve()
        self.parent = parent
        self.new_files = new_files
        parent.write_to(self.root)

    def checkout(self, version: Candidate) -> None:
        """Replaces every file by `version`'s; later submissions descend from it."""
        for name in self.files():
            (self.root / name).unlink()
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_dir():
                shutil.rmtree(path)
        version.write_to(self.root)
        self.parent = version

    def resolve(self, path: Any) -> Path:
        if not isinstance(path, str) or not path.strip():
            raise ToolError(f"path must be a file name relative to the workspace, e.g. {self.parent.entry!r}; "
                            f"got {path!r}")
        pure = PurePosixPath(path.strip())
        if pure.is_absolute() or ".." in pure.parts or "\\" in path:
            raise ToolError(f"path {path!r} leaves the workspace; use a relative name such as "
                            f"{self.parent.entry!r} (files: {', '.join(self.files())})")
        target = (self.root / pure).resolve()
        if target != self.root and not target.is_relative_to(self.root):
            raise ToolError(f"path {path!r} resolves outside the workspace; use one of: {', '.join(self.files())}")
        return target

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)

    def read(self, path: Any) -> str:
        target = self.resolve(path)
        if target == self.root or target.is_dir():
            return "files: " + ", ".join(self.files())
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the workspace; files: {', '.join(self.files())}")
        return target.read_text()

    def write(self, path: Any, content: Any) -> str:
        target = self.resolve(path)
        if not isinstance(content, str):
            raise ToolError(f"content must be the file text as a string, got {type(content).__name__}")
        if len(content) > MAX_FILE_CHARS:
            raise ToolError(f"content is {len(content)} characters; the limit is {MAX_FILE_CHARS}")
        if target.is_dir():
            raise ToolError(f"{path!r} is a directory; name a file")
        if not self.new_files and not target.is_file():
            raise ToolError(f"{path!r} is not a file of this version (files: {', '.join(self.files())}); a version "
                            "is its own files only: keep notes with the `notes` tool")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {target.relative_to(self.root).as_posix()} ({content.count(chr(10)) + 1} lines)"

    def edit(self, path: Any, old: Any, new: Any) -> str:
        text = self.read(path)
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("edit_file needs `old` and `new` as strings")
        if not old:
            raise ToolError("`old` is empty; give the exact text to replace (use write_file to create a file)")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"`old` was not found in {path}: it must match the file exactly, whitespace and "
                            f"indentation included; read_file {path} and copy the lines.{_near_miss(text, old)}")
        if count > 1:
            raise ToolError(f"`old` occurs {count} times in {path}; include more surrounding lines so that it "
                            "occurs exactly once")
        start = text.index(old)
        updated = text[:start] + new + text[start + len(old):]
        self.resolve(path).write_text(updated)
        first = text[:start].count("\n") + 1
        return (f"edited {path}: replaced {old.count(chr(10)) + 1} line(s) at line {first} with "
                f"{new.count(chr(10)) + 1} line(s); the file now has {updated.count(chr(10)) + 1} lines")

    def candidate(self, **kwargs: Any) -> Candidate:
        files = {name: (self.root / name).read_text() for name in self.files()}
        kwargs.setdefault("parents", (self.parent.id,))
        return Candidate(files=files, entry=self.parent.entry, **kwargs)


def _near_miss(text: str, old: str) -> str:
    """A hint for an `old` that is not in the file: whitespace differences, or the closest line."""
    if " ".join(old.split()) in " ".join(text.split()):
        return " It matches when whitespace is ignored: check indentation and line breaks."
    first = next((line for line in old.splitlines() if line.strip()), "")
    lines = text.splitlines()
    close = difflib.get_close_matches(first, lines, n=1, cutoff=0.6)
    if close:
        return f" The closest line to your first line is line {lines.index(close[0]) + 1}: {close[0]!r}"
    return ""
