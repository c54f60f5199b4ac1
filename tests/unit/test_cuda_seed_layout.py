"""The CUDA seed's fragment index math, run lane by lane in NumPy (no GPU on this machine).

The PTX side is modelled from the PTX ISA's tables, independently of the kernel:
  * mma.m16n8k16 (.f16/.bf16, fp32 accumulate): with groupID = lane / 4 and t = lane % 4, A element
    a_i sits at row groupID (+8 for i in {2,3,6,7}), column 2t + (i % 2) (+8 for i >= 4); B element
    b_i at row 2t + (i % 2) (+8 for i >= 2), column groupID; C element c_i at row groupID (+8 for
    i >= 2), column 2t + (i % 2). Two 16-bit elements per 32-bit register, the lower index low.
  * ldmatrix.m8n8.x4.b16: lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l
    holds row l / 4, columns 2(l % 4) and 2(l % 4) + 1 of matrix i (of its transpose with .trans).

The kernel side is read from the seed's CUDA source: every address, mask and packing expression the
model evaluates is extracted from `CUDA_SOURCE` (C++ integer division becomes `//`), so a change of
the kernel's indexing is tested as written. The emulation then runs whole thread blocks (all warps,
all key tiles, the online softmax, masks, GQA head mapping, the epilogue's stores) and compares with
softmax attention in float64.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SEED = Path(__file__).parents[2] / "src/evoagent/targets/attention/kernels/cuda_fa2.py"


def cuda_source(kernel_file_text: str) -> str:
    """The CUDA_SOURCE literal of a kernel file, read without running it."""
    return next(node.value.value for node in ast.parse(kernel_file_text).body
                if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["CUDA_SOURCE"])


SOURCE = cuda_source(SEED.read_text())
LANE = np.arange(32)
GROUP, QUAD = LANE // 4, LANE % 4


# ---- the PTX ISA's fragment layouts (independent of the kernel) ---------------------------------

def _a_coords() -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of A element (reg, lane, half) of mma.m16n8k16."""
    i = 2 * np.arange(4)[:, None, None] + np.arange(2)[None, None, :]  # a_i index, (4, 1, 2)
    row = GROUP[None, :, None] + 8 * ((i // 2) % 2)
    col = 2 * QUAD[None, :, None] + i % 2 + 8 * (i // 4)
    return np.broadcast_to(row, (4, 32, 2)), np.broadcast_to(col, (4, 32, 2))


def _b_coords() -> tuple[np.ndarray, np.ndarray]:
    i = 2 * np.arange(2)[:, None, None] + np.arange(2)[None, None, :]  # b_i index, (2, 1, 2)
    row = 2 * QUAD[None, :, None] + i % 2 + 8 * (i // 2)
    col = np.broadcast_to(GROUP[None, :, None], (2, 32, 2))
    return np.broadcast_to(row, (2, 32, 2)), col


def _c_coords() -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(4)[None, :]
    return GROUP[:, None] + 8 * (i // 2), 2 * QUAD[:, None] + i % 2  # (32, 4) each


A_ROW, A_COL = _a_coords()
B_ROW, B_COL = _b_coords()
C_ROW, C_COL = _c_coords()


def mma_16816(c: np.ndarray, a: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """D = A B + C for one warp: c (32, 4) fp32, a (4, 32, 2), b0 and b1 (32, 2) 16-bit values."""
    a_mat = np.zeros((16, 16))
    a_mat[A_ROW, A_COL] = a
    b_mat = np.zeros((16, 8))
    b_mat[B_ROW, B_COL] = np.stack([b0, b1])
    c_mat = np.zeros((16, 8))
    c_mat[C_ROW, C_COL] = c
    d = (a_mat @ b_mat + c_mat).astype(np.float32)
    return d[C_ROW, C_COL]


def ldmatrix_x4(smem: np.ndarray, addr: np.ndarray, trans: bool = False) -> np.ndarray:
    """Four 8x8 b16 matrices whose rows start at the 32 lanes' element addresses -> (4, 32, 2)."""
    assert addr.shape == (32,) and np.all(addr % 8 == 0), "ldmatrix rows are 16-byte aligned"
    mats = smem[addr[:, None] + np.arange(8)].reshape(4, 8, 8)  # matrix i = lanes 8i..8i+7
    half = np.arange(2)[None, :]
    if trans:
        return mats[:, 2 * QUAD[:, None] + half, GROUP[:, None]]
    return mats[:, GROUP[:, None], 2 * QUAD[:, None] + half]


def test_ptx_fragment_maps_cover_each_element_once() -> None:
    for rows, cols, shape in ((A_ROW, A_COL, (16, 16)), (B_ROW, B_COL, (16, 8)), (C_ROW, C_COL, (16, 8))):
        seen = np.zeros(shape, dtype=int)
        np.add.at(seen, (rows, cols), 1)
        assert np.all(seen == 1)


# ---- the kernel's expressions, read from CUDA_SOURCE ------------------------------------------------

def _call_args(anchor: str, source: str = SOURCE) -> list[str]:
    """The top-level arguments of the call that `anchor` opens (anchor ends with '(')."""
    assert source.count(anchor) == 1, f"expected one {anchor!r} in CUDA_SOURCE"
    start = source.index(anchor) + len(anchor)
    depth, args, current = 1, [], ""
    for ch in source[start:]:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            break
        if ch == "," and depth == 1:
            args.append(current)
            current = ""
        else:
            current += ch
    return [" ".join(a.split()) for a in [*args, current]]


def _match(pattern: str, source: str = SOURCE) -> str:
    found = re.findall(pattern, source)
    assert len(found) == 1, f"expected one match of {pattern!r} in CUDA_SOURCE, got {len(found)}"
    return " ".join(found[0].split())


def _py(expr: str) -> str:
    """A C++ integer expression as Python (non-negative operands: `/` truncates like `//`)."""
    expr = re.sub(r"static_cast<[^>]+>", "", expr).replace("<T>", "").replace("<HEAD_DIM>", "")
    return re.sub(r"(?<![/*])/(?![/*])", "//", expr)


def _fn(expr: str, *names: str):
    code = compile(_py(expr), "<CUDA_SOURCE>", "eval")
    return lambda **env: eval(code, {"np": np}, env)  # noqa: S307 - expressions from our own seed


KNOBS = {name: int(_match(rf"constexpr int {name} = (\d+);")) for name in ("BLOCK_M", "BLOCK_N", "NUM_STAGES")}
SWIZZLE = _fn(_match(r"int swizzle\(int row, int col\) \{\s*return ([^;]+);"))
LOAD_ROW = _fn(_match(r"const int row = (c / CHUNKS_PER_ROW), col ="))
LOAD_COL = _fn(_match(r"const int row = c / CHUNKS_PER_ROW, col = ([^;]+);"))
Q_ADDR = [_fn(a) for a in _call_args("ldmatrix_x4(q_frag[kk], q_tile + swizzle<HEAD_DIM>(")]
K_ADDR = [_fn(a) for a in _call_args("ldmatrix_x4(kb, k_tile + swizzle<HEAD_DIM>(")]
V_ADDR = [_fn(a) for a in _call_args("ldmatrix_x4_trans(vb, v_tile + swizzle<HEAD_DIM>(")]
MASK_KEY = _fn(_match(r"const int key = ([^;]+);"))
MASK_ROW = _fn(_match(r"const int row = (warp_row0 \+ group \+ \(e / 2\) \* 8);"))
P_PACK = [  # each register of P's A fragment: the (low, high) score elements packed into it
    _fn(a) for a in re.findall(r"pack2<T>\((s\[[^\]]+\]\[\d\], s\[[^\]]+\]\[\d\])\)", _match(r"pa\[4\] = \{([^}]+)\}"))
]
OUT_ROW = _fn(_match(r"const int row = (warp_row0 \+ group \+ r \* 8);"))
OUT_COL = _fn(_match(r"HEAD_DIM \+ (j \* 8 \+ quad \* 2)\) = packed;"))
KV_HEAD = _fn(_match(r"const int h_kv = ([^;]+);"))

# Control flow the model mirrors by hand: the source must still say exactly this.
MIRRORED = [
    "const int n_end = CAUSAL ? min(p.n_ctx, m_start + BLOCK_M) : p.n_ctx;",
    "const int n_tiles = (n_end + BLOCK_N - 1) / BLOCK_N;",
    "if (CAUSAL && n_start > warp_row0 + 15) continue;",
    "if (n_start + BLOCK_N > p.n_ctx || (CAUSAL && n_start + BLOCK_N - 1 > warp_row0)) {",
    "if (key >= p.n_ctx || (CAUSAL && key > row)) s[j][e] = -INFINITY;",
    "const float m_new = fmaxf(row_max[r], mx * p.scale_log2);",
    "const float m_use = m_new == -INFINITY ? 0.f : m_new;",
    "const float alpha = exp2_approx(row_max[r] - m_use);",
    "s[j][2 * r] = exp2_approx(fmaf(s[j][2 * r], p.scale_log2, -m_use));",
    "const float inv = sum > 0.f ? 1.f / sum : 0.f;",
    "const int warp_row0 = m_start + warp * 16;",
    "mma_16816<T>(s[2 * nn], q_frag[kk], kb[0], kb[1]);",
    "mma_16816<T>(s[2 * nn + 1], q_frag[kk], kb[2], kb[3]);",
    "mma_16816<T>(acc[2 * dd], pa, vb[0], vb[1]);",
    "mma_16816<T>(acc[2 * dd + 1], pa, vb[2], vb[3]);",
    # pack2(lo, hi): PTX's cvt.rn.f16x2.f32 d, a, b puts a in the upper half, b in the lower
    'asm("cvt.rn.f16x2.f32 %0, %1, %2;\\n" : "=r"(r) : "f"(hi), "f"(lo));',
    'asm("cvt.rn.bf16x2.f32 %0, %1, %2;\\n" : "=r"(r) : "f"(hi), "f"(lo));',
]


def test_the_mirrored_control_flow_is_the_sources() -> None:
    flat = " ".join(SOURCE.split())
    for line in MIRRORED:
        assert line in flat, f"the NumPy model mirrors {line!r}, which CUDA_SOURCE no longer has"
    assert len(P_PACK) == 4


# ---- the emulation ---------------------------------------------------------------------------------

def _fp16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float16).astype(np.float32)


def load_tile(head: np.ndarray, row0: int, rows: int, head_dim: int) -> np.ndarray:
    """The swizzled shared-memory tile `load_tile` writes (cp.async zero-fill past n_ctx)."""
    c = np.arange(rows * head_dim // 8)
    row = LOAD_ROW(c=c, CHUNKS_PER_ROW=head_dim // 8)
    col = LOAD_COL(c=c, CHUNKS_PER_ROW=head_dim // 8)
    dst = SWIZZLE(row=row, col=col, HEAD_DIM=head_dim)
    written = np.zeros(rows * head_dim, dtype=int)
    tile = np.full(rows * head_dim, np.nan, dtype=np.float32)
    for r, cc, d in zip(row, col, dst):
        written[d:d + 8] += 1
        inside = row0 + r < head.shape[0]
        tile[d:d + 8] = head[row0 + r, cc:cc + 8] if inside else 0.0
    assert np.all(written == 1), "every element of the tile is written exactly once"
    return tile


def emulate_warp(p, q_tile, kv_tiles, m_start, warp, causal, head_dim, block_m, block_n):
    """One warp's 16 output rows: (rows (32, 2), values (32, 2, head_dim // 8, 2))."""
    env = dict(lane=LANE, group=GROUP, quad=QUAD, HEAD_DIM=head_dim, warp=warp)
    q_frag = [ldmatrix_x4(q_tile, SWIZZLE(row=Q_ADDR[0](kk=kk, **env), col=Q_ADDR[1](kk=kk, **env),
                                          HEAD_DIM=head_dim)) for kk in range(head_dim // 16)]
    warp_row0 = m_start + warp * 16
    row_max = np.full((2, 32), -np.inf, dtype=np.float32)
    row_sum = np.zeros((2, 32), dtype=np.float32)
    acc = np.zeros((head_dim // 8, 32, 4), dtype=np.float32)
    for tile, (k_tile, v_tile) in enumerate(kv_tiles):
        n_start = tile * block_n
        if causal and n_start > warp_row0 + 15:
            continue
        s = np.zeros((block_n // 8, 32, 4), dtype=np.float32)
        for kk in range(head_dim // 16):
            for nn in range(block_n // 16):
                kb = ldmatrix_x4(k_tile, SWIZZLE(row=K_ADDR[0](nn=nn, kk=kk, **env),
                                                 col=K_ADDR[1](nn=nn, kk=kk, **env), HEAD_DIM=head_dim))
                s[2 * nn] = mma_16816(s[2 * nn], q_frag[kk], kb[0], kb[1])
                s[2 * nn + 1] = mma_16816(s[2 * nn + 1], q_frag[kk], kb[2], kb[3])
        if n_start + block_n > p.n_ctx or (causal and n_start + block_n - 1 > warp_row0):
            for j in range(block_n // 8):
                for e in range(4):
                    key = MASK_KEY(n_start=n_start, j=j, e=e, **env)
                    row = MASK_ROW(warp_row0=warp_row0, e=e, **env)
                    s[j][:, e] = np.where((key >= p.n_ctx) | (causal & (key > row)), -np.inf, s[j][:, e])
        for r in range(2):
            mx = s[:, :, 2 * r: 2 * r + 2].max(axis=(0, 2))
            mx = np.maximum(mx, mx[LANE ^ 1])  # __shfl_xor_sync(.., 1), then 2
            mx = np.maximum(mx, mx[LANE ^ 2])
            m_new = np.maximum(row_max[r], mx * p.scale_log2)
            m_use = np.where(m_new == -np.inf, 0.0, m_new).astype(np.float32)
            alpha = np.exp2(row_max[r] - m_use)
            row_max[r] = m_new
            row_sum[r] *= alpha
            acc[:, :, 2 * r: 2 * r + 2] *= alpha[None, :, None]
            s[:, :, 2 * r: 2 * r + 2] = np.exp2(s[:, :, 2 * r: 2 * r + 2] * p.scale_log2 - m_use[None, :, None])
            row_sum[r] += s[:, :, 2 * r: 2 * r + 2].sum(axis=(0, 2))

        def pack2(lo, hi):
            return _fp16(np.stack([lo, hi], axis=-1))

        # s[j][e] in the source is this model's s[j][:, e] (the lane axis in between).
        s_view = [[s[j][:, e] for e in range(4)] for j in range(block_n // 8)]
        for kk in range(block_n // 16):
            pa = np.stack([pack2(*f(s=s_view, kk=kk)) for f in P_PACK])
            for dd in range(head_dim // 16):
                vb = ldmatrix_x4(v_tile, SWIZZLE(row=V_ADDR[0](kk=kk, dd=dd, **env),
                                                 col=V_ADDR[1](kk=kk, dd=dd, **env), HEAD_DIM=head_dim), trans=True)
                acc[2 * dd] = mma_16816(acc[2 * dd], pa, vb[0], vb[1])
                acc[2 * dd + 1] = mma_16816(acc[2 * dd + 1], pa, vb[2], vb[3])
    out = []
    for r in range(2):
        total = row_sum[r] + row_sum[r][LANE ^ 1]
        total = total + total[LANE ^ 2]
        inv = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)
        rows = OUT_ROW(warp_row0=warp_row0, r=r, **env)
        values = [(acc[j][:, 2 * r] * inv, acc[j][:, 2 * r + 1] * inv,
                   OUT_COL(j=j, **env)) for j in range(head_dim // 8)]
        out.append((rows, values))
    return out


def emulate_attention(q, k, v, *, causal, sm_scale, block_m, block_n):
    """The kernel over every (m block, batch x head) of fp16-valued (B, H, N, D) arrays."""
    batch, heads_q, n_ctx, head_dim = q.shape
    heads_kv = k.shape[1]
    p = SimpleNamespace(n_ctx=n_ctx, heads_q=heads_q, heads_kv=heads_kv,
                        scale_log2=np.float32(sm_scale * 1.4426950408889634))
    out = np.full(q.shape, np.nan, dtype=np.float32)
    for bh in range(batch * heads_q):
        b, h = bh // heads_q, bh % heads_q
        h_kv = KV_HEAD(h=h, p=p)
        for m_block in range((n_ctx + block_m - 1) // block_m):
            m_start = m_block * block_m
            n_end = min(n_ctx, m_start + block_m) if causal else n_ctx
            q_tile = load_tile(q[b, h], m_start, block_m, head_dim)
            kv_tiles = [(load_tile(k[b, h_kv], t * block_n, block_n, head_dim),
                         load_tile(v[b, h_kv], t * block_n, block_n, head_dim))
                        for t in range((n_end + block_n - 1) // block_n)]
            for warp in range(block_m // 16):
                for rows, values in emulate_warp(p, q_tile, kv_tiles, m_start, warp, causal, head_dim,
                                                 block_m, block_n):
                    for lo, hi, col in values:
                        keep = rows < n_ctx
                        out[b, h, rows[keep], col[keep]] = lo[keep]
                        out[b, h, rows[keep], col[keep] + 1] = hi[keep]
    return out


def reference(q, k, v, *, causal, sm_scale):
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k.astype(np.float64), group, axis=1)
    v = np.repeat(v.astype(np.float64), group, axis=1)
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2) * sm_scale
    if causal:
        n = q.shape[2]
        scores = np.where(np.triu(np.ones((n, n), dtype=bool), 1), -np.inf, scores)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return scores / scores.sum(axis=-1, keepdims=True) @ v


@pytest.mark.parametrize(
    ("shape", "causal", "block_m", "block_n"),
    [
        ((1, 2, 1, 80, 64), True, KNOBS["BLOCK_M"], KNOBS["BLOCK_N"]),  # GQA, N below BLOCK_M, ragged key tile
        ((1, 2, 2, 80, 64), False, KNOBS["BLOCK_M"], KNOBS["BLOCK_N"]),
        ((1, 1, 1, 40, 128), True, 64, 32),  # D = 128, the other tile choices
        ((1, 1, 1, 144, 64), True, 64, 128),  # several query blocks, a diagonal inside a wide key tile
    ],
    ids=["gqa-causal-d64", "mha-d64", "causal-d128-64x32", "causal-d64-64x128"],
)
def test_emulated_kernel_computes_attention(shape, causal, block_m, block_n) -> None:
    batch, heads_q, heads_kv, n_ctx, head_dim = shape
    rng = np.random.default_rng(0)
    q, k, v = (_fp16(rng.standard_normal((batch, h, n_ctx, head_dim))) for h in (heads_q, heads_kv, heads_kv))
    sm_scale = head_dim ** -0.5
    got = emulate_attention(q, k, v, causal=causal, sm_scale=sm_scale, block_m=block_m, block_n=block_n)
    want = reference(q, k, v, causal=causal, sm_scale=sm_scale)
    assert not np.isnan(got).any(), "every output element is written"
    np.testing.assert_allclose(got, want, atol=4e-3, rtol=1e-2)


@pytest.mark.parametrize("head_dim", [64, 128])
def test_the_staged_output_recipe_stores_what_the_direct_epilogue_stores(head_dim: int) -> None:
    """The knowledge base's cuda-staged-output-stores edit, applied to the seed: the same values land in
    the same output elements, through the warp's rows of the Q tile and 16-byte chunks."""
    from evoagent.knowledge import KnowledgeBase

    staged = cuda_source(KnowledgeBase().recipe("cuda-staged-output-stores").apply(SEED.read_text()))
    stage_row = _fn(_match(r"const int row = (warp \* 16 \+ group \+ r \* 8);", staged))
    stage_col = _fn(_call_args("*reinterpret_cast<uint32_t*>(q_tile + swizzle<HEAD_DIM>(", staged)[1])
    assert _call_args("*reinterpret_cast<uint32_t*>(q_tile + swizzle<HEAD_DIM>(", staged)[0] == "row"
    assert "for (int c = lane; c < 16 * OUT_CHUNKS; c += 32) {" in staged
    out_row = _fn(_match(r"const int out_row = ([^,]+), out_col =", staged))
    out_col = _fn(_match(r"out_col = ([^;]+);", staged))
    read = [_fn(a) for a in _call_args("*reinterpret_cast<const uint4*>(q_tile + swizzle<HEAD_DIM>(", staged)]
    dest = _fn(_match(r"\(o \+ static_cast<int64_t>\(([^)]+)\) \* HEAD_DIM \+ out_col\)", staged))
    rng = np.random.default_rng(2)
    for warp in (0, 3):
        env = dict(lane=LANE, group=GROUP, quad=QUAD, HEAD_DIM=head_dim, warp=warp)
        acc = rng.standard_normal((head_dim // 8, 32, 4)).astype(np.float32)
        direct = np.full((16, head_dim), np.nan, dtype=np.float32)
        tile = np.full(8 * 16 * head_dim, np.nan, dtype=np.float32)  # the Q tile of 8 warps
        for r in range(2):
            rows = OUT_ROW(warp_row0=0, r=r, **env)
            for j in range(head_dim // 8):
                cols = OUT_COL(j=j, **env)
                direct[rows, cols], direct[rows, cols + 1] = acc[j][:, 2 * r], acc[j][:, 2 * r + 1]
                at = SWIZZLE(row=stage_row(r=r, **env), col=stage_col(j=j, **env), HEAD_DIM=head_dim)
                tile[at], tile[at + 1] = acc[j][:, 2 * r], acc[j][:, 2 * r + 1]
        written = np.full((16, head_dim), np.nan, dtype=np.float32)
        for c in range(16 * head_dim // 8):  # every lane's chunks of the loop, together
            r_, c_ = out_row(c=c, OUT_CHUNKS=head_dim // 8), out_col(c=c, OUT_CHUNKS=head_dim // 8)
            src = SWIZZLE(row=read[0](out_row=r_, **env), col=read[1](out_col=c_, **env), HEAD_DIM=head_dim)
            written[dest(warp_row0=0, out_row=r_), c_:c_ + 8] = tile[src:src + 8]
        assert not np.isnan(direct).any()
        np.testing.assert_array_equal(written, direct)


def test_a_transposed_v_operand_would_be_caught() -> None:
    """The model is not blind: P V with plain ldmatrix (no .trans) gives a different product."""
    rng = np.random.default_rng(1)
    v_tile = _fp16(rng.standard_normal(16 * 64))
    env = dict(lane=LANE, HEAD_DIM=64)
    addr = SWIZZLE(row=V_ADDR[0](kk=0, dd=0, **env), col=V_ADDR[1](kk=0, dd=0, **env), HEAD_DIM=64)
    assert not np.array_equal(ldmatrix_x4(v_tile, addr, trans=True), ldmatrix_x4(v_tile, addr))


@pytest.mark.parametrize("head_dim", [64, 128])
def test_every_ldmatrix_phase_is_free_of_bank_conflicts(head_dim: int) -> None:
    """Each 8-lane phase of every ldmatrix reads 8 rows of 16 bytes from 8 different 16-byte bank groups."""
    env = dict(lane=LANE, HEAD_DIM=head_dim, warp=1)
    addresses = [SWIZZLE(row=Q_ADDR[0](kk=kk, **env), col=Q_ADDR[1](kk=kk, **env), HEAD_DIM=head_dim)
                 for kk in range(head_dim // 16)]
    for kk in range(head_dim // 16):
        for nn in range(4):
            for table in (K_ADDR, V_ADDR):
                addresses.append(SWIZZLE(row=table[0](nn=nn, kk=kk, dd=nn, **env),
                                         col=table[1](nn=nn, kk=kk, dd=nn, **env), HEAD_DIM=head_dim))
    for addr in addresses:
        groups = (addr * 2 // 16) % 8  # 32 banks x 4 bytes = eight 16-byte groups
        for phase in range(4):
            assert len(set(groups[8 * phase: 8 * phase + 8])) == 8


class CommitGroups:
    """One thread's cp.async commit groups: which (buffer, tile) copies each holds, and how many completed."""

    def __init__(self) -> None:
        self.groups: list[list[tuple[str, int]]] = []
        self.done = 0

    def commit(self, copies: list[tuple[str, int]]) -> None:
        self.groups.append(copies)

    def wait(self, pending: int) -> None:  # cp.async.wait_group: at most `pending` newest groups still running
        self.done = max(self.done, len(self.groups) - pending)

    def landed(self, buffer: str, tile: int) -> bool:
        return any((buffer, tile) in g for g in self.groups[:self.done])


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_cp_async_pipeline_waits_for_each_tile_and_never_overwrites_a_tile_in_use(stages: int) -> None:
    """The prologue and loop's commit groups, as the kernel issues them, for 1..6 key tiles."""
    for wait_line in ("cp_async_wait<NUM_STAGES - 1>();  // Q has landed", "cp_async_wait<NUM_STAGES - 2>();",
                      "load_kv(tile, 0);\n      cp_async_commit();\n      cp_async_wait<0>();"):
        assert wait_line in SOURCE, f"the pipeline model mirrors {wait_line!r}"
    for n_tiles in range(1, 7):
        copies = CommitGroups()
        copies.commit([("q", 0)])
        for s in range(stages - 1):
            copies.commit([(f"kv{s}", s)] if s < n_tiles else [])
        copies.wait(stages - 1)
        assert copies.landed("q", 0)
        holds = {f"kv{s}": s for s in range(min(stages - 1, n_tiles))}
        for tile in range(n_tiles):
            if stages == 1:
                holds["kv0"] = tile  # after a barrier: every warp is done with the buffer
                copies.commit([("kv0", tile)])
                copies.wait(0)
            else:
                copies.wait(stages - 2)
                nxt = tile + stages - 1
                if nxt < n_tiles:
                    assert nxt % stages != tile % stages, "the refilled buffer is not the one computed on"
                    holds[f"kv{nxt % stages}"] = nxt
                copies.commit([(f"kv{nxt % stages}", nxt)] if nxt < n_tiles else [])
            buffer = f"kv{tile % stages}"
            assert holds[buffer] == tile and copies.landed(buffer, tile)
