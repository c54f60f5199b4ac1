"""A target for the Ray executor's tests: a call that can hold still until the test kills its Ray worker."""

from __future__ import annotations

import importlib
import os
import threading

from evoagent import Candidate, Evaluator, SandboxConfig, StageResult

SEED = "X = 0.0\n"


def read_x(marker_dir: str, kills: int) -> object:
    """In the sandbox child: the candidate's X. A candidate with `HOLD = True` holds its first `kills` calls.

    A held call writes its own pid as the host sees it (a confined call has its own PID namespace) to a
    new marker file `call-<n>` and waits to be killed (the test kills the Ray worker or actor that runs
    its fork server); later calls return at once.
    """
    module = importlib.import_module("main")
    held = len(os.listdir(marker_dir))
    if getattr(module, "HOLD", False) and held < kills:
        path = os.path.join(marker_dir, f"call-{held}")
        with open(path + ".part", "w") as f:
            f.write(open("/proc/self/stat").read().split()[0])
        os.rename(path + ".part", path)
        threading.Event().wait()  # until killed; the call's timeout ends it if the test fails to
    return module.X


class Holdable(Evaluator):
    """score = 100 - (X - 3)^2, measured by `read_x` on a CPU worker or (with `gpu`) the GPU actor."""

    name = "holdable"
    entry = "main.py"
    stages = ("measure",)

    def __init__(self, marker_dir: str, kills: int = 0, gpu: bool = False) -> None:
        self.marker_dir, self.kills, self.gpu = marker_dir, kills, gpu

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(workers=1, preload=(), write_paths=(self.marker_dir,), timeout_s=120.0,
                             gpus=("0",) if self.gpu else ())

    def measure(self, candidate: Candidate, sandbox) -> StageResult:
        out = sandbox.call(read_x, self.marker_dir, self.kills, files=candidate.files, gpu=self.gpu)
        if not out.ok:
            return StageResult.fail(out.status, out.reason, logs=out.logs)
        return StageResult(metrics={"f": 100.0 - (float(out.value) - 3.0) ** 2})
