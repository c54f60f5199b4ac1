"""`evoagent run attention --lang L`: the language's seed, named seeds checked against it, bad values refused."""

from __future__ import annotations

import pytest

from evoagent import assemble
from evoagent.cli import build_parser
from evoagent.errors import ConfigError
from evoagent.targets.attention import LANGUAGE_SEEDS, SEEDS, seed_language


def test_lang_starts_from_the_language_seed() -> None:
    for language, seed in (("triton", "fa2"), ("cuda", "cuda-fa2")):
        config = assemble.with_language(assemble.builtin_config("attention"), language, None)
        assert list(config.seeds) == [f"attention:{seed}"]


def test_every_language_has_a_shipped_seed_in_that_language() -> None:
    for language, name in LANGUAGE_SEEDS.items():
        assert name in SEEDS and seed_language(name) == language


def test_a_seed_of_another_language_is_refused() -> None:
    config = assemble.builtin_config("attention")
    with pytest.raises(ConfigError, match=r"--seed fa2 is not a cuda kernel; .* \(default: cuda-fa2\)"):
        assemble.with_language(config, "cuda", ["fa2"])
    with pytest.raises(ConfigError, match="unknown kernel language 'rust'; choose one of triton, cuda"):
        assemble.with_language(config, "rust", None)


def test_the_cli_names_the_choices_for_a_bad_lang(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "attention", "--lang", "rust"])
    assert exit_info.value.code == 2
    assert "argument --lang: invalid choice: 'rust' (choose from" in capsys.readouterr().err
