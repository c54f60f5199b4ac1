"""Seed kernel for Hopper: FlashAttention-2's algorithm fed by TMA, warp-specialized, with a small autotune set.

References:
  * Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning" (2023):
    one program per block of query rows and (batch, head); an online softmax over key blocks,
    normalised once at the end (see fa2.py, the plain seed, for the algorithm step by step).
  * Shah et al., "FlashAttention-3: Fast and Accurate Attention with Asynchrony and Low-precision"
    (2024): on Hopper, move tiles with the Tensor Memory Accelerator (TMA) and let a producer warp
    group load K/V while consumer warp groups run the wgmma tensor-core instructions.
  * NVIDIA, "CUDA C++ Programming Guide", tensor memory access: a descriptor holds a tensor's shape
    and strides; the hardware copies whole tiles and fills rows past the end with zeros.

What this file does with Triton (written for this project; the API is the one Triton's fused-attention
tutorial uses on Hopper, and it exists in Triton 3.6 and later):
  * host-side tensor descriptors (`triton.tools.tensor_descriptor.TensorDescriptor`) over the 3-D
    views (B*H, N, D) of q, k, v and the output; their block shapes depend on the autotuned tile
    sizes, so each autotune config sets them in its `pre_hook`, as autotuning runs it;
  * `desc.load` / `desc.store` become TMA copies (`cp.async.bulk.tensor`, SASS `UTMALDG`/`UTMASTG`);
    a tile that runs past the end of one head is zero-filled on load and clipped on store, per head,
    so any sequence length works without reading or writing a neighbouring head;
  * the unmasked key loop is `tl.range(..., warp_specialize=WARP_SPECIALIZE)`: Triton splits it into a
    TMA producer warp and wgmma consumer warp groups (the 8-warp configs; on Hopper it needs more than
    one warp group, so the 4-warp config turns it off);
  * a small autotune set, pruned before timing (`prune_configs_by`): tiles taller than the sequence
    and key blocks wider than the head dim are dropped.

The contract (what evoagent's attention evaluator calls):

    attention(q, k, v, *, causal, sm_scale) -> o
    q: (B, H_Q, N, D), k and v: (B, H_KV, N, D) with H_Q % H_KV == 0, contiguous, fp16 or bf16.
    o: a new (B, H_Q, N, D) tensor of q's dtype, o = softmax(sm_scale * q @ k^T [+ causal mask]) @ v.
"""

import math

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor


@triton.jit
def _attend_to_key_blocks(
    acc, l_i, m_i, q, desc_k, desc_v, kv_row, offs_m, lo, hi, N_CTX, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
):
    """Folds key/value blocks [lo, hi) of one head into the running softmax state (acc, l_i, m_i)."""
    for start_n in tl.range(lo, hi, BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        k = desc_k.load([kv_row, start_n, 0]).reshape(BLOCK_N, HEAD_DIM)  # TMA; rows >= N are zeros
        qk = tl.dot(q, k.T) * qk_scale  # (BLOCK_M, BLOCK_N) fp32, log2 domain
        if MASKED:
            offs_n = start_n + tl.arange(0, BLOCK_N)
            visible = offs_n[None, :] < N_CTX
            if CAUSAL:
                visible = visible & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(visible, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = desc_v.load([kv_row, start_n, 0]).reshape(BLOCK_N, HEAD_DIM)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    return acc, l_i, m_i


def _set_block_shapes(nargs):
    """Autotune pre_hook: the descriptors' tiles follow the config's BLOCK_M / BLOCK_N."""
    block_m, block_n, head_dim = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["HEAD_DIM"]
    nargs["desc_q"].block_shape = [1, block_m, head_dim]
    nargs["desc_o"].block_shape = [1, block_m, head_dim]
    nargs["desc_k"].block_shape = [1, block_n, head_dim]
    nargs["desc_v"].block_shape = [1, block_n, head_dim]


def _keep(configs, named_args, **kwargs):
    """Drops tiles taller than the (rounded-up) sequence and key blocks wider than the head dim.

    Warp specialization is a Hopper choice here: for Blackwell (capability 10) Triton 3.6-3.9 fail to
    compile this loop warp-specialized, so those configs go. Without a GPU (this file run by the
    Triton interpreter on its own) there is nothing to time and Triton's autotuner cannot benchmark:
    one config is kept.
    """
    if not torch.cuda.is_available():
        return configs[-1:]
    n_ctx, head_dim = named_args["N_CTX"], kwargs["HEAD_DIM"]
    rows = max(64, triton.next_power_of_2(n_ctx))
    blackwell = torch.cuda.get_device_capability()[0] >= 10
    kept = [c for c in configs if c.kwargs["BLOCK_M"] <= rows and c.kwargs["BLOCK_N"] <= max(64, head_dim)
            and not (blackwell and c.kwargs["WARP_SPECIALIZE"])]
    return kept or configs[-1:]


# Hopper's wgmma works on 64-row slices per warp group: 128-row tiles use two consumer groups (8 warps).
# Triton's warp specialization on Hopper needs more than one warp group, so the 4-warp tile runs without it.
_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "WARP_SPECIALIZE": True}, num_warps=8, num_stages=2,
                  pre_hook=_set_block_shapes),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "WARP_SPECIALIZE": True}, num_warps=8, num_stages=3,
                  pre_hook=_set_block_shapes),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "WARP_SPECIALIZE": False}, num_warps=4, num_stages=3,
                  pre_hook=_set_block_shapes),
]


