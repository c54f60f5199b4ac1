"""The trusted side: code that decides scores and never imports or runs a candidate's Python.

`plan.py` checks launch plans (the data a capture child reports) before anything replays them;
`gpu_replay.py` replays a plan on a GPU from the candidate's compiled kernels alone, on inputs it
made, timing with its own CUDA events and checking every repetition. Without a GPU the trusted
process drives a replay child over a channel (`evoagent.channel`) and keeps the clock itself.
"""
