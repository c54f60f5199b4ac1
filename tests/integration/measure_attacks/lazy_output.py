"""Attack: the work happens after the timer. attention() returns a torch.Tensor subclass at once and runs
the real kernel the first time anyone touches the result (indexing, detach, copy) -- after a timer that
wraps the call has stopped. Needs no scan bypass."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


class _Later(torch.Tensor):
    pending = None

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        for arg in args:
            if isinstance(arg, _Later) and arg.pending is not None:
                run, arg.pending = arg.pending, None
                run()
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


def attention(q, k, v, *, causal, sm_scale):
    batch, heads_q, n_ctx, head_dim = q.shape
    out = torch.empty_like(q)
    grid = (triton.cdiv(n_ctx, 32), batch * heads_q)

    def run():
        _attn[grid](q, k, v, out, sm_scale, heads_q, heads_q // k.shape[1], n_ctx,
                    HEAD_DIM=head_dim, BLOCK_M=32, BLOCK_N=32, CAUSAL=causal)

    lazy = out.as_subclass(_Later)
    lazy.pending = run
    return lazy
