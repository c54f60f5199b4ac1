"""Confinement records: the level a kernel gives, what a call may reach, and config validation."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from evoagent import confinement
from evoagent.confinement import Confinement, Reach
from evoagent.errors import ConfigError
from evoagent.sandbox import SandboxConfig


@pytest.fixture
def abi(monkeypatch: pytest.MonkeyPatch):
    def set_abi(version: int) -> None:
        monkeypatch.setattr(confinement, "landlock_abi", lambda: version)
    return set_abi


JAIL = {"call_namespaces": None, "private_disk": None, "seccomp": None, "candidate_uid": 64000}


def test_landlock_abi_7_with_a_namespace_and_the_jail_is_full(abi) -> None:
    abi(7)
    level = Confinement.measure(enabled=True, namespace_error=None, jail=JAIL)
    assert level.level == "full" and level.missing == ()
    assert level.describe() == ("full: Landlock ABI 7, network namespace, PID and IPC namespace per call, "
                                "size-limited tmpfs, seccomp, uid 64000, no_new_privs")
    assert level.as_dict()["candidate_uid"] == 64000 and level.as_dict()["seccomp"] is True


@pytest.mark.parametrize(("part", "named"), [
    ("call_namespaces", "a PID and IPC namespace per call (no CLONE_NEWPID)"),
    ("private_disk", "size-limited tmpfs folders (no CLONE_NEWPID)"),
    ("seccomp", "a seccomp filter (no CLONE_NEWPID)"),
])
def test_a_missing_jail_mechanism_is_partial_and_named(abi, monkeypatch: pytest.MonkeyPatch, part: str,
                                                        named: str) -> None:
    monkeypatch.setattr(confinement, "_warned", set())
    abi(7)
    level = Confinement.measure(enabled=True, namespace_error=None, jail={**JAIL, part: "no CLONE_NEWPID"})
    assert level.level == "partial" and len(level.missing) == 1 and level.missing[0].startswith(named)
    assert not getattr(level, part)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        level.warn_if_partial()
    assert len(records) == 1 and named in str(records[0].message)


def test_candidate_code_as_root_is_named_as_missing_an_unprivileged_uid(abi) -> None:
    abi(7)
    level = Confinement.measure(enabled=True, namespace_error=None, jail={**JAIL, "candidate_uid": 0})
    assert level.missing == ("an unprivileged uid (candidate code runs as root mapped into its user namespace)",)


def test_a_missing_network_namespace_is_partial_and_says_tcp_is_still_denied(abi) -> None:
    abi(5)
    level = Confinement.measure(enabled=True, namespace_error="unshare failed: Operation not permitted", jail=JAIL)
    assert level.level == "partial"
    assert any("network namespace (unshare failed" in m and "TCP is still denied" in m for m in level.missing)
    assert any("signal scoping (ABI 6" in m for m in level.missing)


def test_no_landlock_names_files_and_processes_as_missing(abi) -> None:
    abi(0)
    level = Confinement.measure(enabled=True, namespace_error="x")
    assert level.level == "partial"
    assert level.missing[0].startswith("Landlock (files outside")
    assert "connections are possible" in level.missing[1]


def test_disabled_confinement_is_off(abi) -> None:
    abi(7)
    level = Confinement.measure(enabled=False, namespace_error=None)
    assert level.level == "off" and level.as_dict()["level"] == "off"


def test_partial_confinement_warns_once_naming_what_is_missing(abi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confinement, "_warned", set())
    abi(3)
    level = Confinement.measure(enabled=True, namespace_error=None, jail=JAIL)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        level.warn_if_partial()
        level.warn_if_partial()
    assert len(records) == 1 and records[0].category is confinement.ConfinementWarning
    assert "missing: Landlock signal scoping (ABI 6" in str(records[0].message)


def test_a_call_reaches_python_and_its_own_directories_but_not_home_or_tmp(tmp_path: Path) -> None:
    work, tmp = str(tmp_path / "work"), str(tmp_path / "tmp")
    reach = Reach.for_call(work=work, tmp=tmp, read=["/data/weights"], write=["/cache"])
    assert reach.write == (work, tmp, "/cache")
    assert sys.prefix in reach.read and "/data/weights" in reach.read
    assert str(Path(confinement.__file__).resolve().parent) in reach.read  # the evoagent package, read-only
    for private in ("/", "/tmp", "/home", "/root", str(Path.home())):
        assert private not in reach.read
    assert not any(p.startswith("/etc/ssh") or p == "/etc" for p in reach.read)
    assert "/dev/null" in reach.devices
    assert reach.as_request()["write"] == [work, tmp, "/cache"]


def test_cache_environment_points_compilers_into_the_cache_and_home_into_tmp(tmp_path: Path) -> None:
    env = confinement.cache_environment(tmp_path / "cache", home=tmp_path / "tmp")
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "cache" / "triton")
    assert env["HOME"] == str(tmp_path / "tmp")
    assert all(v.startswith(str(tmp_path)) for v in env.values())


@pytest.mark.parametrize("field", ["read_paths", "write_paths"])
def test_relative_extra_paths_are_rejected(field: str) -> None:
    with pytest.raises(ConfigError, match=f"SandboxConfig.{field} must hold absolute paths .got 'data'"):
        SandboxConfig(**{field: ("data",)})


def test_extra_paths_accept_path_objects() -> None:
    config = SandboxConfig(read_paths=(Path("/opt/data"),))
    assert config.read_paths == ("/opt/data",) and config.confine is True
