"""Sum over one dimension: the input viewed as (outer, reduced, inner); one program per outer index and
block of inner indices walks the reduced axis in fp32."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sum_middle(x_ptr, out_ptr, R, INNER, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    outer = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    acc = tl.zeros((BLOCK_I,), dtype=tl.float32)
    for r0 in range(0, R, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        mask = (rows[:, None] < R) & (cols[None, :] < INNER)
        x = tl.load(x_ptr + outer * R * INNER + rows[:, None] * INNER + cols[None, :], mask=mask, other=0.0)
        acc += tl.sum(x.to(tl.float32), axis=0)
    tl.store(out_ptr + outer * INNER + cols, acc.to(out_ptr.dtype.element_ty), mask=cols < INNER)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        dim = self.dim % x.dim()
        shape = list(x.shape)
        R = shape[dim]
        outer = 1
        for size in shape[:dim]:
            outer *= size
        inner = x.numel() // (outer * R)
        shape[dim] = 1
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
        BLOCK_I = min(128, triton.next_power_of_2(inner))
        _sum_middle[(outer, triton.cdiv(inner, BLOCK_I))](x, out, R, inner, BLOCK_R=16, BLOCK_I=BLOCK_I)
        return out
