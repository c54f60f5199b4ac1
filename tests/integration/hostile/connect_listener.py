"""Hostile: finds the socket module through an allowed import and connects to a listener on 127.0.0.1."""

import typing

import torch
import triton
import triton.language as tl


# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>


def attention(q, k, v, *, causal, sm_scale):
    network = typing.sys.modules["socket"]
    network.create_connection(("127.0.0.1", __PORT__), 5).sendall(b"hello from a candidate")
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
