from __future__ import annotations

import pytest

import evoagent as ea
from evoagent.assemble import (
    build_llm,
    build_model,
    build_operator,
    build_population,
    config_from_dict,
    config_to_dict,
)
from evoagent.config import Budget, Options, RunConfig, load_config
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
    assert config.engine.target_score == 2.0 and config.population == {"kind": "tree"}
    assert config.base_dir == str(tmp_path.resolve())


def test_budget_and_engine_sections_are_the_engine_types(tmp_path):
    config = load_config(_write(tmp_path, '[budget]\nhours = 2\n[engine]\nslots = 3\n'))
    assert config.budget == Budget(trials=20, hours=2.0)  # a config file's trials default to 20
    assert config.engine == Options(slots=3)
    assert RunConfig().budget.trials == 20 and Budget().trials is None


def test_a_zero_budget_means_no_limit_as_config_files_wrote_it(tmp_path):
    config = load_config(_write(tmp_path, '[budget]\ntrials = 0\nusd = 0\n'))
    assert config.budget == Budget() and Budget(trials=0, hours=0).trials is None


def test_code_only_options_cannot_be_set_from_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'engine.on_event'"):
        load_config(_write(tmp_path, '[engine]\non_event = "print"\n'))


def test_bad_engine_option_is_rejected_once_for_files_and_code(tmp_path):
    with pytest.raises(ConfigError, match=r"Options.slots must be an integer >= 1 \(got 0\)"):
        load_config(_write(tmp_path, '[engine]\nslots = 0\n'))
    with pytest.raises(ConfigError, match=r"Options.slots must be an integer >= 1 \(got 0\)"):
        Options(slots=0)


def test_sandbox_section_changes_the_evaluators_settings(tmp_path):
    config = load_config(_write(tmp_path, '[sandbox]\ntimeout_s = 5\nmemory_mb = 0\nworkers = 3\n'
                                          'env_allowlist = ["MY_TOKEN"]\n'))
    base = ea.SandboxConfig(memory_mb=100, env_allowlist=("A_KEY",))
    changed = config.sandbox_for(base)
    assert changed.timeout_s == 5 and changed.workers == 3
    assert changed.memory_mb == 100  # 0 keeps the evaluator's value
    assert changed.env_allowlist == ("A_KEY", "MY_TOKEN")  # allowlists add up


def test_sandbox_section_turns_confinement_off_and_adds_paths(tmp_path):
    config = load_config(_write(tmp_path, '[sandbox]\nconfine = false\nwrite_paths = ["/cache/b"]\n'))
    changed = config.sandbox_for(ea.SandboxConfig(write_paths=("/cache/a",)))
    assert changed.confine is False and changed.write_paths == ("/cache/a", "/cache/b")


def test_unknown_sandbox_key_is_rejected_with_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'sandbox.timout_s' .*did you mean 'timeout_s'\?"):
        load_config(_write(tmp_path, '[sandbox]\ntimout_s = 5\n'))


def test_population_table_is_checked_against_its_kinds_constructor(tmp_path):
    config = load_config(_write(tmp_path, '[population]\nkind = "tree"\ntournament_size = 5\nconfirm = 1\n'))
    tree = build_population(config)
    assert isinstance(tree, ea.Tree) and tree.tournament_size == 5 and tree.confirm == 1
    config = load_config(_write(tmp_path, '[population]\nkind = "chain"\ntournament_size = 5\n'))
    with pytest.raises(ConfigError, match=r"unknown key 'population.tournament_size'; known keys: confirm, kind, tolerance"):
        build_population(config)
    config = load_config(_write(tmp_path, '[population]\ntolerance = "small"\n'))
    with pytest.raises(ConfigError, match=r"'population.tolerance' must be float \(got 'small'\)"):
        build_population(config)


def test_a_config_stored_by_an_earlier_version_still_loads():
    stored = {"seeds": ["s.py"], "evaluator": {"target": "attention", "params": {}},
              "population": {"kind": "chain", "tolerance": 0.0, "parent_selection": "tournament",
                             "tournament_size": 3, "confirm": 2},
              "operator": {"kind": "agentic", "model": "claude-opus-4-8", "params": {}},
              "knowledge": {"paths": [], "lesson_runs": []},
              "budget": {"trials": 6, "hours": 0.0, "tokens": 0, "usd": 0.0},
              "engine": {"slots": 1, "seed": 0, "patience": 0, "target_score": None},
              "sandbox": {"timeout_s": 0.0, "memory_mb": 0, "env_allowlist": []}, "base_dir": "/x",
              "instruction": ""}
    config = config_from_dict(stored)
    assert config.budget == Budget(trials=6) and config.population == {"kind": "chain", "tolerance": 0.0,
                                                                         "confirm": 2}
    assert build_population(config).confirm == 2
    assert config.operator.llm == {"model": "claude-opus-4-8"}  # [operator] model became [operator.llm] model
    assert config.sandbox_for(ea.SandboxConfig()) == ea.SandboxConfig()
    assert config_from_dict(config_to_dict(config)) == config


