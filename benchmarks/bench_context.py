"""Context size of the agentic operator: model tokens per trial over a run against an instant scripted model.

    python benchmarks/bench_context.py [--trials 200]

The model answers at once with the same four requests every trial (write the entry file, benchmark,
submit, submit again after the critique) and reports the size of each request as its input tokens
(4 characters a token, as `ScriptedLLM` estimates it: no prompt caching). What grows is what the
operator carries: the conversation across steps, what each step opens with, tool results. Reported:
input and output tokens per trial (mean, first and last quarter), and the number of compactions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import evoagent as ea
from evoagent.llm.base import LLMResponse
from evoagent.llm.scripted import Request, ScriptedLLM, tool_use_block

CONFIGS = ("n64-causal", "n128-causal", "n256", "n512", "n1024")


class Toy(ea.Evaluator):
    """A target with a suite of five configurations whose score is the constant N in the candidate."""

    name = "toy"
    description = "Define N = <integer>; the score on every configuration grows with N."
    stages = ("check", "benchmark")

    def check(self, candidate, sandbox):
        return ea.StageResult(details={"static": {"registers": 64, "spills": 0}})

    def benchmark(self, candidate, sandbox):
        n = int(candidate.source.split("=")[1])
        return ea.StageResult(metrics={c: 1.0 + n / (i + 1) for i, c in enumerate(CONFIGS)})


class Instant(ScriptedLLM):
    """Answers every request at once: write_file, benchmark, submit, submit (one trial's four requests)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def complete(self, **kwargs: Any) -> LLMResponse:
        self.enqueue(self._next)
        return super().complete(**kwargs)

    def _next(self, request: Request) -> LLMResponse:
        last = next((m for m in reversed(request.messages) if m["role"] == "assistant"), None)
        called = [b["name"] for b in last["content"] if b.get("type") == "tool_use"] if last else []
        opening = any(b.get("type") == "text" and b["text"].startswith("## Variation step")
                      for b in request.messages[-1]["content"])
        if opening or not called:
            self.n += 1
            use = tool_use_block("write_file", {"path": "main.py", "content": f"N = {self.n}\n"})
        elif called[-1] == "write_file":
            use = tool_use_block("benchmark", {})
        else:
            use = tool_use_block("submit", {"hypothesis": f"raise N to {self.n}"})
        return self.response([{"type": "text", "text": "Next step of my plan."}, use], stop_reason="tool_use")


def run(trials: int) -> list[ea.Trial]:
    with tempfile.TemporaryDirectory() as tmp:
        run_ = ea.Run.create(Path(tmp) / "run", evaluator=Toy(), seeds=[ea.Candidate.from_source("N = 0\n")],
                             population=ea.Chain())
        operator = ea.AgenticVariationOperator(Instant(), supervisor=False)
        done = list(ea.iterate(run_, operator, ea.Budget(trials=trials)))
        run_.close()
        print(f"compactions: {operator.compactions}")
        return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    trials = run(args.trials)
    quarter = max(1, len(trials) // 4)
    for kind in ("input_tokens", "output_tokens"):
        values = [getattr(t.usage, kind) for t in trials]
        print(f"{kind} per trial over {len(trials)} trials: mean {statistics.mean(values):,.0f}, "
              f"first quarter {statistics.mean(values[:quarter]):,.0f}, "
              f"last quarter {statistics.mean(values[-quarter:]):,.0f}, max {max(values):,}")


if __name__ == "__main__":
    main()
