"""Attack (past the scan): at import, writes a forged result straight into the result channel -- the
shape the old in-process benchmark returned, with reference rows computed by the project's own reference
code and fast times -- and exits 0 before the harness can answer."""

import os
import stat

import numpy as np
import torch
import triton
import triton.language as tl

from evoagent._codec import encode_ok_message


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def _forge():
    forged = {"results": [], "cases": [], "globals": {}, "timers_changed": [], "device": "cpu",
              "times_ms": {"candidate": [1e-6] * 5}, "region_s": 1e-5, "rep_rows": [np.zeros((4, 64), np.float32)]}
    data = bytes(encode_ok_message(forged))
    for fd in range(3, 256):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(info.st_mode):
            try:
                os.write(fd, data)
            except OSError:
                pass
    os._exit(0)


_forge()

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
