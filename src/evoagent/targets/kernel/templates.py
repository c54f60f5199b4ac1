"""Kernel templates for the offline policy: the reference's forward read as a row reduction or an elementwise
expression, written out as a whole Triton `ModelNew` and offered as a knowledge-base recipe on the reference seed.

Only forwards of the shape `return <one expression>` are recognised:
- row family: softmax / log_softmax over a dim, sum / mean / amax over a dim (keepdim or not), F.layer_norm;
- elementwise family: an expression of the input, parameters broadcast over the last dim, numbers and
  + - * /, relu, gelu (exact), sigmoid, tanh, silu, exp, abs.
Anything else (matmuls, convolutions) needs a model.
"""

from __future__ import annotations

import ast
import textwrap

from .problem import REFERENCE_MARK, Problem, reference_seed

_SOFTMAX = {"torch.softmax": False, "F.softmax": False, "torch.nn.functional.softmax": False,
            "torch.log_softmax": True, "F.log_softmax": True, "torch.nn.functional.log_softmax": True}
_REDUCE = {"torch.sum": "sum", "torch.mean": "mean", "torch.amax": "max"}
_LAYER_NORM = ("F.layer_norm", "torch.nn.functional.layer_norm", "torch.layer_norm")
_UNARY = {
    "torch.relu": "tl.maximum({0}, 0.0)", "F.relu": "tl.maximum({0}, 0.0)",
    "F.gelu": "0.5 * {0} * (1.0 + tl.math.erf({0} * 0.7071067811865476))",
    "torch.sigmoid": "tl.sigmoid({0})", "F.sigmoid": "tl.sigmoid({0})",
    "torch.tanh": "(2.0 * tl.sigmoid(2.0 * {0}) - 1.0)", "F.tanh": "(2.0 * tl.sigmoid(2.0 * {0}) - 1.0)",
    "F.silu": "({0} * tl.sigmoid({0}))", "torch.exp": "tl.exp({0})", "torch.abs": "tl.abs({0})",
}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class _NoTemplate(Exception):
    pass


def recipe_document(problem: Problem) -> str | None:
    """A markdown document holding one recipe that turns the reference seed into a Triton ModelNew, or None."""
    found = kernel_for(problem)
    if found is None:
        return None
    family, source = found
    seed = reference_seed(problem)
    if "'''" in seed or "'''" in source:
        return None
    return (f"# Templates for {problem.name}\n\n## A first Triton kernel for {problem.name} ({family})\n\n"
            f"The reference computes a {family}; this template writes it as one Triton kernel.\n\n"
            f"```recipe\nid = \"template-{family}\"\ntitle = \"a first Triton kernel: {family} template\"\n"
            f"kind = \"edit\"\nrequires = [{REFERENCE_MARK!r}]\n[[edits]]\nold = '''\n{seed}'''\nnew = '''\n"
            f"{source}'''\n```\n")


