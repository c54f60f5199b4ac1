"""The GPU replay's per-repetition checks, run on CPU tensors (the rows it draws and how it judges them)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from evoagent.targets.attention.gpu_measure import _sample, _verify  # noqa: E402
from evoagent.targets.attention.suites import make_config  # noqa: E402

CONFIG = make_config(2, 4, 2, 40, 64, True, "float16")
SCALE = 0.125


def _inputs(seed: int = 0) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(CONFIG.q_shape, generator=gen).half()
    k, v = (torch.randn(CONFIG.kv_shape, generator=gen).half() for _ in range(2))
    return q, k, v


def _answer(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True,
                                                            scale=SCALE, enable_gqa=True).half()


def test_a_right_answer_passes_whatever_rows_are_drawn() -> None:
    q, k, v = _inputs()
    host = tuple(t.clone() for t in (q, k, v))
    for seed in range(5):
        sample = _sample(CONFIG, _answer(q, k, v), (q, k, v), host, np.random.default_rng(seed), 8)
        assert _verify(CONFIG, SCALE, 0, sample) is None


def test_an_answer_wrong_in_one_head_is_found_when_that_head_is_drawn() -> None:
    q, k, v = _inputs()
    out = _answer(q, k, v)
    out[1, 3] += 0.5
    host = tuple(t.clone() for t in (q, k, v))
    verdicts = [_verify(CONFIG, SCALE, 0, _sample(CONFIG, out, (q, k, v), host, np.random.default_rng(s), 8))
                for s in range(40)]
    found = [v for v in verdicts if v is not None]
    assert found and all(v["kind"] == "incorrect" and "head 3" in v["reason"] for v in found)


def test_an_input_changed_by_the_kernels_is_illegal() -> None:
    q, k, v = _inputs()
    host = tuple(t.clone() for t in (q, k, v))
    k.zero_()
    sample = _sample(CONFIG, _answer(*host), (q, k, v), host, np.random.default_rng(0), 8)
    assert _verify(CONFIG, SCALE, 0, sample)["kind"] == "illegal"
