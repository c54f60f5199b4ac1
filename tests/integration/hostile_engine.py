"""An engine run whose proposals are the hostile candidates of hostile/ (started as a subprocess by
test_hostile_candidates.py, so that its /proc/<pid>/environ holds the secret it is given).

Usage: python hostile_engine.py RUN_DIR CACHE_DIR CONFINE(1|0) SECRET_FILE TARGET_DIR PORT MARKER
Prints one JSON line: the trials' operator, status and reason. The static legality scan is switched
off here (it names every attempt, see test_hostile_candidates.py), so the attempts reach the sandbox.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from cheat_files import CHEATS  # this folder is sys.path[0] for a script and in tests
from engine_targets import Scripted

import evoagent as ea
from evoagent.targets.attention import AttentionEvaluator, legality

HERE = Path(__file__).parent
HOSTILE = HERE / "hostile"
MARK = "# <the honest kernel of cheats/_honest_kernel.py, its wrapper renamed _honest_attention, goes here>\n"


def honest_block() -> str:
    """The honest kernel of cheats/_honest_kernel.py and its wrapper, renamed `_honest_attention`."""
    source = (CHEATS / "_honest_kernel.py").read_text()
    return source[source.index("@triton.jit"):].replace("def attention(", "def _honest_attention(")


def hostile_sources(tokens: dict[str, str]) -> list[str]:
    """hostile/*.py in name order, with the honest kernel put in and `tokens` replaced by their values."""
    sources = []
    for path in sorted(HOSTILE.glob("*.py")):
        source = path.read_text().replace(MARK, honest_block(), 1)
        for token, value in tokens.items():
            source = source.replace(token, value)
        sources.append(source)
    return sources


def main(run_dir: str, cache_dir: str, confine: str, secret_file: str, target_dir: str, port: str,
         marker: str) -> None:
    legality.scan = lambda source, **_: []  # the layer under test is the operating system's
    signal.signal(signal.SIGUSR1, lambda *_: Path(marker).write_text("the engine was signalled"))
    tokens = {"__SECRET_FILE__": secret_file, "__TARGET_DIR__": target_dir, "__ENGINE_PID__": str(os.getpid()),
              "__PORT__": port}
    evaluator = AttentionEvaluator("smoke", cache_dir=cache_dir, seed=5, seeds=1, extra_shapes=1)
    seed = ea.Candidate.from_source((CHEATS / "_honest_kernel.py").read_text(), entry="kernel.py")
    run = ea.Run.create(run_dir, evaluator=evaluator, seeds=[seed])
    sources = hostile_sources(tokens)
    config = dataclasses.replace(evaluator.sandbox_config(), confine=confine == "1")
    ea.evolve(run, Scripted(sources), ea.Budget(trials=len(sources)), sandbox_config=config)
    trials = [{"operator": t.operator, "status": str(t.status), "reason": t.reason} for t in run.store.trials()]
    print(json.dumps(trials))


if __name__ == "__main__":
    main(*sys.argv[1:])