LLM_TABLE = """[operator]
kind = "agentic"
[operator.llm]
backend = "anthropic"
model = "claude-sonnet-5-5"
thinking = "adaptive"
cache_ttl = "5m"
max_tokens = 40000
base_url = "http://127.0.0.1:9"
prices = { input_per_mtok = 1, output_per_mtok = 2, cache_write_per_mtok = 1.25, cache_read_per_mtok = 0.1 }
"""


def test_operator_llm_table_builds_the_backend_it_describes(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unit")
    llm = build_llm(load_config(_write(tmp_path, LLM_TABLE)).operator.llm)
    assert (llm.model, llm.thinking, llm.cache_ttl, llm.max_tokens) == ("claude-sonnet-5-5", "adaptive", "5m", 40000)
    assert llm.base_url == "http://127.0.0.1:9" and llm.prices == ea.llm.Prices(
        input_per_mtok=1, output_per_mtok=2, cache_write_per_mtok=1.25, cache_read_per_mtok=0.1)
    llm.close()


@pytest.mark.parametrize(("change", "message"), [
    (("thinking = \"adaptive\"", "thinkng = \"adaptive\""), r"unknown key 'operator.llm.thinkng'; did you mean 'thinking'\?"),
    (("backend = \"anthropic\"", "backend = \"bard\""), r"unknown operator.llm.backend 'bard'; expected one of anthropic"),
    (("input_per_mtok = 1,", "input_per_mtok = -1,"), r"Prices.input_per_mtok must be a non-negative number"),
    (("cache_read_per_mtok = 0.1", "cache_read = 0.1"), r"unknown key 'operator.llm.prices.cache_read'"),
    (("max_tokens = 40000", "max_tokens = 200000"), r"exceeds the 128000 output tokens claude-sonnet-5-5 can write"),
])
def test_bad_operator_llm_settings_are_refused_with_the_key(tmp_path, monkeypatch, change, message):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unit")
    config = load_config(_write(tmp_path, LLM_TABLE.replace(*change)))
    with pytest.raises(ConfigError, match=message):
        build_llm(config.operator.llm)


def test_operator_llm_table_on_another_kind_is_refused(tmp_path):
    config = load_config(_write(tmp_path, LLM_TABLE.replace('kind = "agentic"', 'kind = "parameter_mutation"')))
    with pytest.raises(ConfigError, match=r"\[operator.llm\] and \[\[operator.models\]\] are read by kind \"agentic\" only"):
        build_operator(config)


def test_engine_model_failure_settings_are_checked(tmp_path):
    config = load_config(_write(tmp_path, "[engine]\nmodel_failure_limit = 5\nmodel_backoff_s = 2.5\n"))
    assert (config.engine.model_failure_limit, config.engine.model_backoff_s) == (5, 2.5)
    with pytest.raises(ConfigError, match=r"Options.model_backoff_s must be a number of seconds >= 0"):
        Options(model_backoff_s=-1)


def test_operator_models_build_an_ensemble_and_bad_ones_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unit")
    two = ('[operator]\nkind = "agentic"\n[operator.llm]\nexploration = 0.2\n'
           '[[operator.models]]\nmodel = "claude-sonnet-5-5"\nweight = 3\n'
           '[[operator.models]]\nmodel = "claude-haiku-4-5"\n')
    ensemble = build_model(load_config(_write(tmp_path, two)).operator)
    assert ensemble.names == ["claude-sonnet-5-5", "claude-haiku-4-5"] and ensemble.exploration == 0.2
    assert [m.weight for m in ensemble.members] == [3, 1.0]
    one = load_config(_write(tmp_path, two.split("[[operator.models]]\nmodel = \"claude-haiku")[0]))
    with pytest.raises(ConfigError, match="an ensemble needs at least two models"):
        build_model(one.operator)
    mixed = load_config(_write(tmp_path, two.replace("exploration = 0.2", 'model = "claude-opus-5"')))
    with pytest.raises(ConfigError, match=r"\[operator.llm\] takes only 'exploration'"):
        build_model(mixed.operator)
    weightless = load_config(_write(tmp_path, two.replace("weight = 3", "weight = 0")))
    with pytest.raises(ConfigError, match="an ensemble weight must be a positive number"):
        build_model(weightless.operator)
