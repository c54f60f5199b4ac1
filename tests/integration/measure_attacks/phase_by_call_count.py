"""Attack: counts calls. The first calls (the test's, the warm-up) are honest; later ones -- the timed
repetitions -- launch a kernel that does a sixteenth of the work (one key block, no softmax over the rest)."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>

_CALLS = [0]


def attention(q, k, v, *, causal, sm_scale):
    _CALLS[0] += 1
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    n_seen = n_ctx if _CALLS[0] <= 3 else min(n_ctx, 16)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_seen,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
