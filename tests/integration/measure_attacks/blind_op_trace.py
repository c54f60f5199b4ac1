"""Attack (past the scan): through the frames of the harness that imported it, blinds the op trace (it
sees no operation) and makes the allocation recorder call every buffer freshly allocated, then computes with the library attention and launches a token kernel so that a
kernel was launched. The capture reports a clean call; what it launched is replayed and checked."""

import torch
import triton
import triton.language as tl


@triton.jit
def _token(Out, N: tl.constexpr):
    offs = tl.arange(0, N)
    tl.store(Out + offs, tl.zeros([N], dtype=tl.float32).to(Out.dtype.element_ty))


def _caller_frames():
    def gen():
        yield runner.gi_frame.f_back
    runner = gen()
    frame = next(runner)
    while frame is not None:
        yield frame
        frame = frame.f_back


def _blind(self, func, types, args=(), kwargs=None):
    return func(*args, **(kwargs or {}))


for _frame in _caller_frames():
    for _scope in (_frame.f_globals, _frame.f_locals):
        if isinstance(_scope.get("_OpTrace"), type):
            _scope["_OpTrace"].__torch_dispatch__ = _blind
        _recorder = _scope.get("Allocations")
        if isinstance(_recorder, type) and not getattr(_recorder, "forged", False):
            _honest_record = _recorder._record
            _recorder._record = lambda self, tensor, init, whole, _r=_honest_record: _r(self, tensor, "poison", whole=True)
            _recorder.forged = True


def attention(q, k, v, *, causal, sm_scale):
    out = torch.empty_like(q)
    out.copy_(torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=causal, scale=sm_scale, enable_gqa=q.shape[1] != k.shape[1]))
    _token[(1,)](out, N=16)
    return out
