"""Seed kernel in CUDA C++: a FlashAttention-2-style forward pass on mma.sync tensor cores (MHA and GQA, causal or not).

References:
  * Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning" (2023):
    one thread block per (block of query rows, batch x head); each warp owns 16 query rows, streams
    key/value tiles through an online softmax kept in registers, and divides by the row sum once at
    the end. The score tile's accumulator registers are reused, as they are, as the A operand of P @ V.
  * NVIDIA, "Parallel Thread Execution ISA" (PTX ISA 8.x/9.x): `mma.sync.aligned.m16n8k16` (A, B and
    C fragment layouts), `ldmatrix.sync.aligned.m8n8.x4[.trans]` (which lane holds which element),
    `cp.async.cg.shared.global` with commit/wait groups, `ex2.approx`.
  * Milakov & Gimelshein, "Online normalizer calculation for softmax" (2018).

The contract (what evoagent's attention evaluator calls), the same as the Triton seeds':

    attention(q, k, v, *, causal, sm_scale) -> o
    q: (B, H_Q, N, D), k and v: (B, H_KV, N, D) with H_Q % H_KV == 0, contiguous, fp16 or bf16, D 64 or 128.
    o: a new (B, H_Q, N, D) tensor of q's dtype, o = softmax(sm_scale * q @ k^T [+ causal mask]) @ v.

The CUDA source is the string `CUDA_SOURCE` (no torch headers; docs/cuda.md); `load_extension`
(evoagent's wrapper of `torch.utils.cpp_extension.load_inline`, cached by source hash and
architecture) builds it the first time `attention` is called. The Python wrapper checks the inputs
and allocates the output; the host function `attention_forward` only launches on the current stream.

The `constexpr` lines marked `// evo: choices` at the top of the CUDA source are the tuning knobs
(tile sizes, pipeline stages, launch bounds); everything else is the algorithm. Fragment index math
is modelled lane by lane in NumPy by tests/unit/test_cuda_seed_layout.py.
"""

import torch
import triton

from evoagent.targets.attention.cuda_build import load_extension

