"""A small CUDA candidate for the static check (not an attention kernel: it computes one 16x16 tile of q @ k^T).

It follows the CUDA contract of docs/cuda.md exactly (CUDA_SOURCE literal, plain host function,
load_extension in attention()) and uses the tensor cores through wmma, so nvcc's cubin has HMMA
instructions for the report to count. tests/integration/test_attention_cuda_check.py compiles it.
"""

import torch

from evoagent.targets.attention.cuda_build import load_extension

CUDA_SOURCE = r"""
#include <cuda_fp16.h>
#include <mma.h>
#include <cstdint>

using namespace nvcuda;

__global__ void __launch_bounds__(32) tile_scores(const half* q, const half* k, float* s) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> q_frag;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> k_frag;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(q_frag, q, 16);
  wmma::load_matrix_sync(k_frag, k, 16);
  wmma::mma_sync(acc, q_frag, k_frag, acc);
  wmma::store_matrix_sync(s, acc, 16, wmma::mem_row_major);
}

void launch_tile(int64_t q, int64_t k, int64_t s, int64_t stream) {
  tile_scores<<<1, 32, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const half*>(q), reinterpret_cast<const half*>(k), reinterpret_cast<float*>(s));
}
"""

_extension = None


def attention(q, k, v, *, causal, sm_scale):
    global _extension
    if _extension is None:
        _extension = load_extension(CUDA_SOURCE, functions=["launch_tile"])
    scores = torch.empty((16, 16), device=q.device, dtype=torch.float32)
    _extension.launch_tile(q.data_ptr(), k.data_ptr(), scores.data_ptr(), torch.cuda.current_stream().cuda_stream)
    return torch.empty_like(q)
