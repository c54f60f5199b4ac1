"""Named suites of attention configurations (shapes, dtype, causal mode) and the FLOP count of one."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError

DTYPES = ("float16", "bfloat16", "float32")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttentionConfig:
    """One attention problem: q (batch, heads_q, seqlen, head_dim), k and v (batch, heads_kv, ...).

    Attributes:
        name: a stable key for the configuration (the metric name in a score vector).
        batch: B.
        heads_q: query heads H_Q.
        heads_kv: key/value heads H_KV (H_Q % H_KV == 0; GQA when smaller).
        seqlen: N, the same for queries and keys.
        head_dim: D.
        causal: whether query i attends only to keys j <= i.
        dtype: "float16", "bfloat16" or "float32" (float32 only for the CPU interpreter).
    """

    name: str
    batch: int
    heads_q: int
    heads_kv: int
    seqlen: int
    head_dim: int
    causal: bool
    dtype: str

    def __post_init__(self) -> None:
        for attr in ("batch", "heads_q", "heads_kv", "seqlen", "head_dim"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"AttentionConfig {attr!r} must be a positive int (got {value!r})")
        if self.heads_q % self.heads_kv:
            raise ConfigError(
                f"AttentionConfig heads_q={self.heads_q} must be a multiple of heads_kv={self.heads_kv}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"AttentionConfig dtype must be one of {DTYPES} (got {self.dtype!r})")

    @property
    def q_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.heads_q, self.seqlen, self.head_dim)

    @property
    def kv_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.heads_kv, self.seqlen, self.head_dim)

    @property
    def rows(self) -> int:
        """Output rows (B * H_Q * N), each of length D."""
        return self.batch * self.heads_q * self.seqlen

    def flops(self) -> float:
        """Matmul FLOPs of the forward pass: 4 * B * H_Q * N^2 * D, halved when causal.

        Two matmuls (Q K^T and P V), each 2 * N * N * D per head; causal attention skips the
        upper triangle. This is the count FlashAttention's papers and benchmarks use.
        """
        dense = 4.0 * self.batch * self.heads_q * self.seqlen * self.seqlen * self.head_dim
        return dense * (0.5 if self.causal else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {field_: getattr(self, field_) for field_ in AttentionConfig.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttentionConfig:
        return cls(**dict(data))


def config_name(batch: int, heads_q: int, heads_kv: int, seqlen: int, head_dim: int,
                causal: bool, dtype: str) -> str:
    """A readable, stable name such as 'b4-h16-n4096-d128-causal-bf16' ('h32/8' for GQA)."""
    heads = f"h{heads_q}" if heads_q == heads_kv else f"h{heads_q}-kv{heads_kv}"
    short = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}[dtype]
    mode = "causal" if causal else "full"
    return f"b{batch}-{heads}-n{seqlen}-d{head_dim}-{mode}-{short}"


def make_config(batch: int, heads_q: int, heads_kv: int, seqlen: int, head_dim: int,
                causal: bool, dtype: str) -> AttentionConfig:
    return AttentionConfig(
        name=config_name(batch, heads_q, heads_kv, seqlen, head_dim, causal, dtype),
        batch=batch, heads_q=heads_q, heads_kv=heads_kv, seqlen=seqlen, head_dim=head_dim,
        causal=causal, dtype=dtype,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Suite:
    """A named set of configurations: the score is the geometric mean TFLOPS over them.

    Attributes:
        name: the suite's name, as chosen in a run's config.
        description: one line on what it measures.
        configs: the benchmark configurations (the score vector's keys).
        max_test_seqlen: the longest ragged sequence length drawn for the extra test shapes.
        gqa_groups: query heads per key/value head drawn for the extra test shapes.
        gpu: whether the suite is meant for a GPU (False: sized for the CPU interpreter).
    """

    name: str
    description: str
    configs: tuple[AttentionConfig, ...]
    max_test_seqlen: int
    gqa_groups: tuple[int, ...] = (1, 2, 4)
    gpu: bool = True
    config_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.configs)
        if len(set(names)) != len(names):
            raise ConfigError(f"suite {self.name!r} has duplicate configuration names")
        object.__setattr__(self, "config_names", names)

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.dtype for c in self.configs))

    @property
    def head_dims(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(c.head_dim for c in self.configs))

    def static_configs(self) -> tuple[AttentionConfig, ...]:
        """The configurations the static compile report uses: the longest one of each causal mode."""
        chosen: dict[bool, AttentionConfig] = {}
        for config in self.configs:
            best = chosen.get(config.causal)
            if best is None or config.seqlen > best.seqlen:
                chosen[config.causal] = config
        return tuple(chosen[mode] for mode in sorted(chosen))


def _tokens_sweep(tokens: int, seqlens: tuple[int, ...], heads: tuple[tuple[int, int], ...],
                  head_dim: int, dtype: str) -> tuple[AttentionConfig, ...]:
    """Every (seqlen, heads, causal) with batch = tokens // seqlen (constant work per token)."""
    return tuple(
        make_config(tokens // n, hq, hkv, n, head_dim, causal, dtype)
        for hq, hkv in heads
        for n in seqlens
        for causal in (False, True)
    )


_K = 1024
SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="smoke",
            description="tiny fp16 shapes for Triton's CPU interpreter (correctness and a cpu-interpreter time)",
            configs=(
                make_config(1, 2, 2, 64, 64, False, "float16"),
                make_config(1, 2, 2, 64, 64, True, "float16"),
                make_config(1, 4, 2, 48, 64, True, "float16"),
            ),
            max_test_seqlen=80,
            gqa_groups=(1, 2, 4),
            gpu=False,
        ),
        Suite(
            name="h100-mha",
            description="bf16, D=128, 16 heads, N = 1k..16k at 16k tokens, causal and not (FA3 paper's sweep)",
            configs=_tokens_sweep(16 * _K, (1 * _K, 2 * _K, 4 * _K, 8 * _K, 16 * _K), ((16, 16),), 128, "bfloat16"),
            max_test_seqlen=1100,
            gqa_groups=(1, 2, 4, 8),
        ),
        Suite(
            name="h100-d64",
            description="bf16, D=64, 32 heads (hidden 2048), N = 1k..16k at 16k tokens, causal and not",
            configs=_tokens_sweep(16 * _K, (1 * _K, 2 * _K, 4 * _K, 8 * _K, 16 * _K), ((32, 32),), 64, "bfloat16"),
            max_test_seqlen=1100,
            gqa_groups=(1, 2, 4, 8),
        ),
        Suite(
            name="h100-short",
            description="bf16, D=128, 16 heads, N = 2k and 8k at 8k tokens, causal and not (short GPU runs)",
            configs=_tokens_sweep(8 * _K, (2 * _K, 8 * _K), ((16, 16),), 128, "bfloat16"),
            max_test_seqlen=1100,
            gqa_groups=(1, 2, 4, 8),
        ),
        Suite(
            name="avo",
            description="AVO paper's protocol: bf16, D=128, N = 4k..32k at 32k tokens; MHA 16 heads, GQA 32/4 and 32/8",
            configs=_tokens_sweep(32 * _K, (4 * _K, 8 * _K, 16 * _K, 32 * _K), ((16, 16), (32, 4), (32, 8)),
                                  128, "bfloat16"),
            max_test_seqlen=1100,
            gqa_groups=(1, 4, 8),
        ),
    )
}


def get_suite(name: str) -> Suite:
    """The suite called `name`; raises ConfigError naming the known suites otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), SUITES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown attention suite {name!r}; known suites are {sorted(SUITES)}{hint}") from None