def kernel_for(problem: Problem) -> tuple[str, str] | None:
    """(family, the whole ModelNew file) for a recognised forward, else None."""
    tree = ast.parse(problem.source)
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    if model is None:
        return None
    forward = next((n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)
    init = next((n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if forward is None or init is None:
        return None
    body = [s for s in forward.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    args = [a.arg for a in forward.args.args[1:]]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None or len(args) != 1:
        return None
    try:
        family, forward_text, kernels = _row(body[0].value, args[0]) or _elementwise(body[0].value, args[0], model)
    except (_NoTemplate, TypeError):
        return None
    return family, f"{_head(family)}\n{kernels}\n\n{_class(problem, init, args[0], forward_text)}"


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    raise _NoTemplate


def _call_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    try:
        return _name(node.func)
    except _NoTemplate:
        return None


def _head(family: str) -> str:
    knobs = KNOBS["elementwise" if family == "elementwise" else "row"]
    if family not in ("row-sum", "row-mean", "row-max"):
        knobs = knobs.replace(KNOB_MAX_BLOCK, "")
    return ("# evoagent template: the reference's forward as a Triton kernel (edit freely)\n"
            "import torch\nimport torch.nn as nn\nimport triton\nimport triton.language as tl\n\n" + knobs)


def _class(problem: Problem, init: ast.FunctionDef, arg: str, forward_text: str) -> str:
    lines = problem.source.splitlines()[init.lineno - 1:init.end_lineno]
    init_text = textwrap.dedent("\n".join(lines))
    init_text = init_text.replace("super(Model, self)", "super(ModelNew, self)")
    return (f"class ModelNew(nn.Module):\n{textwrap.indent(init_text, '    ')}\n\n"
            f"    def forward(self, {arg}):\n{textwrap.indent(forward_text.strip(), '        ')}\n")


def _kwarg(call: ast.Call, name: str, position: int, default: str | None) -> str:
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.unparse(keyword.value)
    if len(call.args) > position:
        return ast.unparse(call.args[position])
    if default is None:
        raise _NoTemplate
    return default


def _row(expr: ast.expr, arg: str) -> tuple[str, str, str] | None:
    name = _call_name(expr)
    if name is None or not isinstance(expr, ast.Call) or not expr.args or ast.unparse(expr.args[0]) != arg:
        return None
    if name in _SOFTMAX:
        dim = _kwarg(expr, "dim", 1, None)
        return "row-softmax", _to_rows(arg, dim, "softmax", keepdim="True", log=_SOFTMAX[name]), ROW_SOFTMAX
    if name in _REDUCE:
        dim = _kwarg(expr, "dim", 1, None)
        keepdim = _kwarg(expr, "keepdim", 2, "False")
        return f"row-{_REDUCE[name]}", _to_rows(arg, dim, _REDUCE[name], keepdim=keepdim), ROW_REDUCE
    if name in _LAYER_NORM:
        shape = _kwarg(expr, "normalized_shape", 1, None)
        weight = _kwarg(expr, "weight", 2, "None")
        bias = _kwarg(expr, "bias", 3, "None")
        eps = _kwarg(expr, "eps", 4, "1e-5")
        return "row-layer-norm", LAYER_NORM_FORWARD.format(x=arg, shape=shape, weight=weight, bias=bias,
                                                           eps=eps), ROW_LAYER_NORM
    return None


def _to_rows(x: str, dim: str, op: str, *, keepdim: str, log: bool = False) -> str:
    """A forward that moves the reduced dim last (views and one copy), runs the row kernel, and moves it back."""
    if op == "softmax":
        return SOFTMAX_FORWARD.format(x=x, dim=dim, log=log)
    return REDUCE_FORWARD.format(x=x, dim=dim, keepdim=keepdim, op={"sum": 0, "mean": 1, "max": 2}[op])


def _elementwise(expr: ast.expr, arg: str, model: ast.ClassDef) -> tuple[str, str, str]:
    params = _parameters(model)
    used: list[str] = []
    scalars: list[str] = []
    text = _translate(expr, arg, params, used, scalars)
    if arg not in ast.unparse(expr):
        raise _NoTemplate
    ptr_args = "".join(f"p{i}_ptr, " for i in range(len(used)))
    loads = "".join(f"    p{i} = tl.load(p{i}_ptr + offsets % n_cols, mask=mask, other=0.0).to(tl.float32)\n"
                    for i in range(len(used)))
    scalar_args = "".join(f"s{i}, " for i in range(len(scalars)))
    kernel = ELEMENTWISE_KERNEL.format(ptr_args=ptr_args, scalar_args=scalar_args, loads=loads, expr=text)
    call_params = "".join(f"{p}, " for p in used)
    call_scalars = "".join(f"{s}, " for s in scalars)
    forward = ELEMENTWISE_FORWARD.format(x=arg, params=call_params, scalars=call_scalars)
    return "elementwise", forward, kernel


def _parameters(model: ast.ClassDef) -> set[str]:
    """`self.NAME` assigned an nn.Parameter (or a tensor) in the constructor."""
    found = set()
    for node in ast.walk(model):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute):
            name = _call_name(node.value) or ""
            if name.endswith("Parameter") or name.startswith("torch."):
                found.add(ast.unparse(node.targets[0]))
    return found


def _translate(node: ast.expr, arg: str, params: set[str], used: list[str], scalars: list[str]) -> str:
    if isinstance(node, ast.Name) and node.id == arg:
        return "x"
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return repr(float(node.value))
    if isinstance(node, ast.Attribute):
        text = ast.unparse(node)
        if text in params:
            if text not in used:
                used.append(text)
            return f"p{used.index(text)}"
        if text.startswith("self."):
            if text not in scalars:
                scalars.append(text)
            return f"s{scalars.index(text)}"
        raise _NoTemplate
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _translate(node.left, arg, params, used, scalars)
        right = _translate(node.right, arg, params, used, scalars)
        return f"({left} {_OPS[type(node.op)]} {right})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_translate(node.operand, arg, params, used, scalars)})"
    name = _call_name(node)
    if name in _UNARY and isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        inner = _translate(node.args[0], arg, params, used, scalars)
        return "(" + _UNARY[name].format(inner) + ")"
    raise _NoTemplate


KNOB_MAX_BLOCK = "MAX_BLOCK = 1024  # evo: choices 256 512 1024 2048 4096\n"
KNOBS = {  # launch parameters the offline policy may move (`# evo: choices`)
    "row": "NUM_WARPS = 4  # evo: choices 1 2 4 8 16\n" + KNOB_MAX_BLOCK,
    "elementwise": "BLOCK_SIZE = 1024  # evo: choices 256 512 1024 2048 4096\nNUM_WARPS = 4  # evo: choices 2 4 8\n",
}

ROW_SOFTMAX = '''
@triton.jit
def _softmax_rows(x_ptr, out_ptr, n_cols, LOG: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
    x = x - tl.max(x, axis=0)
    num = tl.exp(x)
    den = tl.sum(num, axis=0)
    y = x - tl.log(den) if LOG else num / den
    tl.store(out_ptr + row * n_cols + cols, y.to(out_ptr.dtype.element_ty), mask=mask)
'''

SOFTMAX_FORWARD = '''
moved = {x}.transpose({dim}, -1).contiguous()  # the reduced dim last, rows contiguous
n_cols = moved.shape[-1]
out = torch.empty_like(moved)
_softmax_rows[(moved.numel() // max(n_cols, 1),)](moved, out, n_cols, LOG={log},
                                                   BLOCK=triton.next_power_of_2(n_cols), num_warps=NUM_WARPS)
return out.transpose({dim}, -1).contiguous()
'''

ROW_REDUCE = '''
@triton.jit
def _reduce_rows(x_ptr, out_ptr, n_cols, OP: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    if OP == 2:
        acc = tl.full((BLOCK,), -float("inf"), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        if OP == 2:
            x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=-float("inf")).to(tl.float32)
            acc = tl.maximum(acc, x)
        else:
            acc += tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    if OP == 2:
        total = tl.max(acc, axis=0)
    else:
        total = tl.sum(acc, axis=0)
    if OP == 1:
        total = total / n_cols
    tl.store(out_ptr + row, total.to(out_ptr.dtype.element_ty))
'''

REDUCE_FORWARD = '''
dim = ({dim}) % {x}.dim()
moved = {x}.transpose(dim, -1).contiguous()  # the reduced dim last, rows contiguous
n_cols = moved.shape[-1]
out = torch.empty(moved.shape[:-1], dtype={x}.dtype, device={x}.device)
_reduce_rows[(max(out.numel(), 1),)](moved, out, n_cols, OP={op}, BLOCK=min(MAX_BLOCK, triton.next_power_of_2(n_cols)),
                                     num_warps=NUM_WARPS)
out = out.unsqueeze(-1).transpose(dim, -1)
return out.contiguous() if {keepdim} else out.squeeze(dim).contiguous()
'''

ROW_LAYER_NORM = '''
@triton.jit
def _layer_norm_rows(x_ptr, w_ptr, b_ptr, out_ptr, n_cols, eps, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                     BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(mask, x - mean, 0.0)
    y = centred / tl.sqrt(tl.sum(centred * centred, axis=0) / n_cols + eps)
    if HAS_W:
        y = y * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * n_cols + cols, y.to(out_ptr.dtype.element_ty), mask=mask)
'''

LAYER_NORM_FORWARD = '''
x = {x}.contiguous()
shape = {shape}
n_cols = 1
for size in (shape if isinstance(shape, (tuple, list)) else (shape,)):
    n_cols *= size
weight, bias = {weight}, {bias}
out = torch.empty_like(x)
_layer_norm_rows[(x.numel() // n_cols,)](x, x if weight is None else weight.contiguous(),
                                         x if bias is None else bias.contiguous(), out, n_cols, {eps},
                                         HAS_W=weight is not None, HAS_B=bias is not None,
                                         BLOCK=triton.next_power_of_2(n_cols), num_warps=NUM_WARPS)
return out
'''

ELEMENTWISE_KERNEL = '''
@triton.jit
def _elementwise(x_ptr, {ptr_args}{scalar_args}out_ptr, n_elements, n_cols, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
{loads}    y = {expr}
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)
'''

ELEMENTWISE_FORWARD = '''
x = {x}.contiguous()
out = torch.empty_like(x)
n = x.numel()
_elementwise[(triton.cdiv(n, BLOCK_SIZE),)](x, {params}{scalars}out, n, max(x.shape[-1], 1), BLOCK=BLOCK_SIZE,
                                            num_warps=NUM_WARPS)
return out
'''
