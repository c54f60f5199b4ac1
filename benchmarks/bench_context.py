"""Context of the agentic operator over a long run: tokens per step, compactions, prompt-cache hits.

    python benchmarks/bench_context.py [--steps 200] [--compact-at 120000] [--rolling-ttl-s 3600]

A scripted model works through realistic steps (15-30k tokens each: it reads the 16k-character
kernel, edits, benchmarks twice, reads a stored version, keeps notes, submits through the critique)
against a toy target whose results are sized like the attention target's tables, inside the real
engine. Each request is billed as the Messages API's prompt cache would bill it (`PromptCache`:
breakpoints on the system prompt and tools and on the newest block, a lookback of 20 blocks, entries
that expire after their lifetime on a simulated clock: 30 s a model turn, 60 s an evaluation, 5
minutes an authoritative evaluation between steps). Reported: prompt and new tokens per step,
compactions per 100 steps (at a step boundary or inside a step), the share of input tokens read
from the cache, and whether every opening showed the notes block, the last submission's Δ and the
budget. `tests/integration/test_long_run_memory.py` runs `simulate` and asserts on its report.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import evoagent as ea
from evoagent.llm.base import LLMResponse
from evoagent.records import Usage

CONFIGS = tuple(f"b{16 // n}-h16-n{n}k-d128-{mode}-bf16" for n in (1, 2, 4, 8, 16) for mode in ("full", "causal"))
KERNEL_LINES = 400  # ~16k characters: ~4k tokens each time the file is read
LOOKBACK_BLOCKS = 20  # how far back from a breakpoint the API looks for a cached prefix


def kernel_source(speed: int) -> str:
    body = "".join(f"# line {i:03d}: tl.dot(q, k) accumulates in fp32; BLOCK_M x BLOCK_N tiles, pipelined\n"
                   for i in range(KERNEL_LINES))
    return f"SPEED = {speed}\n{body}"


class Toy(ea.Evaluator):
    """A toy kernel target whose results read like the attention target's: a ten-row table and a static report."""

    name = "toy-kernel"
    description = "Raise SPEED = <integer>; every configuration's TFLOPS grows with it."
    entry = "kernel.py"
    stages = ("check", "test", "benchmark")
    timing_stages = ("benchmark",)

    def configurations(self) -> tuple[str, ...]:
        return CONFIGS

    def check(self, candidate: ea.Candidate, sandbox: Any) -> ea.StageResult:
        speed = _speed(candidate)
        rows = {f"_attn_fwd [{c}] BLOCK_M=128, BLOCK_N={64 + speed % 3 * 32}": f"{160 + speed % 40} registers, "
                f"0 B spilled, 164864 B shared, HGMMA x{32 + speed % 8}, MUFU x{128 + speed}, BAR x12"
                for c in CONFIGS}
        return ea.StageResult(details={"static": rows})

    def test(self, candidate: ea.Candidate, sandbox: Any) -> ea.StageResult:
        return ea.StageResult(details={"shapes": "10 suite shapes + 24 random (ragged N, GQA 1/2/4/8): all within "
                                                 "tolerance (max rel error 3.1e-3)"})

    def benchmark(self, candidate: ea.Candidate, sandbox: Any) -> ea.StageResult:
        speed = _speed(candidate)
        metrics = {c: 300.0 + speed + i for i, c in enumerate(CONFIGS)}
        table = {c: f"{v:.1f} TFLOPS, cuDNN {v * 1.02:.1f}, x cuDNN {1 / 1.02:.3f}, median {1.0 / v:.4f} ms, "
                    f"IQR {0.4 / v:.5f} ms (12 repetitions, interleaved)" for c, v in metrics.items()}
        return ea.StageResult(metrics=metrics, details={"table": table})


def _speed(candidate: ea.Candidate) -> int:
    return int(candidate.source.split("\n", 1)[0].split("=")[1])


