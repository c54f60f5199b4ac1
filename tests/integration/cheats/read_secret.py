"""Cheat: reads an API key from the environment (expect illegal)."""

import os

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


_KEY = os.environ.get("ANTHROPIC_API_KEY", "")

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
