"""The size bound on the per-candidate compile caches (targets/attention/compile_caches.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evoagent.targets.attention.compile_caches import CompileCaches, tree_bytes


def _folder(root: Path, name: str, size: int, used: float) -> Path:
    """A scope folder holding `size` bytes, last used at `used` (seconds since the epoch)."""
    folder = root / name
    (folder / "triton").mkdir(parents=True)
    (folder / "triton" / "k.cubin").write_bytes(b"x" * size)
    os.utime(folder, (used, used))
    return folder


def test_least_recently_used_folders_go_first_until_the_total_fits(tmp_path):
    root = tmp_path / "compile"
    for i, name in enumerate(["old", "mid", "new"]):
        _folder(root, name, 100, used=1000.0 + i)
    caches = CompileCaches(root, limit_bytes=150, keep=0)
    assert caches.prune() == ["old", "mid"]
    assert sorted(p.name for p in root.iterdir()) == ["new"]


def test_nothing_is_removed_under_the_limit(tmp_path):
    root = tmp_path / "compile"
    _folder(root, "a", 100, used=1000.0)
    _folder(root, "b", 100, used=1001.0)
    assert CompileCaches(root, limit_bytes=200, keep=0).prune() == []
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]


def test_the_newest_kept_folders_that_fit_and_the_ones_in_use_stay(tmp_path):
    root = tmp_path / "compile"
    for i, name in enumerate(["a", "b", "c", "d"]):
        _folder(root, name, 100, used=1000.0 + i)
    caches = CompileCaches(root, limit_bytes=250, keep=3)
    with caches.use("a") as folder:  # the oldest, now used: the newest
        assert folder == root / "a"
        assert caches.prune() == ["b", "c"]  # the newest three are a, d, c; a and d fit under 250 bytes, c not
    assert sorted(p.name for p in root.iterdir()) == ["a", "d"]
    caches = CompileCaches(root, limit_bytes=0, keep=16)
    with caches.use("a"):
        caches.prune()  # over the limit: nothing fits, only `a`, in use, stays
        assert sorted(p.name for p in root.iterdir()) == ["a"]
    assert not root.exists() or not any(root.iterdir())  # leaving it, nothing is in use


def test_a_folder_past_the_limit_is_trimmed_even_among_the_newest(tmp_path):
    """A candidate that wrote gigabytes into its own cache does not keep them because it ran last."""
    root = tmp_path / "compile"
    for i, name in enumerate(["small1", "small2"]):
        _folder(root, name, 100, used=1000.0 + i)
    caches = CompileCaches(root, limit_bytes=1000, keep=16)
    with caches.use("huge") as folder:
        (folder / "blob.bin").write_bytes(b"x" * 5000)
    assert sorted(p.name for p in root.iterdir()) == ["small1", "small2"]


def test_only_scope_folders_are_removed_and_symlinks_are_not_followed(tmp_path):
    root = tmp_path / "compile"
    outside = tmp_path / "users_own"
    outside.mkdir()
    (outside / "keep.bin").write_bytes(b"y" * 500)
    victim = _folder(root, "cand1", 100, used=1000.0)
    (victim / "link").symlink_to(outside, target_is_directory=True)
    (root / "linked-scope").symlink_to(outside, target_is_directory=True)
    (root / ".hidden").mkdir()
    (root / "notes.txt").write_text("a user's file")
    assert CompileCaches(root, limit_bytes=0, keep=0).prune() == ["cand1"]
    assert (outside / "keep.bin").read_bytes() == b"y" * 500
    assert (root / "linked-scope").is_symlink() and (root / ".hidden").is_dir() and (root / "notes.txt").exists()


def test_sizes_count_files_not_what_links_point_to(tmp_path):
    _folder(tmp_path, "s", 300, used=1000.0)
    (tmp_path / "big").write_bytes(b"z" * 10_000)
    (tmp_path / "s" / "link").symlink_to(tmp_path / "big")
    assert tree_bytes(tmp_path / "s") == 300 + len(str(tmp_path / "big"))


def test_a_missing_root_prunes_nothing_and_bad_bounds_are_refused(tmp_path):
    assert CompileCaches(tmp_path / "none", limit_bytes=0).prune() == []
    with pytest.raises(ValueError, match="must be >= 0"):
        CompileCaches(tmp_path, limit_bytes=-1)