@dataclass
class PromptCache:
    """Bills requests as the Messages API's prompt cache would (tokens estimated at 4 characters each).

    Breakpoints: the end of the system prompt and tools (lifetime `stable_ttl_s`) and the newest
    block (`rolling_ttl_s`). A request reads the longest cached prefix that ends at a block
    boundary within `LOOKBACK_BLOCKS` of a breakpoint, writes the rest up to the last breakpoint,
    and refreshes what it read.
    """

    stable_ttl_s: float = 3600.0
    rolling_ttl_s: float = 3600.0
    entries: dict[int, float] = field(default_factory=dict)  # prefix hash -> expiry time
    _blocks: dict[int, tuple[Any, int, int]] = field(default_factory=dict)  # id(block) -> (block, hash, tokens)
    read: int = 0
    written: int = 0
    uncached: int = 0

    def bill(self, system: Any, tools: Sequence[Mapping[str, Any]], messages: Sequence[Mapping[str, Any]],
             now_s: float) -> Usage:
        head = hash(repr((system, [t["name"] for t in tools])))
        head_tokens = (len(str(system)) + len(repr(list(tools)))) // 4
        chain, sizes = [head], [head_tokens]
        for message in messages:
            for block in message["content"]:
                h, tokens = self._block(block)
                chain.append(hash((chain[-1], message["role"], h)))
                sizes.append(sizes[-1] + tokens)
        last = len(chain) - 1
        candidates = [i for i in range(last, max(0, last - LOOKBACK_BLOCKS) - 1, -1)] + [0]
        hit = next((i for i in candidates if self.entries.get(chain[i], -1.0) >= now_s), None)
        read = sizes[hit] if hit is not None else 0
        write = sizes[last] - read
        if hit is not None:
            self.entries[chain[hit]] = now_s + (self.stable_ttl_s if hit == 0 else self.rolling_ttl_s)
        self.entries[chain[0]] = max(self.entries.get(chain[0], 0.0), now_s + self.stable_ttl_s)
        self.entries[chain[last]] = now_s + self.rolling_ttl_s
        self.read += read
        self.written += write
        return Usage(input_tokens=0, cache_read_tokens=read, cache_write_tokens=write)

    def _block(self, block: Mapping[str, Any]) -> tuple[int, int]:
        known = self._blocks.get(id(block))
        if known is not None and known[0] is block:
            return known[1], known[2]
        text = repr(sorted(block.items(), key=lambda kv: kv[0]))
        value = (block, hash(text), len(text) // 4)
        self._blocks[id(block)] = value
        return value[1], value[2]

    @property
    def hit_share(self) -> float:
        total = self.read + self.written + self.uncached
        return self.read / total if total else 0.0


def _prose(n_chars: int, topic: str) -> str:
    sentence = f"Considering {topic}: the softmax rescale and the P@V product share registers with the tile. "
    return (sentence * (n_chars // len(sentence) + 1))[:n_chars]


@dataclass
class DayOfSteps:
    """A scripted model spending realistic steps; it keeps a clock, a prompt cache and what it saw."""

    cache: PromptCache
    name: str = "day-of-steps"
    clock_s: float = 0.0
    speed: int = 0
    openings: list[str] = field(default_factory=list)
    boundary_summaries: int = 0
    emergency_summaries: int = 0
    requests: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    step_sizes: list[int] = field(default_factory=list)  # per step: last prompt - first prompt + the opening
    _step_first: int = 0

    def complete(self, *, system: Any, messages: Sequence[Mapping[str, Any]],
                 tools: Sequence[Mapping[str, Any]] = (), max_tokens: int | None = None) -> LLMResponse:
        self.requests += 1
        self.clock_s += 30.0
        last = messages[-1]["content"] if messages else []
        texts = [b.get("text", "") for b in last if b.get("type") == "text"]
        if not tools:  # a summary asked outside the conversation: an emergency
            self.emergency_summaries += 1
            return self._reply([{"type": "text", "text": _prose(6000, "the summary")}], messages, system, tools)
        if any(t.startswith("Memory compaction:") for t in texts):
            self.boundary_summaries += 1
            return self._reply([{"type": "text", "text": _prose(8000, "what I tried and measured")}],
                               messages, system, tools)
        opening = next((t for t in texts if t.startswith("## Variation step")), None)
        if opening is not None:
            self.openings.append(opening)
            self.turn = 0
        self.turn += 1
        response = self._reply(self._turn(self.turn), messages, system, tools)
        if opening is not None:
            self._step_first = self.prompt_tokens[-1] - len(opening) // 4
            self.step_sizes.append(0)
        self.step_sizes[-1] = self.prompt_tokens[-1] - self._step_first + response.usage.output_tokens
        return response

    turn: int = 0

    def _turn(self, turn: int) -> list[dict[str, Any]]:
        plan = {"type": "text", "text": _prose(2400, f"turn {turn} of step {len(self.openings)}")}
        script: dict[int, tuple[str, dict[str, Any]]] = {
            1: ("read_file", {"path": "kernel.py"}),
            2: ("edit_file", {"path": "kernel.py", "old": f"SPEED = {self.speed}", "new": f"SPEED = {self.speed + 1}"}),
            3: ("benchmark", {}),
            4: ("show_version", {"version": "parent"}),
            5: ("edit_file", {"path": "kernel.py", "old": f"SPEED = {self.speed + 1}",
                              "new": f"SPEED = {self.speed + 2}"}),
            6: ("benchmark", {"configs": list(CONFIGS[:4])}),
            7: ("notes", {"text": f"step {len(self.openings)}: SPEED {self.speed + 2} measured; "
                                  + _prose(1500, "open ideas")}),
            8: ("submit", {"hypothesis": f"SPEED {self.speed + 2}: fewer rescales per tile"}),
            9: ("submit", {"hypothesis": f"SPEED {self.speed + 2}: fewer rescales per tile"}),
        }
        name, tool_input = script.get(turn, ("submit", {"hypothesis": "again"}))
        if name in ("benchmark", "test", "compile"):
            self.clock_s += 60.0
        if turn == 9:
            self.speed += 2
            self.clock_s += 300.0  # the authoritative evaluation before the next step
        use = {"type": "tool_use", "id": f"toolu_{self.requests:06d}", "name": name, "input": tool_input}
        return [plan, use]

    def _reply(self, content: list[dict[str, Any]], messages: Sequence[Mapping[str, Any]], system: Any,
               tools: Sequence[Mapping[str, Any]]) -> LLMResponse:
        usage = self.cache.bill(system, tools, messages, self.clock_s)
        self.prompt_tokens.append(usage.cache_read_tokens + usage.cache_write_tokens + usage.input_tokens)
        output = sum(len(str(b)) for b in content) // 4
        usage = Usage(input_tokens=usage.input_tokens, cache_read_tokens=usage.cache_read_tokens,
                      cache_write_tokens=usage.cache_write_tokens, output_tokens=output)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        return LLMResponse(content=content, stop_reason=stop, usage=usage, model=self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What a simulated run measured."""

    steps: int
    requests: int
    compactions_at_boundary: int
    compactions_inside_step: int
    cache_hit_share: float
    prompt_tokens_per_step: float  # tokens sent (read + written + uncached), summed over a step's requests
    new_tokens_per_step: float  # tokens written to the cache or sent uncached, plus output
    step_growth_tokens: list[int]  # how much each step added to the conversation (estimated)
    cost_units_per_step: float  # in units of one uncached input token: reads 0.1, writes 1.25 (5 min) or 2 (1 h),
    # output 5 (Claude's published ratios)
    openings: list[str]

    def lines(self) -> list[str]:
        per100 = 100 / max(1, self.steps)
        growth = sorted(self.step_growth_tokens) or [0]
        return [
            f"steps {self.steps}, requests {self.requests}",
            f"step size (tokens a step adds to the conversation): median {growth[len(growth) // 2]:,}, "
            f"min {growth[0]:,}, max {growth[-1]:,}",
            f"prompt tokens per step {self.prompt_tokens_per_step:,.0f}; new tokens per step "
            f"{self.new_tokens_per_step:,.0f}",
            f"compactions per 100 steps: {self.compactions_at_boundary * per100:.1f} at a step boundary, "
            f"{self.compactions_inside_step * per100:.1f} inside a step",
            f"cache-hit share of input tokens: {self.cache_hit_share:.1%}",
            f"cost per step in uncached-input-token units: {self.cost_units_per_step:,.0f}",
        ]


def simulate(steps: int = 200, *, compact_at_tokens: int | None = None, rolling_ttl_s: float = 3600.0) -> Report:
    """Runs `steps` trials of the scripted model through the engine and measures its context."""
    model = DayOfSteps(PromptCache(rolling_ttl_s=rolling_ttl_s))
    kwargs = {} if compact_at_tokens is None else {"compact_at_tokens": compact_at_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        seed = ea.Candidate.from_source(kernel_source(0), entry="kernel.py")
        run = ea.Run.create(Path(tmp) / "run", evaluator=Toy(), seeds=[seed], population=ea.Chain())
        operator = ea.AgenticVariationOperator(model, supervisor=False, **kwargs)  # type: ignore[arg-type]
        trials = list(ea.iterate(run, operator, ea.Budget(trials=steps)))
        events = run.store.events("compaction")
        run.close()
    inside = sum(1 for e in events if (e.get("payload") or {}).get("at") == "inside step")
    growth = model.step_sizes
    new = sum(t.usage.cache_write_tokens + t.usage.input_tokens + t.usage.output_tokens for t in trials)
    write_price = 2.0 if rolling_ttl_s > 300 else 1.25
    cost = sum(t.usage.input_tokens + 0.1 * t.usage.cache_read_tokens + write_price * t.usage.cache_write_tokens
               + 5 * t.usage.output_tokens for t in trials)
    return Report(steps=len(trials), requests=model.requests, compactions_at_boundary=len(events) - inside,
                  compactions_inside_step=inside, cache_hit_share=model.cache.hit_share,
                  prompt_tokens_per_step=sum(model.prompt_tokens) / max(1, len(trials)),
                  new_tokens_per_step=new / max(1, len(trials)), step_growth_tokens=growth,
                  cost_units_per_step=cost / max(1, len(trials)), openings=model.openings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compact-at", type=int, default=None, help="compact_at_tokens (default: the operator's)")
    parser.add_argument("--rolling-ttl-s", type=float, default=3600.0,
                        help="lifetime of the breakpoint on the newest block (the API's: 300 or 3600)")
    args = parser.parse_args()
    report = simulate(args.steps, compact_at_tokens=args.compact_at, rolling_ttl_s=args.rolling_ttl_s)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
