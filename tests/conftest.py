"""Shared fixtures: isolated storage per test, the gpu marker skipped without CUDA."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "integration"))


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated_storage(_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests share one fresh cache directory (never the user's) and see no API key from the shell."""
    monkeypatch.setenv("EVOAGENT_CACHE_DIR", str(_cache_dir))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def _has_cuda() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False
