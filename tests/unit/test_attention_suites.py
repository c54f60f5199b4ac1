"""Suites of attention configurations: names, FLOP counts, validation, lookup."""

from __future__ import annotations

import pytest

from evoagent.errors import ConfigError
from evoagent.targets.attention.suites import SUITES, AttentionConfig, get_suite, make_config


def test_flops_follow_the_flashattention_count_and_halve_when_causal() -> None:
    full = make_config(2, 16, 16, 4096, 128, False, "bfloat16")
    causal = make_config(2, 16, 16, 4096, 128, True, "bfloat16")
    assert full.flops() == 4 * 2 * 16 * 4096 * 4096 * 128
    assert causal.flops() == full.flops() / 2


def test_gqa_flops_count_query_heads() -> None:
    gqa = make_config(1, 32, 4, 1024, 128, False, "bfloat16")
    mha = make_config(1, 32, 32, 1024, 128, False, "bfloat16")
    assert gqa.flops() == mha.flops()


def test_config_names_are_readable_and_distinguish_gqa() -> None:
    assert make_config(4, 16, 16, 4096, 128, True, "bfloat16").name == "b4-h16-n4096-d128-causal-bf16"
    assert make_config(1, 32, 8, 4096, 128, False, "float16").name == "b1-h32-kv8-n4096-d128-full-fp16"


@pytest.mark.parametrize("kwargs, word", [
    ({"heads_q": 6, "heads_kv": 4}, "multiple"),
    ({"seqlen": 0}, "seqlen"),
    ({"dtype": "float8"}, "dtype"),
])
def test_invalid_configs_are_rejected_with_the_field_named(kwargs: dict, word: str) -> None:
    base = {"name": "x", "batch": 1, "heads_q": 2, "heads_kv": 2, "seqlen": 16, "head_dim": 64, "causal": False,
            "dtype": "float16"}
    with pytest.raises(ConfigError, match=word):
        AttentionConfig(**{**base, **kwargs})


def test_h100_mha_suite_keeps_16k_tokens_per_configuration() -> None:
    suite = get_suite("h100-mha")
    assert len(suite.configs) == 10
    assert {c.batch * c.seqlen for c in suite.configs} == {16 * 1024}
    assert {(c.heads_q, c.head_dim, c.dtype) for c in suite.configs} == {(16, 128, "bfloat16")}
    assert {c.causal for c in suite.configs} == {True, False}


def test_avo_suite_has_mha_and_both_gqa_ratios_at_32k_tokens() -> None:
    suite = get_suite("avo")
    assert {(c.heads_q, c.heads_kv) for c in suite.configs} == {(16, 16), (32, 4), (32, 8)}
    assert {c.seqlen for c in suite.configs} == {4096, 8192, 16384, 32768}
    assert {c.batch * c.seqlen for c in suite.configs} == {32 * 1024}


def test_smoke_suite_is_small_enough_for_the_interpreter() -> None:
    suite = get_suite("smoke")
    assert not suite.gpu
    assert suite.dtypes == ("float16",)
    assert all(c.rows <= 256 for c in suite.configs)
    assert any(c.heads_q != c.heads_kv for c in suite.configs)


def test_static_configs_take_the_longest_of_each_causal_mode() -> None:
    chosen = get_suite("h100-mha").static_configs()
    assert [c.causal for c in chosen] == [False, True]
    assert {c.seqlen for c in chosen} == {16384}


def test_unknown_suite_names_the_known_ones_and_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'h100-mha'") as err:
        get_suite("h100-mhaa")
    assert all(name in str(err.value) for name in SUITES)


def test_config_round_trips_through_a_dict() -> None:
    config = make_config(1, 4, 2, 33, 64, True, "float16")
    assert AttentionConfig.from_dict(config.to_dict()) == config
