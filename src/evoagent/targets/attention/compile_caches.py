"""A size bound on the per-candidate compile caches, `<cache root>/compile/<scope>/`, least recently used out first.

Each candidate's sandboxed calls write only their own folder (`static.candidate_caches`), so a long run
leaves one folder per candidate evaluated: thousands in a week, gigabytes each hour with CUDA builds.
Why an LRU by size, not "remove the folder when its trial ends and it was not committed": the evaluator
cannot know what the engine will ask next (a population member re-measured, a parent the agent probes with
experiments, a resumed run, another run sharing the cache root), and under Ray it runs far from the
engine's population. A cache is only a cache: a folder removed too early costs one recompile, never a
wrong result. So the bound keeps what was used recently (members and re-measured candidates are used
again and again), holds the total under `limit_bytes`, and never removes a folder in use: one a call of
this process has open, or one of the `keep` most recently used (calls of other processes sharing the root
touch their folder when they start) as long as those fit under the limit together. A folder that alone
grows past the bound (a candidate writing gigabytes into its cache) goes as soon as its call ends, new
or not; while the call runs, each file it writes there is capped by the sandbox (`SandboxConfig.file_mb`).
Only folders directly under `compile/` named like a scope are ever removed; nothing else under the cache
root, and nothing a symlink points to.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GIB = 1 << 30


def _is_scope(name: str) -> bool:
    return bool(name) and not name.startswith(".") and all(c.isalnum() or c in "-_." for c in name)


def tree_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (symlinks counted as themselves, never followed)."""
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


class CompileCaches:
    """The folders under `root` (`<cache root>/compile`), bounded to `limit_bytes` by `prune` (see the module)."""

    def __init__(self, root: Path, *, limit_bytes: int, keep: int = 16) -> None:
        if limit_bytes < 0 or keep < 0:
            raise ValueError(f"limit_bytes and keep must be >= 0 (got {limit_bytes}, {keep})")
        self.root, self.limit_bytes, self.keep = root, limit_bytes, keep
        self._sizes: dict[str, int] = {}  # measured once, again after each use
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def use(self, scope: str) -> Iterator[Path]:
        """Marks `scope`'s folder used now and in use until the block ends; then measures it and prunes."""
        folder = self.root / scope
        with self._lock:
            self._active[scope] += 1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.utime(folder)
            yield folder
        finally:
            size = tree_bytes(folder)
            with self._lock:
                self._active[scope] -= 1
                if not self._active[scope]:
                    del self._active[scope]
                self._sizes[scope] = size
            self.prune()

    def prune(self) -> list[str]:
        """Removes the least recently used folders until the total is under the limit; returns their names.

        The `keep` newest folders stay only while together they fit under the limit (newest first): a
        folder that grew past the bound is trimmed whatever its age, unless a call of this process uses it.
        """
        with self._lock:
            folders = self._folders()
            total = sum(self._size(name) for _, name in folders)
            kept, kept_bytes = set(), 0
            for _, name in folders[: self.keep]:
                if kept_bytes + self._size(name) <= self.limit_bytes:
                    kept.add(name)
                    kept_bytes += self._size(name)
            removed = []
            for _, name in reversed(folders):  # oldest first
                if total <= self.limit_bytes:
                    break
                if name in self._active or name in kept:
                    continue
                shutil.rmtree(self.root / name, ignore_errors=True)
                total -= self._sizes.pop(name, 0)
                removed.append(name)
            return removed

    def _folders(self) -> list[tuple[float, str]]:
        """(last use, name) of the scope folders, newest first."""
        found = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if _is_scope(entry.name) and entry.is_dir(follow_symlinks=False):
                try:
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
                except OSError:
                    continue
        return sorted(found, reverse=True)

    def _size(self, name: str) -> int:
        if name not in self._sizes:
            self._sizes[name] = tree_bytes(self.root / name)
        return self._sizes[name]
