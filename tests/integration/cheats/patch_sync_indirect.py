"""Cheat: replaces torch.cuda.synchronize through a loop over a built list, a form the static scan does not follow;
the child's timer check catches it (expect illegal)."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


for _module in list((torch.cuda,)):
    _module.synchronize = lambda *args, **kwargs: None

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
