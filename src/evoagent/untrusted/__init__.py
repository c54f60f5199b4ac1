"""The untrusted side: code that runs in a sandboxed child next to candidate code.

Nothing here decides a score or a verdict. It turns what a candidate's wrapper does into data (a
launch plan, `plans.py`) and, without a GPU, replays such a plan in Triton's interpreter from the
kernels alone, with inputs the trusted side sends (`replay.py`). Everything it returns is checked
by `evoagent.trusted`, which never imports candidate code.
"""
