"""The [executor] settings, the CLI's --executor, and the one-line error when Ray is missing."""

from __future__ import annotations

import sys

import pytest

from evoagent import SandboxConfig
from evoagent.assemble import config_from_dict, config_to_dict
from evoagent.cli import build_parser
from evoagent.commands import _with_overrides
from evoagent.config import load_config
from evoagent.errors import ConfigError
from evoagent.executors import ExecutorConfig, ExecutorKind, open_executor


def _config(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return load_config(path)


def test_executor_section_is_read_and_survives_the_stored_config(tmp_path):
    config = _config(tmp_path, '[executor]\nkind = "ray"\naddress = "ray://head:10001"\n')
    assert config.executor == ExecutorConfig(kind="ray", address="ray://head:10001")
    assert config.executor.kind is ExecutorKind.RAY
    assert config_from_dict(config_to_dict(config)).executor == config.executor
    assert _config(tmp_path, "").executor.kind is ExecutorKind.LOCAL


@pytest.mark.parametrize(("section", "message"), [
    ('kind = "rya"', r"'executor.kind' must be one of 'local', 'ray' \(got 'rya'\)"),
    ('kind = "ray"\naddress = "somewhere"', r"'executor.address' must be 'auto', 'ray://host:port' or 'host:port'"),
    ('address = "auto"', r"'executor.address' 'auto' is for kind = 'ray' \(the kind is 'local'\)"),
    ('kinds = "ray"', r"unknown key 'executor.kinds' in .*run.toml; did you mean 'kind'\?"),
])
def test_bad_executor_settings_are_one_line_errors(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _config(tmp_path, f"[executor]\n{section}\n")
    assert "\n" not in str(caught.value)


def test_the_executor_flag_sets_the_kind_and_keeps_or_replaces_the_address(tmp_path):
    config = _config(tmp_path, '[executor]\nkind = "ray"\naddress = "auto"\n')
    parse = build_parser().parse_args
    assert _with_overrides(config, parse(["run", "c.toml"])).executor == config.executor
    assert _with_overrides(config, parse(["run", "c.toml", "--executor", "ray"])).executor.address == "auto"
    local = _with_overrides(config, parse(["run", "c.toml", "--executor", "local"])).executor
    assert local == ExecutorConfig(kind="local")
    moved = _with_overrides(config, parse(["resume", "r", "--ray-address", "head:6379"])).executor
    assert moved == ExecutorConfig(kind="ray", address="head:6379")


def test_choosing_ray_without_ray_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(ConfigError, match=r'needs Ray, which is not installed: pip install "evoagent\[ray\]"'):
        open_executor(ExecutorConfig(kind="ray"), SandboxConfig())