CUDA_SOURCE = r"""
// FlashAttention-2 forward, CUDA C++ with inline PTX (mma.sync m16n8k16, ldmatrix, cp.async).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <type_traits>

// Tuning knobs. NUM_WARPS follows BLOCK_M: each warp owns 16 query rows (the M of m16n8k16).
constexpr int BLOCK_M = 128;  // evo: choices 64 128
constexpr int BLOCK_N = 64;  // evo: choices 32 64 128
constexpr int NUM_WARPS = BLOCK_M / 16;
constexpr int NUM_STAGES = 2;  // evo: choices 1 2 3
constexpr int MIN_BLOCKS_PER_SM = 1;  // evo: choices 1 2

static_assert(BLOCK_M == 16 * NUM_WARPS, "each warp owns 16 query rows: BLOCK_M must equal 16 * NUM_WARPS");
static_assert(BLOCK_N % 16 == 0 && BLOCK_N >= 16, "BLOCK_N must be a multiple of 16 (two n8 tiles per ldmatrix.x4)");
static_assert(NUM_STAGES >= 1 && NUM_STAGES <= 4, "NUM_STAGES must be 1 to 4 (cp.async buffers of K and V)");

constexpr int THREADS = NUM_WARPS * 32;
constexpr float LOG2E = 1.4426950408889634f;

struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  int n_ctx;        // N: queries and keys per head
  int heads_q;      // H_Q
  int heads_kv;     // H_KV; query head h reads key/value head h / (H_Q / H_KV)
  float scale_log2;  // sm_scale * log2(e): scores go to the exp2 domain
};

// ---- PTX wrappers -------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// 16 bytes global -> shared, bypassing L1; src_bytes = 0 writes zeros (rows past the end of a head).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and register i of lane l
// holds row l/4, columns 2(l%4) and 2(l%4)+1 of matrix i (of its transpose with .trans).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
}

// c (16x8, fp32) += a (16x16, row-major) * b (16x8, column-major); T is __half or __nv_bfloat16.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ float exp2_approx(float x) {  // MUFU.EX2; exp2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats rounded to T and packed into one register, `lo` in the low half (the lower column):
// cvt.rn.{f16x2,bf16x2}.f32 d, a, b puts a in the upper half and b in the lower.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r;
  if constexpr (std::is_same_v<T, __half>) {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  }
  return r;
}

// ---- shared-memory tiles ------------------------------------------------------------------------

// Element offset of (row, col) in a [rows][HEAD_DIM] tile whose 16-byte chunks are XOR-swizzled by
// row % 8: the eight rows one ldmatrix phase reads fall in eight different bank groups.
template <int HEAD_DIM>
__device__ __forceinline__ int swizzle(int row, int col) {
  return row * HEAD_DIM + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7));
}

// Rows [row0, row0 + ROWS) of one head (N x HEAD_DIM, contiguous) into a swizzled tile; rows at or
// past n_ctx are zero-filled, so padding never carries NaN into P @ V.
template <typename T, int HEAD_DIM, int ROWS>
__device__ __forceinline__ void load_tile(T* tile, const T* head, int row0, int n_ctx) {
  constexpr int CHUNKS_PER_ROW = HEAD_DIM / 8;
  for (int c = threadIdx.x; c < ROWS * CHUNKS_PER_ROW; c += THREADS) {
    const int row = c / CHUNKS_PER_ROW, col = (c % CHUNKS_PER_ROW) * 8;
    const bool inside = row0 + row < n_ctx;
    const T* src = inside ? head + static_cast<int64_t>(row0 + row) * HEAD_DIM + col : head;
    cp_async_16(tile + swizzle<HEAD_DIM>(row, col), src, inside ? 16 : 0);
  }
}

// ---- the kernel ---------------------------------------------------------------------------------

template <typename T, int HEAD_DIM, bool CAUSAL>
__global__ void __launch_bounds__(THREADS, MIN_BLOCKS_PER_SM) attention_kernel(const Params p) {
  constexpr int KV_TILE = BLOCK_N * HEAD_DIM;  // elements of one K (or V) tile
  extern __shared__ __align__(128) unsigned char smem[];
  T* q_tile = reinterpret_cast<T*>(smem);
  T* kv_tiles = q_tile + BLOCK_M * HEAD_DIM;  // stage s: K at 2s * KV_TILE, V at (2s + 1) * KV_TILE

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;  // the mma fragments' groupID, threadID_in_group
  // Causal: the last query blocks see the most keys; launch them first.
  const int m_block = CAUSAL ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int m_start = m_block * BLOCK_M;
  const int bh = blockIdx.y, b = bh / p.heads_q, h = bh % p.heads_q;
  const int h_kv = h / (p.heads_q / p.heads_kv);
  const int64_t head_elems = static_cast<int64_t>(p.n_ctx) * HEAD_DIM;
  const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(bh) * head_elems;
  const T* k = static_cast<const T*>(p.k) + (static_cast<int64_t>(b) * p.heads_kv + h_kv) * head_elems;
  const T* v = static_cast<const T*>(p.v) + (static_cast<int64_t>(b) * p.heads_kv + h_kv) * head_elems;
  T* o = static_cast<T*>(p.o) + static_cast<int64_t>(bh) * head_elems;

  // Key tiles [0, n_tiles): causal blocks stop at their last row's diagonal (fully masked tiles are never loaded).
  const int n_end = CAUSAL ? min(p.n_ctx, m_start + BLOCK_M) : p.n_ctx;
  const int n_tiles = (n_end + BLOCK_N - 1) / BLOCK_N;
  auto load_kv = [&](int tile, int stage) {
    load_tile<T, HEAD_DIM, BLOCK_N>(kv_tiles + 2 * stage * KV_TILE, k, tile * BLOCK_N, p.n_ctx);
    load_tile<T, HEAD_DIM, BLOCK_N>(kv_tiles + (2 * stage + 1) * KV_TILE, v, tile * BLOCK_N, p.n_ctx);
  };

  // Prologue: Q, then the first NUM_STAGES - 1 key/value tiles, one commit group each.
  load_tile<T, HEAD_DIM, BLOCK_M>(q_tile, q, m_start, p.n_ctx);
  cp_async_commit();
#pragma unroll
  for (int s = 0; s < NUM_STAGES - 1; ++s) {
    if (s < n_tiles) load_kv(s, s);
    cp_async_commit();
  }
  cp_async_wait<NUM_STAGES - 1>();  // Q has landed
  __syncthreads();

  // This warp's 16 rows of Q as A fragments, one per 16-wide slice of the head dim.
  const int warp_row0 = m_start + warp * 16;
  uint32_t q_frag[HEAD_DIM / 16][4];
#pragma unroll
  for (int kk = 0; kk < HEAD_DIM / 16; ++kk) {
    ldmatrix_x4(q_frag[kk], q_tile + swizzle<HEAD_DIM>(warp * 16 + lane % 16, kk * 16 + (lane / 16) * 8));
  }

  // Online softmax state for this thread's two rows (group and group + 8), in the exp2 domain.
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};  // this thread's partial sums; the quad's are added at the end
  float acc[HEAD_DIM / 8][4];
#pragma unroll
  for (int j = 0; j < HEAD_DIM / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  for (int tile = 0; tile < n_tiles; ++tile) {
    if constexpr (NUM_STAGES == 1) {
      __syncthreads();  // every warp is done with the single buffer
      load_kv(tile, 0);
      cp_async_commit();
      cp_async_wait<0>();  // this thread's copies have landed
      __syncthreads();     // ... and every other thread's, before any warp reads the tile
    } else {
      cp_async_wait<NUM_STAGES - 2>();  // this tile has landed
      __syncthreads();                  // ... for every thread, and the stage refilled below is free
      const int next = tile + NUM_STAGES - 1;
      if (next < n_tiles) load_kv(next, next % NUM_STAGES);
      cp_async_commit();  // possibly empty: keeps the group count uniform
    }
    const int n_start = tile * BLOCK_N;
    if (CAUSAL && n_start > warp_row0 + 15) continue;  // every key is after every row of this warp
    const T* k_tile = kv_tiles + 2 * (tile % NUM_STAGES) * KV_TILE;
    const T* v_tile = k_tile + KV_TILE;

    // S = Q K^T: ldmatrix.x4 of K (keys x d, row-major) gives the B fragments of two n8 tiles.
    float s[BLOCK_N / 8][4];
#pragma unroll
    for (int j = 0; j < BLOCK_N / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; ++kk) {
#pragma unroll
      for (int nn = 0; nn < BLOCK_N / 16; ++nn) {
        uint32_t kb[4];  // matrices: keys +0..7 / +8..15 (lane / 16), d +0..7 / +8..15 ((lane / 8) % 2)
        ldmatrix_x4(kb, k_tile + swizzle<HEAD_DIM>(nn * 16 + lane % 8 + (lane / 16) * 8,
                                                   kk * 16 + ((lane / 8) % 2) * 8));
        mma_16816<T>(s[2 * nn], q_frag[kk], kb[0], kb[1]);
        mma_16816<T>(s[2 * nn + 1], q_frag[kk], kb[2], kb[3]);
      }
    }

    // Mask keys past the end and, on the diagonal, keys after the query; only tiles that need it.
    if (n_start + BLOCK_N > p.n_ctx || (CAUSAL && n_start + BLOCK_N - 1 > warp_row0)) {
#pragma unroll
      for (int j = 0; j < BLOCK_N / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = n_start + j * 8 + quad * 2 + (e & 1);
          const int row = warp_row0 + group + (e / 2) * 8;
          if (key >= p.n_ctx || (CAUSAL && key > row)) s[j][e] = -INFINITY;
        }
      }
    }

    // Online softmax: new row max (over the quad's four lanes), rescale, exponentiate.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < BLOCK_N / 8; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx * p.scale_log2);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with no visible key yet stays zero
      const float alpha = exp2_approx(row_max[r] - m_use);
      row_max[r] = m_new;
      row_sum[r] *= alpha;
#pragma unroll
      for (int j = 0; j < HEAD_DIM / 8; ++j) {
        acc[j][2 * r] *= alpha;
        acc[j][2 * r + 1] *= alpha;
      }
#pragma unroll
      for (int j = 0; j < BLOCK_N / 8; ++j) {
        s[j][2 * r] = exp2_approx(fmaf(s[j][2 * r], p.scale_log2, -m_use));
        s[j][2 * r + 1] = exp2_approx(fmaf(s[j][2 * r + 1], p.scale_log2, -m_use));
        row_sum[r] += s[j][2 * r] + s[j][2 * r + 1];
      }
    }

    // O += P V: two adjacent n8 score tiles are, as they are, the A fragment of a 16-key slice;
    // ldmatrix.x4.trans of V (keys x d, row-major) gives the B fragments of two d8 tiles.
#pragma unroll
    for (int kk = 0; kk < BLOCK_N / 16; ++kk) {
      const uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dd = 0; dd < HEAD_DIM / 16; ++dd) {
        uint32_t vb[4];  // matrices: keys +0..7 / +8..15 ((lane / 8) % 2), d +0..7 / +8..15 (lane / 16)
        ldmatrix_x4_trans(vb, v_tile + swizzle<HEAD_DIM>(kk * 16 + lane % 8 + ((lane / 8) % 2) * 8,
                                                         dd * 16 + (lane / 16) * 8));
        mma_16816<T>(acc[2 * dd], pa, vb[0], vb[1]);
        mma_16816<T>(acc[2 * dd + 1], pa, vb[2], vb[3]);
      }
    }
  }
  cp_async_wait<0>();  // no copy may outlive the block

  // Epilogue: the quad's partial sums, one division per row, 32-bit stores of two columns.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const int row = warp_row0 + group + r * 8;
    if (row >= p.n_ctx) continue;
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; ++j) {
      const uint32_t packed = pack2<T>(acc[j][2 * r] * inv, acc[j][2 * r + 1] * inv);
      *reinterpret_cast<uint32_t*>(o + static_cast<int64_t>(row) * HEAD_DIM + j * 8 + quad * 2) = packed;
    }
  }
}

// ---- host side: launch only (the Python wrapper checks the inputs and allocates the output) ------

template <typename T, int HEAD_DIM, bool CAUSAL>
cudaError_t launch(const Params& p, int batch, cudaStream_t stream) {
  constexpr int smem_bytes = (BLOCK_M + 2 * NUM_STAGES * BLOCK_N) * HEAD_DIM * static_cast<int>(sizeof(T));
  auto kernel = attention_kernel<T, HEAD_DIM, CAUSAL>;
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (err != cudaSuccess) return err;
  const dim3 grid((p.n_ctx + BLOCK_M - 1) / BLOCK_M, batch * p.heads_q);
  kernel<<<grid, THREADS, smem_bytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int HEAD_DIM>
cudaError_t launch_causal(const Params& p, int batch, bool causal, cudaStream_t stream) {
  return causal ? launch<T, HEAD_DIM, true>(p, batch, stream) : launch<T, HEAD_DIM, false>(p, batch, stream);
}

template <typename T>
cudaError_t launch_head_dim(const Params& p, int batch, int head_dim, bool causal, cudaStream_t stream) {
  if (head_dim == 64) return launch_causal<T, 64>(p, batch, causal, stream);
  if (head_dim == 128) return launch_causal<T, 128>(p, batch, causal, stream);
  return cudaErrorInvalidValue;
}

// q, k, v, o: device pointers of contiguous (B, H, N, D) tensors; is_bf16: bfloat16, else float16.
// Returns the launch's cudaError_t (0: launched).
int64_t attention_forward(int64_t q, int64_t k, int64_t v, int64_t o, int64_t batch, int64_t heads_q,
                          int64_t heads_kv, int64_t n_ctx, int64_t head_dim, bool is_bf16, bool causal,
                          double sm_scale, int64_t stream) {
  const Params p{reinterpret_cast<const void*>(q), reinterpret_cast<const void*>(k), reinterpret_cast<const void*>(v),
                 reinterpret_cast<void*>(o), static_cast<int>(n_ctx), static_cast<int>(heads_q),
                 static_cast<int>(heads_kv), static_cast<float>(sm_scale) * LOG2E};
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  const int b = static_cast<int>(batch), d = static_cast<int>(head_dim);
  return is_bf16 ? launch_head_dim<__nv_bfloat16>(p, b, d, causal, s) : launch_head_dim<__half>(p, b, d, causal, s);
}
"""

