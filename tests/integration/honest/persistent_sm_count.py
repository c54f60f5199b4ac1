"""Honest: a persistent kernel, one program per SM, sized from the device's multiprocessor count."""

import torch
import triton
import triton.language as tl


@triton.jit
def _attn_persistent(Q, K, V, Out, sm_scale, H_Q, GROUP, N_CTX, NUM_TILES_M, NUM_TILES,
                     HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                     NUM_PROGRAMS: tl.constexpr):
    offs_d = tl.arange(0, HEAD_DIM)
    for tile in tl.range(tl.program_id(0), NUM_TILES, NUM_PROGRAMS):
        start_m = tile % NUM_TILES_M
        bh = tile // NUM_TILES_M
        kv_bh = (bh // H_Q) * (H_Q // GROUP) + (bh % H_Q) // GROUP
        offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rows = offs_m[:, None] < N_CTX
        q = tl.load(Q + bh * N_CTX * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=rows, other=0.0)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
        for start_n in range(0, N_CTX, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            kv_off = kv_bh * N_CTX * HEAD_DIM + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
            k = tl.load(K + kv_off, mask=offs_n[:, None] < N_CTX, other=0.0)
            v = tl.load(V + kv_off, mask=offs_n[:, None] < N_CTX, other=0.0)
            qk = tl.dot(q, tl.trans(k)) * sm_scale
            keep = offs_n[None, :] < N_CTX
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(keep, qk, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.exp(qk - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        out = acc / l_i[:, None]
        tl.store(Out + bh * N_CTX * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
                 out.to(Out.dtype.element_ty), mask=rows)


def attention(q, k, v, *, causal, sm_scale):
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    num_sms = torch.cuda.get_device_properties(q.device).multi_processor_count
    tiles_m = triton.cdiv(n_ctx, 32)
    tiles = tiles_m * batch * heads_q
    programs = min(num_sms, tiles)
    _attn_persistent[(programs,)](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx, tiles_m, tiles,
                                  HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal, NUM_PROGRAMS=programs)
    return out
