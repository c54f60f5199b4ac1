"""Attack (past the scan): walks up the interpreter's frames from a generator (no dunder names) to the
harness that imported it, then replaces the harness's own clock (timed calls would report zero) and the
function that reports the launches (the reported launch covers half the rows)."""

import torch
import triton
import triton.language as tl


# <the honest _attn kernel of _honest_kernel.py is inserted here by cheat_files.cheat()>


def _caller_frames():
    def gen():
        yield runner.gi_frame.f_back
    runner = gen()
    frame = next(runner)
    while frame is not None:
        yield frame
        frame = frame.f_back


for _frame in _caller_frames():
    _globals = _frame.f_globals
    if "_perf_counter" in _globals:
        _globals["_perf_counter"] = lambda: 0.0
    if "_plan" in _globals:
        _honest_plan = _globals["_plan"]

        def _half_plan(*args, _honest=_honest_plan, **kwargs):
            plan = _honest(*args, **kwargs)
            for launch in plan["launches"]:
                launch["grid"][0] = max(1, launch["grid"][0] // 2)
            return plan

        _globals["_plan"] = _half_plan

# <the honest attention() launcher of _honest_kernel.py is inserted here by cheat_files.cheat()>
