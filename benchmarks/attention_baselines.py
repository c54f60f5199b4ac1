"""The attention implementations the seeds are timed against, each built for one configuration's inputs.

- `sdpa-cudnn`, `sdpa-flash`, `sdpa-efficient`: PyTorch's scaled_dot_product_attention with one backend
  forced (`torch.nn.attention.sdpa_kernel`): cuDNN's fused attention, FlashAttention-2 as built into
  PyTorch, and the memory-efficient (xFormers/CUTLASS) kernel;
- `flex`: FlexAttention (`torch.nn.attention.flex_attention`) under `torch.compile(dynamic=True)`, the Triton-generated
  attention a PyTorch user would otherwise pick; causal masking through a block mask, so fully masked
  tiles are skipped;
- `flash-attn` (FlashAttention-2) and `flash-attn-3` (FlashAttention-3, `flash_attn_interface`), when
  those packages can be imported.

`build` returns a zero-argument callable that computes the output as (B, H_Q, N, D), or raises
`Missing` with the reason (a package that is not installed, a backend that refuses the shape or
device, ...): the benchmark records that reason in place of a number.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import torch

SDPA_BACKENDS = {"sdpa-cudnn": "CUDNN_ATTENTION", "sdpa-flash": "FLASH_ATTENTION",
                 "sdpa-efficient": "EFFICIENT_ATTENTION"}
BASELINES = (*SDPA_BACKENDS, "flex", "flash-attn", "flash-attn-3")
_FLASH_MODULES = {"flash-attn": "flash_attn", "flash-attn-3": "flash_attn_interface"}
# Every (shape, causal) may recompile Flex; past dynamo's default limit it would fall back to eager.
_RECOMPILE_LIMIT = 64

Attention = Callable[[], torch.Tensor]


class Missing(Exception):
    """A baseline that cannot run here; the message is the reason."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def unavailable(name: str, device_type: str) -> str | None:
    """Why baseline `name` can never run on this device type ('cuda' or 'cpu'), found without building it; else None."""
    if name in SDPA_BACKENDS and device_type != "cuda":
        return "needs a CUDA device (SDPA's fused backends run on GPUs only)"
    if name == "flex" and device_type != "cuda":
        return "compiled FlexAttention is timed on GPUs only"
    if name in _FLASH_MODULES and importlib.util.find_spec(_FLASH_MODULES[name]) is None:
        return f"not importable: ModuleNotFoundError: No module named '{_FLASH_MODULES[name]}'"
    return None


def build(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, sm_scale: float,
          compile_flex: bool = True) -> Attention:
    """The baseline `name` on these inputs, or Missing(reason). Nothing is timed or checked here."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    if name in SDPA_BACKENDS:
        if q.device.type != "cuda":
            raise Missing("needs a CUDA device (SDPA's fused backends run on GPUs only)")
        return _sdpa(name, q, k, v, causal, sm_scale)
    if name == "flex":
        return _flex(q, k, v, causal, sm_scale, compile_flex)
    return _flash(name, q, k, v, causal, sm_scale)


def _sdpa(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float) -> Attention:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, SDPA_BACKENDS[name], None)
    if backend is None:
        raise Missing(f"this torch ({torch.__version__}) has no SDPBackend.{SDPA_BACKENDS[name]}")
    gqa = q.shape[1] != k.shape[1]
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run() -> torch.Tensor:
        with sdpa_kernel(backend):
            return sdpa(q, k, v, is_causal=causal, scale=sm_scale, **({"enable_gqa": True} if gqa else {}))

    with warnings.catch_warnings(record=True) as caught:  # SDPA says in warnings why a backend refused
        warnings.simplefilter("always")
        try:
            run()
        except RuntimeError as exc:
            why = "; ".join(dict.fromkeys(str(w.message).strip().splitlines()[0][:200] for w in caught))
            raise Missing(first_line(exc) + (f" ({why})" if why else "")) from None
    return run


_FLEX: dict[bool, Any] = {}


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float,
          compile_flex: bool) -> Attention:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as exc:
        raise Missing(f"this torch ({torch.__version__}) has no FlexAttention: {first_line(exc)}") from None
    if compile_flex and q.device.type != "cuda":
        raise Missing("compiled FlexAttention is timed on GPUs only")
    if compile_flex not in _FLEX:
        if compile_flex:
            for knob in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
                if hasattr(torch._dynamo.config, knob):
                    setattr(torch._dynamo.config, knob, max(getattr(torch._dynamo.config, knob), _RECOMPILE_LIMIT))
        # dynamic=True: one compile serves every shape (a new shape would otherwise recompile, ~40 s
        # each at worst); the block mask (causal) or none still compile once each.
        _FLEX[compile_flex] = torch.compile(flex_attention, dynamic=True) if compile_flex else flex_attention
    flex = _FLEX[compile_flex]
    n = q.shape[2]
    mask = None
    if causal:
        def causal_mask(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
            return q_idx >= kv_idx

        mask = create_block_mask(causal_mask, B=None, H=None, Q_LEN=n, KV_LEN=n, device=q.device)
    gqa = q.shape[1] != k.shape[1]

    def run() -> torch.Tensor:
        return flex(q, k, v, block_mask=mask, scale=sm_scale, enable_gqa=gqa)

    return run


def _flash(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float) -> Attention:
    try:
        module = importlib.import_module(_FLASH_MODULES[name])
    except Exception as exc:  # not installed, or built against another torch/CUDA
        raise Missing(f"not importable: {first_line(exc)}") from None
    if q.device.type != "cuda":
        raise Missing("needs a CUDA device")
    # flash-attn takes (B, N, H, D); the transposed copies are made here, outside the timed calls.
    qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
    func = module.flash_attn_func

    def run() -> torch.Tensor:
        out = func(qt, kt, vt, softmax_scale=sm_scale, causal=causal)
        out = out[0] if isinstance(out, tuple) else out  # some versions also return the log-sum-exp
        return out.transpose(1, 2)

    return run
