"""Cheat: replaces the timer and synchronize at import (expect illegal)."""

import time

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


time.perf_counter = lambda: 0.0
torch.cuda.synchronize = lambda *args, **kwargs: None

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