_module = None  # the built extension, loaded on the first call


def _check_inputs(q, k, v, sm_scale):
    """Raises ValueError naming what is wrong with q, k, v or sm_scale (what the kernel does not handle)."""
    if not sm_scale > 0:  # the kernel takes the row max before scaling: right for a positive scale only
        raise ValueError(f"attention: sm_scale must be positive (got {sm_scale})")
    if not (q.is_cuda and k.is_cuda and v.is_cuda) or not q.device == k.device == v.device:
        raise ValueError(f"attention: q, k and v must be CUDA tensors on one device (got {q.device}, {k.device}, "
                         f"{v.device})")
    if q.dtype not in (torch.float16, torch.bfloat16) or not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"attention: q, k and v must share one dtype, float16 or bfloat16 (got {q.dtype}, "
                         f"{k.dtype}, {v.dtype})")
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise ValueError(f"attention: q must be (B, H_Q, N, D) and k, v (B, H_KV, N, D) (got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)})")
    batch, heads_q, n_ctx, head_dim = q.shape
    if k.shape[0] != batch or k.shape[2:] != q.shape[2:] or heads_q % k.shape[1]:
        raise ValueError(f"attention: k and v must be (B, H_KV, N, D) with q's B, N and D and H_Q a multiple of "
                         f"H_KV (got q {tuple(q.shape)}, k {tuple(k.shape)})")
    if head_dim not in (64, 128):
        raise ValueError(f"attention: head dim must be 64 or 128 (got {head_dim})")
    if not (q.is_contiguous() and k.is_contiguous() and v.is_contiguous()):
        raise ValueError("attention: q, k and v must be contiguous; call .contiguous() first")
    if n_ctx < 1 or n_ctx >= 2**31 or batch * heads_q > 65535:
        raise ValueError(f"attention: needs 1 <= N < 2**31 and B * H_Q <= 65535 (got N={n_ctx}, "
                         f"B * H_Q={batch * heads_q})")


