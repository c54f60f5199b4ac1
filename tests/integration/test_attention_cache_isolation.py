"""Compile caches are per candidate: one candidate's calls cannot write where another candidate's calls read.

The attack (cache poisoning): a candidate's code — here an agent's `experiment` script, which is not
scanned — compiles the same Triton kernel another candidate uses, then rewrites every cache entry
it can reach (the metadata now claims 10 MB of shared memory). Before each candidate had its own
cache, the victim's next compile read the planted entry and failed; now the attacker can write only
its own folder, and the victim compiles into, and reads from, its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cheat_files import CHEATS

from evoagent.candidate import Candidate
from evoagent.result import Status
from evoagent.sandbox import Sandbox
from evoagent.targets.attention import AttentionEvaluator

POISON = """
import json, os, pathlib, shutil
from evoagent.targets.attention.child import compile_launches

root = pathlib.Path({root!r})  # the evaluator's cache folder: static reports, compile caches
own = pathlib.Path(os.environ["TRITON_CACHE_DIR"])
compile_launches("kernel.py", {configs!r}, ["sm_90a"], str(own))
targets = {{root / "triton"}}
for folder, subfolders, _ in os.walk(root / "compile"):
    targets |= {{pathlib.Path(folder, sub) for sub in subfolders if sub == "triton"}}
planted = poisoned = refused = 0
for target in sorted(targets):
    try:
        shutil.copytree(own, target, dirs_exist_ok=True)
        planted += 1
    except OSError:
        refused += 1
for top in (own, *targets):
    for folder, _, files in os.walk(top):
        for meta in (pathlib.Path(folder, name) for name in files if name.endswith(".json")):
            try:
                data = json.loads(meta.read_text())
                if isinstance(data, dict) and "shared" in data:
                    data["shared"] = 10_000_000
                    meta.write_text(json.dumps(data))
                    poisoned += 1
            except OSError:
                refused += 1
print("planted", planted, "poisoned", poisoned, "refused", refused)
"""


@pytest.fixture()
def evaluator(tmp_path: Path) -> AttentionEvaluator:
    return AttentionEvaluator("smoke", cache_dir=tmp_path / "cache" / "static", seed=3, seeds=1, extra_shapes=0)


def test_a_candidate_that_poisons_the_triton_cache_cannot_change_another_candidates_result(
        evaluator: AttentionEvaluator, tmp_path: Path) -> None:
    """Two AOT compiles of a small kernel and a warm one (about 10 s here): the attack needs a real cache entry."""
    victim = Candidate.from_source((CHEATS / "_honest_kernel.py").read_text(), entry="kernel.py")
    attacker = Candidate.from_source(victim.files["kernel.py"] + "\n_VARIANT = 1  # same kernel, another candidate\n",
                                     entry="kernel.py")
    assert attacker.id != victim.id
    configs = [c.to_dict() for c in evaluator.suite.static_configs()]
    script = POISON.format(root=str(tmp_path / "cache"), configs=configs)
    with Sandbox(evaluator.sandbox_config()) as sandbox:
        attack = evaluator.experiment(attacker, script, sandbox, timeout_s=300)
        assert attack.ok and "poisoned" in attack.stdout, attack.reason
        result = evaluator.check(victim, sandbox)
        assert result.status is Status.OK, result.reason
        assert 0 < result.details["static"]["sm_90a"]["shared_bytes"] < 10_000_000
        own = tmp_path / "cache" / "compile" / victim.id  # the victim's own cache stays warm for its next call
        compiled = sorted(own.rglob("*.cubin"))
        shutil.rmtree(tmp_path / "cache" / "static")  # no stored report: the kernels are compiled again
        assert evaluator.check(victim, sandbox).status is Status.OK
    assert compiled and sorted(own.rglob("*.cubin")) == compiled  # served from the cache, nothing new built


FILL = """
import os, pathlib
cache = pathlib.Path(os.environ["TRITON_CACHE_DIR"])
cache.mkdir(parents=True, exist_ok=True)
(cache / "entry.bin").write_bytes(b"x" * 4096)
print("filled", cache)
"""


def test_compile_caches_are_bounded_least_recently_used_first(evaluator: AttentionEvaluator, tmp_path: Path) -> None:
    """Each call's folder is measured when it ends; over the bound the oldest folders go, a user's files stay.

    Two sandboxed calls (about 5 s here: the attention sandbox preloads torch); no compile is needed.
    """
    first = Candidate.from_source("X = 1\n", entry="kernel.py")
    second = Candidate.from_source("X = 2\n", entry="kernel.py")
    root = tmp_path / "cache" / "compile"
    root.mkdir(parents=True)
    (root / "README").write_text("a user's file beside the caches")
    evaluator.compile_caches.limit_bytes, evaluator.compile_caches.keep = 6000, 0  # room for one folder
    with Sandbox(evaluator.sandbox_config()) as sandbox:
        for candidate in (first, second):
            out = evaluator.experiment(candidate, FILL, sandbox, timeout_s=120)
            assert out.ok and "filled" in out.stdout, out.reason
            assert (root / f"{candidate.id}.experiments" / "triton" / "entry.bin").stat().st_size == 4096
    assert not (root / f"{first.id}.experiments").exists()  # the older one went when the second call ended
    assert (root / "README").read_text() == "a user's file beside the caches"
