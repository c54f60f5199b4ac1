"""Reproducible random inputs, the fp64 attention reference (GQA by repeating K/V heads), tolerances."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .suites import AttentionConfig

# Inputs are generated per (tensor, batch, head) slice from its own stream, so that the trusted
# process can rebuild only the slices it needs to check sampled rows of a large output.
_TENSOR_IDS = {"q": 0, "k": 1, "v": 2}


def round_to_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values rounded to the nearest value of `dtype` (round to nearest even), as float32."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float32":
        return x
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        bits = x.view(np.uint32)  # finite values: the sum below cannot overflow 32 bits
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
        return np.asarray(rounded.view(np.float32))  # the top 16 bits, rounded to nearest even
    raise ValueError(f"unknown dtype {dtype!r}; expected float16, bfloat16 or float32")


def input_slice(config: AttentionConfig, seed: int, tensor: str, batch: int, head: int) -> np.ndarray:
    """One (N, D) slice of q, k or v: standard normal values representable in the config's dtype."""
    rng = np.random.default_rng([seed, _TENSOR_IDS[tensor], batch, head])
    values = rng.standard_normal((config.seqlen, config.head_dim), dtype=np.float32)
    return round_to_dtype(values, config.dtype)


def make_inputs(config: AttentionConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q, k, v as float32 arrays (values exact in the config's dtype), rebuilt identically anywhere."""
    def build(tensor: str, heads: int) -> np.ndarray:
        out = np.empty((config.batch, heads, config.seqlen, config.head_dim), dtype=np.float32)
        for b in range(config.batch):
            for h in range(heads):
                out[b, h] = input_slice(config, seed, tensor, b, h)
        return out

    return build("q", config.heads_q), build("k", config.heads_kv), build("v", config.heads_kv)


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: bool,
                        sm_scale: float) -> np.ndarray:
    """softmax(sm_scale * q k^T) v in float64; k and v heads repeated for GQA. Shapes (B, H, N, D)."""
    group = q.shape[1] // k.shape[1]
    q64 = np.asarray(q, dtype=np.float64)
    k64 = np.repeat(np.asarray(k, dtype=np.float64), group, axis=1)
    v64 = np.repeat(np.asarray(v, dtype=np.float64), group, axis=1)
    scores = np.einsum("bhnd,bhmd->bhnm", q64, k64) * sm_scale
    if causal:
        n = q.shape[2]
        scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    return np.asarray(np.einsum("bhnm,bhmd->bhnd", _softmax(scores), v64))


def _softmax(scores: np.ndarray) -> np.ndarray:
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.asarray(weights / weights.sum(axis=-1, keepdims=True))


def sample_rows(config: AttentionConfig, rng: np.random.Generator, *, max_rows: int = 4096,
                max_heads: int = 4) -> np.ndarray:
    """Output rows (b, h, n) to check, as an int64 array (R, 3); every row when there are few.

    For a large output: a few (batch, head) pairs (the last one always, where ragged indexing
    errors show), and in each the first and last 16 rows plus random rows in between.
    """
    if config.rows <= max_rows:
        grid = np.indices((config.batch, config.heads_q, config.seqlen)).reshape(3, -1).T
        return np.asarray(grid, dtype=np.int64)
    pairs = {(config.batch - 1, config.heads_q - 1)}
    while len(pairs) < min(max_heads, config.batch * config.heads_q):
        pairs.add((int(rng.integers(config.batch)), int(rng.integers(config.heads_q))))
    per_pair = max(64, max_rows // len(pairs))
    rows = []
    for b, h in sorted(pairs):
        edge = np.r_[0:min(16, config.seqlen), max(0, config.seqlen - 16):config.seqlen]
        middle = rng.choice(config.seqlen, size=min(config.seqlen, per_pair - edge.size), replace=False)
        for n in np.unique(np.r_[edge, middle]):
            rows.append((b, h, int(n)))
    return np.asarray(rows, dtype=np.int64)


def _rows_by_head(rows: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    for b, h in sorted({(int(b), int(h)) for b, h, _ in rows}):
        picked = np.flatnonzero((rows[:, 0] == b) & (rows[:, 1] == h))
        yield b, h, picked


def reference_rows(config: AttentionConfig, seed: int, sm_scale: float, rows: np.ndarray) -> np.ndarray:
    """The fp64 reference output at `rows` (R, 3) of the inputs `make_inputs(config, seed)`: (R, D)."""
    group = config.heads_q // config.heads_kv
    out = np.empty((rows.shape[0], config.head_dim), dtype=np.float64)
    for b, h, picked in _rows_by_head(rows):
        q = input_slice(config, seed, "q", b, h).astype(np.float64)[rows[picked, 2]]
        k = input_slice(config, seed, "k", b, h // group).astype(np.float64)
        v = input_slice(config, seed, "v", b, h // group).astype(np.float64)
        scores = (q @ k.T) * sm_scale
        if config.causal:
            keys = np.arange(config.seqlen)
            scores = np.where(keys[None, :] <= rows[picked, 2][:, None], scores, -np.inf)
        out[picked] = _softmax(scores) @ v
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerance:
    """How far a candidate's output may be from the fp64 reference, for one input dtype.

    An element passes when |out - ref| <= atol * rms(ref) + rtol * |ref|, and the whole output
    when every element passes and ||out - ref|| / ||ref|| <= rel_l2 (Frobenius norms). The absolute
    part is scaled by the reference's RMS because attention outputs shrink like 1/sqrt(N) for
    random inputs: a fixed atol would accept an all-zero output at long sequence lengths.

    The values allow an honest kernel its dtype's rounding (P and the output are rounded to the
    input dtype: fp16 eps = 2^-11, bf16 eps = 2^-8) with margin, and reject kernels that compute in
    a lower precision (fp8 e4m3 has eps 2^-4, an error several times larger than rel_l2 here).
    """

    atol: float
    rtol: float
    rel_l2: float


TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=2e-3, rtol=2e-3, rel_l2=5e-4),
    "float16": Tolerance(atol=1e-2, rtol=1e-2, rel_l2=2e-3),
    "bfloat16": Tolerance(atol=6e-2, rtol=5e-2, rel_l2=1e-2),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """The outcome of comparing an output with the reference."""

    ok: bool
    reason: str
    max_abs_err: float
    rel_l2: float
    worst_index: tuple[int, ...] = ()


def compare(out: np.ndarray, ref: np.ndarray, dtype: str) -> Comparison:
    """Checks `out` against `ref` (same shape) with the dtype's tolerance; `worst_index` locates the worst
    (or first non-finite) element."""
    tol = TOLERANCES[dtype]
    out64 = np.asarray(out, dtype=np.float64)
    if out64.shape != ref.shape:
        return Comparison(ok=False, reason=f"output shape {out64.shape} != expected {ref.shape}",
                          max_abs_err=float("inf"), rel_l2=float("inf"))
    finite = np.isfinite(out64)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        count = int((~finite).sum())
        return Comparison(ok=False, reason=f"{count} of {out64.size} output elements are NaN or inf "
                          "(unwritten or poisoned memory?)",
                          max_abs_err=float("inf"), rel_l2=float("inf"), worst_index=where)
    err = np.abs(out64 - ref)
    ref_rms = float(np.sqrt(np.mean(ref * ref))) or 1.0
    excess = err - (tol.atol * ref_rms + tol.rtol * np.abs(ref))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
    rel_l2 = float(np.linalg.norm(err) / (np.linalg.norm(ref) or 1.0))
    max_abs = float(err.max()) if err.size else 0.0
    if excess[worst] > 0:
        bad = int((excess > 0).sum())
        return Comparison(
            ok=False, max_abs_err=max_abs, rel_l2=rel_l2, worst_index=worst,
            reason=(f"{bad} of {err.size} elements outside tolerance; the worst: got "
                    f"{out64[worst]:.6g}, expected {ref[worst]:.6g} (allowed |err| <= {tol.atol:g}*rms(ref) + "
                    f"{tol.rtol:g}*|ref| for {dtype})"),
        )
    if rel_l2 > tol.rel_l2:
        return Comparison(ok=False, max_abs_err=max_abs, rel_l2=rel_l2, worst_index=worst,
                          reason=f"relative L2 error {rel_l2:.3g} > {tol.rel_l2:g} allowed for {dtype} "
                                 "(computing in too low a precision?)")
    return Comparison(ok=True, reason="", max_abs_err=max_abs, rel_l2=rel_l2, worst_index=worst)
