"""Cheat: hides code in a string annotation, which functools.singledispatch evaluates at import through
typing.get_type_hints: it finds the harness's module in sys.modules and slows its clock a hundredfold
(expect illegal)."""

import functools

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


@functools.singledispatch
def _convert(x):
    return x


@_convert.register
def _(x: "[(lambda c, t: c and setattr(c, '_perf_counter', lambda: t.perf_counter() / 100))(__import__('sys').modules.get('evoagent.targets.attention.child'), __import__('time')), int][1]"):  # noqa: E501
    return x


# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
