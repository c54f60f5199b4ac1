"""Dishonest: honest on fresh tensors (the test stage), but remembers each result by the input's address, so
timed calls on the same tensors with new values return the first call's output (caught in the benchmark)."""

import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _softmax_rows(x_ptr, out_ptr, n_cols, x_stride, out_stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=-float("inf")).to(tl.float32)
    x = x - tl.max(x, axis=0)
    num = tl.exp(x)
    tl.store(out_ptr + row * out_stride + cols, num / tl.sum(num, axis=0), mask=mask)


_MEMORY = {}


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        key = x.data_ptr()
        if key not in _MEMORY:
            out = x.new_empty(x.shape)
            _softmax_rows[(x.shape[0],)](x, out, x.shape[1], x.stride(0), out.stride(0),
                                         BLOCK=triton.next_power_of_2(x.shape[1]))
            _MEMORY[key] = out
        scratch = x.new_empty((1, x.shape[1]))
        _softmax_rows[(1,)](x, scratch, x.shape[1], x.stride(0), scratch.stride(0),
                            BLOCK=triton.next_power_of_2(x.shape[1]))  # a launch every call
        return _MEMORY[key]
