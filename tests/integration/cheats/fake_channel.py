"""Cheat: writes a forged 'ok' result into inherited file descriptors at import (expect illegal)."""

import os

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


for _fd in range(3, 64):
    try:
        os.write(_fd, b'{"kind": "ok", "value": {"cases": []}}\n')
    except OSError:
        pass

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
