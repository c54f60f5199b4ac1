"""Shared fixtures: isolated storage per test, the gpu marker skipped without CUDA, and the tests that share a
module-scoped fixture kept on one pytest-xdist worker (`--dist loadgroup`, set in pyproject's addopts)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "integration"))

# No property test may fail for being slow on a busy machine: no per-example deadline, no "too slow" check.
settings.register_profile("evoagent", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("evoagent")


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole run, shared by the xdist workers (static reports are written atomically), so a
    kernel is compiled once per run rather than once per worker."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(autouse=True)
def _isolated_storage(_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests share one fresh cache directory (never the user's) and see no API key from the shell."""
    monkeypatch.setenv("EVOAGENT_CACHE_DIR", str(_cache_dir))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown, and so never called, under -p no:xdist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject's addopts) means a worker per core for a run of folders (`python -m pytest`, the whole
    suite), but no workers for a run of named test files, where starting them would cost more than it saves."""
    files = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    return 0 if files and all(path.is_file() for path in files) else None  # None: xdist counts the cores


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the groups into node-id suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _group_by_module_fixture(items)
    _skip_gpu_without_cuda(items)


def _group_by_module_fixture(items: list[pytest.Item]) -> None:
    """A test that uses a module- or class-scoped fixture (a sandbox, a compiled kernel) joins its module's
    xdist group, so under `-n` the fixture is built once, by the one worker that runs the whole module."""
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        if definitions is None:
            continue
        scopes = {d.scope for defs in definitions.name2fixturedefs.values() for d in defs}
        if scopes & {"module", "class"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _skip_gpu_without_cuda(items: list[pytest.Item]) -> None:
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