@triton.autotune(_CONFIGS, key=["N_CTX", "HEAD_DIM", "CAUSAL"], prune_configs_by={"early_config_prune": _keep})
@triton.jit
def _attention_forward_tma(
    desc_q, desc_k, desc_v, desc_o, sm_scale, H_Q, H_KV, N_CTX,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
):
    """One program computes BLOCK_M rows of the output for one (batch, query head)."""
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // H_Q
    kv_row = off_b * H_KV + (off_bh % H_Q) // (H_Q // H_KV)  # GQA: a group of query heads shares K/V

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = desc_q.load([off_bh, start_m * BLOCK_M, 0]).reshape(BLOCK_M, HEAD_DIM)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634  # log2(e): exp(x) == exp2(x * log2(e))

    # Key blocks [0, full_end) are fully visible (no mask); [full_end, masked_end) need one.
    if CAUSAL:
        full_end = (start_m * BLOCK_M) // BLOCK_N * BLOCK_N
        masked_end = tl.minimum((start_m + 1) * BLOCK_M, N_CTX)
    else:
        full_end = N_CTX // BLOCK_N * BLOCK_N
        masked_end = N_CTX
    acc, l_i, m_i = _attend_to_key_blocks(acc, l_i, m_i, q, desc_k, desc_v, kv_row, offs_m, 0, full_end, N_CTX,
                                          qk_scale, HEAD_DIM, BLOCK_N, False, CAUSAL, WARP_SPECIALIZE)
    acc, l_i, m_i = _attend_to_key_blocks(acc, l_i, m_i, q, desc_k, desc_v, kv_row, offs_m, full_end, masked_end,
                                          N_CTX, qk_scale, HEAD_DIM, BLOCK_N, True, CAUSAL, False)
    out = acc / l_i[:, None]
    desc_o.store([off_bh, start_m * BLOCK_M, 0], out.to(desc_o.dtype).reshape(1, BLOCK_M, HEAD_DIM))


def attention(q, k, v, *, causal, sm_scale):
    """softmax(sm_scale * q @ k^T) @ v for q (B, H_Q, N, D) and k, v (B, H_KV, N, D)."""
    batch, heads_q, n_ctx, head_dim = q.shape
    heads_kv = k.shape[1]
    assert k.shape == v.shape == (batch, heads_kv, n_ctx, head_dim), "k and v must be (B, H_KV, N, D)"
    assert heads_q % heads_kv == 0, "the number of query heads must be a multiple of key/value heads"
    assert head_dim in (16, 32, 64, 128, 256), "head dim must be a power of two from 16 to 256"
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous(), "q, k and v must be contiguous"

    out = torch.empty_like(q)
    # Placeholder tiles: each autotune config's pre_hook sets the real block shapes before its launch.
    desc_q = TensorDescriptor.from_tensor(q.view(batch * heads_q, n_ctx, head_dim), [1, 1, head_dim])
    desc_k = TensorDescriptor.from_tensor(k.view(batch * heads_kv, n_ctx, head_dim), [1, 1, head_dim])
    desc_v = TensorDescriptor.from_tensor(v.view(batch * heads_kv, n_ctx, head_dim), [1, 1, head_dim])
    desc_o = TensorDescriptor.from_tensor(out.view(batch * heads_q, n_ctx, head_dim), [1, 1, head_dim])

    def grid(meta):
        return (triton.cdiv(n_ctx, meta["BLOCK_M"]), batch * heads_q)

    _attention_forward_tma[grid](
        desc_q, desc_k, desc_v, desc_o, sm_scale, heads_q, heads_kv, n_ctx,
        HEAD_DIM=head_dim, CAUSAL=causal,
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
    """Checks ragged and GQA shapes against the fp32 reference (atol/rtol as in the Triton tutorial)."""
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
