"""Seed kernel: a plain FlashAttention-2-style forward pass in Triton (MHA and GQA, causal or not).

References:
  * Dao et al., "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness" (2022):
    tile Q, K, V so that the N x N score matrix never leaves on-chip memory, and keep a running
    ("online") softmax so that each row of the output is normalised once, at the end.
  * Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning" (2023):
    parallelise over blocks of query rows as well as over (batch, head); rescale the accumulator
    lazily and divide by the softmax denominator only once after the last key block.
  * Milakov & Gimelshein, "Online normalizer calculation for softmax" (2018): the running max /
    running sum recurrence used below.

The contract (what evoagent's attention evaluator calls):

    attention(q, k, v, *, causal, sm_scale) -> o
    q: (B, H_Q, N, D), k and v: (B, H_KV, N, D) with H_Q % H_KV == 0, contiguous, fp16 or bf16.
    o: a new (B, H_Q, N, D) tensor of q's dtype, o = softmax(sm_scale * q @ k^T [+ causal mask]) @ v.

Grouped-query attention (GQA) needs no copy of K and V: query head h reads key/value head
h // (H_Q // H_KV). Sequence lengths need not be multiples of the block sizes: the last key block
and the last query block are masked.

The module-level constants marked `# evo:` are the tuning knobs an evolutionary search may change
(one value from the listed choices); everything else is the algorithm.
"""

import math

import torch
import triton
import triton.language as tl

BLOCK_M = 128  # evo: choices 64 128
BLOCK_N = 64  # evo: choices 32 64 128
NUM_WARPS = 8  # evo: choices 4 8
NUM_STAGES = 3  # evo: choices 1 2 3 4


@triton.jit
def _attend_to_key_blocks(
    acc, l_i, m_i, q,
    k_base, v_base, stride_kn, stride_vn,
    offs_m, lo, hi, N_CTX,
    qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr,
):
    """Folds the key/value blocks [lo, hi) into the running softmax state (acc, l_i, m_i).

    MASKED blocks may hold keys past the end of the sequence (ragged tail) or, when CAUSAL, keys
    after some of the queries; unmasked blocks are known to be fully visible, so they skip both
    the bounds checks and the `where`.
    """
    offs_d = tl.arange(0, HEAD_DIM)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :]  # (BLOCK_N, HEAD_DIM)
        v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]  # (BLOCK_N, HEAD_DIM)
        if MASKED:
            in_bounds = offs_n[:, None] < N_CTX
            k = tl.load(k_ptrs, mask=in_bounds, other=0.0)
            v = tl.load(v_ptrs, mask=in_bounds, other=0.0)
        else:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)

        # Scores in the log2 domain: s = (q . k) * sm_scale * log2(e).
        qk = tl.dot(q, tl.trans(k)) * qk_scale  # (BLOCK_M, BLOCK_N), fp32
        if MASKED:
            visible = offs_n[None, :] < N_CTX
            if CAUSAL:
                visible = visible & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(visible, qk, float("-inf"))

        # Online softmax: new running max, rescale what was accumulated so far, add this block.
        # Every row sees at least one key in the first block it visits (key 0, or for causal
        # blocks the key at the row block's start), so m_new is finite and no NaN appears.
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attention_forward(
    Q, K, V, Out,
    sm_scale,
    stride_qb, stride_qh, stride_qn,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_on,
    H_Q, GROUP_SIZE, N_CTX,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    """One program computes BLOCK_M rows of the output for one (batch, query head)."""
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H_Q
    off_h = off_bh % H_Q
    off_h_kv = off_h // GROUP_SIZE  # GQA: GROUP_SIZE query heads share one key/value head

    q_base = Q + off_b.to(tl.int64) * stride_qb + off_h.to(tl.int64) * stride_qh
    k_base = K + off_b.to(tl.int64) * stride_kb + off_h_kv.to(tl.int64) * stride_kh
    v_base = V + off_b.to(tl.int64) * stride_vb + off_h_kv.to(tl.int64) * stride_vh
    o_base = Out + off_b.to(tl.int64) * stride_ob + off_h.to(tl.int64) * stride_oh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in_bounds = offs_m[:, None] < N_CTX
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :], mask=row_in_bounds, other=0.0)

    # Running softmax state per query row: max m_i, denominator l_i, unnormalised output acc.
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # exp(x) == exp2(x * log2(e)); exp2 is the instruction the hardware has (MUFU.EX2).
    qk_scale = sm_scale * 1.4426950408889634  # log2(e)

    # Key blocks [0, full_end) need no mask; [full_end, masked_end) do.
    if CAUSAL:
        full_end = (start_m * BLOCK_M) // BLOCK_N * BLOCK_N  # entirely left of the diagonal
        masked_end = tl.minimum((start_m + 1) * BLOCK_M, N_CTX)
    else:
        full_end = N_CTX // BLOCK_N * BLOCK_N  # every whole block
        masked_end = N_CTX  # the ragged tail, if any
    acc, l_i, m_i = _attend_to_key_blocks(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, 0, full_end, N_CTX,
        qk_scale, HEAD_DIM, BLOCK_N, False, CAUSAL,
    )
    acc, l_i, m_i = _attend_to_key_blocks(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, full_end, masked_end, N_CTX,
        qk_scale, HEAD_DIM, BLOCK_N, True, CAUSAL,
    )

    out = acc / l_i[:, None]
    tl.store(o_base + offs_m[:, None] * stride_on + offs_d[None, :], out.to(Out.dtype.element_ty),
             mask=row_in_bounds)


