"""Hostile: plants a file outside its working directory (next to the run) through a file-backed storage."""

import torch
import triton
import triton.language as tl


# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>


def attention(q, k, v, *, causal, sm_scale):
    planted = torch.UntypedStorage.from_file("__TARGET_DIR__/planted.bin", True, 16)
    planted.fill_(65)
    return _honest_attention(q, k, v, causal=causal, sm_scale=sm_scale)
