"""Hostile: finds the socket module through an allowed import and connects to a listener on 127.0.0.1."""

import typing

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    network = typing.sys.modules["socket"]
    network.create_connection(("127.0.0.1", __PORT__), 5).sendall(b"hello from a candidate")
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)
    _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)
    return out
