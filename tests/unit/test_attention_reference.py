"""The fp64 reference, reproducible inputs, row sampling and the dtype-tied tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoagent.targets.attention.reference import (
    TOLERANCES,
    compare,
    input_slice,
    make_inputs,
    reference_attention,
    reference_rows,
    round_to_dtype,
    sample_rows,
)
from evoagent.targets.attention.suites import make_config


def _naive(q, k, v, causal, scale):
    """Row by row, with explicit loops over heads (the textbook definition)."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    b_, hq, n, d = q.shape
    out = np.zeros_like(q, dtype=np.float64)
    group = hq // k.shape[1]
    for b in range(b_):
        for h in range(hq):
            for i in range(n):
                keys = range(i + 1) if causal else range(n)
                s = np.array([q[b, h, i] @ k[b, h // group, j] * scale for j in keys], dtype=np.float64)
                w = np.exp(s - s.max())
                w /= w.sum()
                out[b, h, i] = sum(w[t] * v[b, h // group, j] for t, j in enumerate(keys))
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_the_textbook_definition_with_gqa(causal: bool) -> None:
    config = make_config(2, 4, 2, 7, 8, causal, "float32")
    q, k, v = make_inputs(config, seed=3)
    got = reference_attention(q, k, v, causal=causal, sm_scale=0.3)
    np.testing.assert_allclose(got, _naive(q, k, v, causal, 0.3), rtol=1e-12, atol=1e-12)


def test_inputs_are_reproducible_and_differ_by_seed() -> None:
    config = make_config(1, 2, 1, 33, 64, False, "float16")
    first, again, other = make_inputs(config, 5), make_inputs(config, 5), make_inputs(config, 6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    np.testing.assert_array_equal(first[1][0, 0], input_slice(config, 5, "k", 0, 0))


@pytest.mark.parametrize("dtype, torch_dtype", [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_rounding_matches_torch_casts(dtype: str, torch_dtype: torch.dtype) -> None:
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 10
    want = torch.from_numpy(x).to(torch_dtype).float().numpy()
    np.testing.assert_array_equal(round_to_dtype(x, dtype), want)


def test_reference_rows_equal_the_full_reference_at_those_rows() -> None:
    config = make_config(2, 4, 1, 40, 16, True, "float16")
    q, k, v = make_inputs(config, 11)
    full = reference_attention(q, k, v, causal=True, sm_scale=0.25)
    rows = np.array([[0, 0, 0], [1, 3, 39], [1, 2, 17]], dtype=np.int64)
    got = reference_rows(config, 11, 0.25, rows)
    np.testing.assert_allclose(got, full[rows[:, 0], rows[:, 1], rows[:, 2]], rtol=1e-12)


def test_small_outputs_are_checked_at_every_row() -> None:
    config = make_config(1, 2, 2, 30, 64, False, "float16")
    rows = sample_rows(config, np.random.default_rng(0))
    assert rows.shape == (config.rows, 3)


def test_large_outputs_sample_edges_and_the_last_head() -> None:
    config = make_config(2, 16, 16, 4096, 128, True, "bfloat16")
    rows = sample_rows(config, np.random.default_rng(0), max_rows=1024)
    assert len(rows) <= 1100
    last = rows[(rows[:, 0] == 1) & (rows[:, 1] == 15)][:, 2]
    assert {0, 15, 4080, 4095} <= set(last.tolist())


def test_tolerance_accepts_rounded_output_and_rejects_zeros_nan_and_coarse_numerics() -> None:
    config = make_config(1, 2, 2, 512, 64, False, "bfloat16")
    q, k, v = make_inputs(config, 1)
    ref = reference_attention(q, k, v, causal=False, sm_scale=64 ** -0.5)
    assert compare(round_to_dtype(ref.astype(np.float32), "bfloat16"), ref, "bfloat16").ok
    zeros = compare(np.zeros_like(ref), ref, "bfloat16")  # long rows: outputs are small; zeros must still fail
    assert not zeros.ok
    poisoned = ref.copy()
    poisoned[0, 1, 511, 3] = np.nan
    assert "NaN" in compare(poisoned, ref, "bfloat16").reason
    mantissa, exponent = np.frexp(ref)
    coarse = np.ldexp(np.round(mantissa * 16) / 16, exponent)  # 3 mantissa bits, like fp8 e4m3
    assert not compare(coarse, ref, "bfloat16").ok


def test_tolerances_are_tighter_for_more_precise_dtypes() -> None:
    fp32, fp16, bf16 = TOLERANCES["float32"], TOLERANCES["float16"], TOLERANCES["bfloat16"]
    assert fp32.rel_l2 < fp16.rel_l2 < bf16.rel_l2


def test_shape_mismatch_is_reported() -> None:
    outcome = compare(np.zeros((2, 3)), np.zeros((3, 2)), "float16")
    assert not outcome.ok and "shape" in outcome.reason
