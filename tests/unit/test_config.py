from __future__ import annotations

import pytest

from evoagent.config import load_config
from evoagent.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_unknown_key_is_rejected_with_suggestion_and_file(tmp_path):
    path = _write(tmp_path, 'seeds = ["a.py"]\n[budget]\ntrails = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key 'budget.trails' in .*run.toml; did you mean 'trials'\?"):
        load_config(path)


def test_wrong_type_names_key_value_and_expectation(tmp_path):
    with pytest.raises(ConfigError, match=r"'budget.trials' must be int \(got 'many'\)"):
        load_config(_write(tmp_path, '[budget]\ntrials = "many"\n'))


def test_missing_file_and_bad_toml_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[budget\n"))


def test_values_are_read_and_paths_resolve_next_to_the_file(tmp_path):
    config = load_config(_write(tmp_path, 'seeds = ["s.py"]\n[budget]\ntrials = 3\nhours = 1\n'
                                          '[engine]\ntarget_score = 2\n[population]\nkind = "tree"\n'))
    assert config.budget.trials == 3 and config.budget.hours == 1.0
    assert config.engine.target_score == 2.0 and config.population.kind == "tree"
    assert config.base_dir == str(tmp_path.resolve())
