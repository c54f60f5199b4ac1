"""The CUDA seed's barrier rule, checked on its source: after every cp.async wait, a __syncthreads()
comes before any warp reads shared memory (a wait only covers the calling thread's own copies)."""

from __future__ import annotations

import re

import pytest

from evoagent.knowledge.recipes import marked_params, param_recipe
from evoagent.targets.attention import seed_path
from evoagent.targets.attention.cuda_source import find_cuda_source, strip_comments

SEED = seed_path("cuda-fa2").read_text()
_WAIT = re.compile(r"\bcp_async_wait\s*<[^>]*>\s*\(\s*\)\s*;")
_SHARED_READ = re.compile(r"\bldmatrix_x4(?:_trans)?\s*\(")


def kernel_bodies(text: str) -> list[str]:
    """The bodies of the `__global__` functions of a CUDA text (comments blanked)."""
    text = strip_comments(text)
    bodies = []
    for match in re.finditer(r"__global__[^{;]*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                bodies.append(text[start:i])
                break
    return bodies


def unguarded_waits(text: str) -> list[str]:
    """Each cp.async wait after which shared memory is read with no __syncthreads() before the end of the
    wait's block (the barrier must be on every path from the wait, so in the wait's own block)."""
    problems = []
    for body in kernel_bodies(text):
        for wait in _WAIT.finditer(body):
            depth, end = 0, len(body)
            for i in range(wait.end(), len(body)):
                depth += {"{": 1, "}": -1}.get(body[i], 0)
                if depth < 0:
                    end = i
                    break
            guarded = "__syncthreads()" in body[wait.end():end]
            if not guarded and _SHARED_READ.search(body, wait.end()):
                line = body[:wait.start()].count("\n")
                problems.append(f"kernel line {line}: {wait.group(0)} has no __syncthreads() before a shared read")
    return problems


def cuda_text(source: str) -> str:
    return find_cuda_source(source).text


def test_every_cp_async_wait_in_the_seed_is_followed_by_a_barrier_before_shared_reads() -> None:
    assert len(_WAIT.findall(cuda_text(SEED))) == 4  # prologue, single-stage loop, pipelined loop, drain
    assert unguarded_waits(cuda_text(SEED)) == []


@pytest.mark.parametrize("stages", ["1", "2", "3"])
def test_every_num_stages_choice_keeps_the_barrier_rule(stages: str) -> None:
    seed_stages = next(p.value for p in marked_params(SEED) if p.name == "NUM_STAGES")
    variant = SEED if stages == seed_stages else param_recipe("NUM_STAGES", stages).apply(SEED)
    assert [p.value for p in marked_params(variant) if p.name == "NUM_STAGES"] == [stages]
    assert unguarded_waits(cuda_text(variant)) == []


def test_the_rule_finds_the_single_stage_race_of_a_wait_without_its_barrier() -> None:
    racy = SEED.replace("cp_async_wait<0>();  // this thread's copies have landed\n"
                        "      __syncthreads();", "cp_async_wait<0>();", 1)
    assert racy != SEED
    problems = unguarded_waits(cuda_text(racy))
    assert len(problems) == 1 and "cp_async_wait<0>();" in problems[0]


def test_a_final_wait_with_no_shared_read_after_it_needs_no_barrier() -> None:
    text = "__global__ void k() {\n  ldmatrix_x4(r, s);\n  cp_async_wait<0>();\n  out[0] = 1;\n}\n"
    assert unguarded_waits(text) == []
    assert len(unguarded_waits(text.replace("out[0] = 1;", "ldmatrix_x4(r, s);"))) == 1
