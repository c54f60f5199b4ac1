"""Hostile: reads a secret file outside its working directory and leaks it through its error text."""

import torch
import triton
import triton.language as tl


# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>


def attention(q, k, v, *, causal, sm_scale):
    with torch.serialization._open_file("__SECRET_FILE__", "rb") as stolen:
        raise ValueError("leaked: " + stolen.read().decode())