def attention(q, k, v, *, causal, sm_scale):
    """softmax(sm_scale * q @ k^T) @ v for q (B, H_Q, N, D) and k, v (B, H_KV, N, D), on the current stream."""
    global _module
    _check_inputs(q, k, v, sm_scale)
    if _module is None:  # built on the first call (on a GPU), cached on disk by source hash and architecture
        _module = load_extension(CUDA_SOURCE, functions=["attention_forward"])
    out = torch.empty_like(q)
    batch, heads_q, n_ctx, head_dim = q.shape
    with torch.cuda.device(q.device):
        error = _module.attention_forward(
            q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), batch, heads_q, k.shape[1], n_ctx, head_dim,
            q.dtype == torch.bfloat16, bool(causal), float(sm_scale), torch.cuda.current_stream(q.device).cuda_stream,
        )
    if error:
        raise RuntimeError(f"attention: the kernel launch failed with cudaError_t {error} (1: invalid value, "
                           f"98: no kernel image for this GPU; the CUDA seed is built for sm_90a or sm_100a)")
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


if __name__ == "__main__":
    # A correctness check and a quick throughput number on a GPU.
    torch.manual_seed(0)
    for shape_q, heads_kv, causal in [((1, 4, 77, 64), 2, True), ((2, 2, 256, 128), 2, False)]:
        for dtype in (torch.float16, torch.bfloat16):
            q = torch.randn(shape_q, device="cuda", dtype=dtype)
            k, v = (torch.randn(shape_q[0], heads_kv, *shape_q[2:], device="cuda", dtype=dtype) for _ in range(2))
            scale = shape_q[-1] ** -0.5
            got = attention(q, k, v, causal=causal, sm_scale=scale)
            torch.testing.assert_close(got, _reference(q, k, v, causal=causal, sm_scale=scale), atol=2e-2, rtol=2e-2)
    for causal in (False, True):
        shape = (4, 16, 4096, 128)
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        ms = triton.testing.do_bench(lambda: attention(q, k, v, causal=causal, sm_scale=128**-0.5))
        flops = 4 * shape[0] * shape[1] * shape[2] ** 2 * shape[3] * (0.5 if causal else 1.0)
        print(f"causal={causal}: {ms:.3f} ms, {flops / ms * 1e-9:.1f} TFLOPS")