def attention(q, k, v, *, causal, sm_scale):
    """softmax(sm_scale * q @ k^T) @ v for q (B, H_Q, N, D) and k, v (B, H_KV, N, D)."""
    batch, heads_q, n_ctx, head_dim = q.shape
    heads_kv = k.shape[1]
    assert k.shape == v.shape == (batch, heads_kv, n_ctx, head_dim), "k and v must be (B, H_KV, N, D)"
    assert heads_q % heads_kv == 0, "the number of query heads must be a multiple of key/value heads"
    assert head_dim in (16, 32, 64, 128, 256), "head dim must be a power of two from 16 to 256"
    assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1, "the last dimension must be contiguous"

    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, BLOCK_M), batch * heads_q)
    _attention_forward[grid](
        q, k, v, out,
        sm_scale,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        heads_q, heads_q // heads_kv, n_ctx,
        HEAD_DIM=head_dim, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        num_warps=NUM_WARPS, num_stages=NUM_STAGES,
    )
    return out


def _reference(q, k, v, *, causal, sm_scale):
    """The same attention in fp32 with plain torch ops (GQA by repeating K/V heads)."""
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    scores = (q.float() @ k.transpose(-1, -2)) * sm_scale
    if causal:
        n = q.shape[2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v).to(q.dtype)


def test_attention_matches_reference(device="cpu", dtype=torch.float16):
    """Checks a few ragged and GQA shapes against the fp32 reference (atol/rtol as in the tutorial)."""
    torch.manual_seed(0)
    for batch, heads_q, heads_kv, n_ctx, head_dim, causal in [
        (1, 2, 2, 33, 64, False), (1, 4, 2, 70, 64, True), (2, 2, 1, 16, 16, True),
    ]:
        q = torch.randn(batch, heads_q, n_ctx, head_dim, device=device, dtype=dtype)
        k = torch.randn(batch, heads_kv, n_ctx, head_dim, device=device, dtype=dtype)
        v = torch.randn(batch, heads_kv, n_ctx, head_dim, device=device, dtype=dtype)
        scale = 1.0 / math.sqrt(head_dim)
        got = attention(q, k, v, causal=causal, sm_scale=scale)
        want = _reference(q, k, v, causal=causal, sm_scale=scale)
        torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)


if __name__ == "__main__":
    # A quick throughput check on a GPU (or a correctness check under TRITON_INTERPRET=1).
    if torch.cuda.is_available():
        test_attention_matches_reference("cuda", torch.bfloat16)
        for causal in (False, True):
            shape = (4, 16, 4096, 128)
            q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            ms = triton.testing.do_bench(lambda: attention(q, k, v, causal=causal, sm_scale=128**-0.5))
            flops = 4 * shape[0] * shape[1] * shape[2] ** 2 * shape[3] * (0.5 if causal else 1.0)
            print(f"causal={causal}: {ms:.3f} ms, {flops / ms * 1e-9:.1f} TFLOPS")
    else:
        test_attention_matches_reference()
        print("ok (interpreter)")
