"""Hostile: signals the engine process (SIGUSR1 here, so that an unconfined control run survives it)."""

import torch
import triton
import triton.language as tl


# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>


def attention(q, k, v, *, causal, sm_scale):
    torch.serialization.os.kill(__ENGINE_PID__, 10)
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
