"""Lineage: a networkx view of a run's ancestry, text summaries for prompts, GraphML and git export."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import networkx as nx

from .candidate import Candidate
from .errors import RunStoreError
from .formatting import format_delta
from .records import Trial
from .result import format_score
from .store import RunStore


class Lineage:
    """Ancestry of every authoritatively evaluated version of a run (read fresh from the store)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def graph(self) -> nx.DiGraph:
        """Nodes are candidate ids (attrs: score, status, committed, hypothesis, trial); edges parent -> child."""
        g = nx.DiGraph()
        for t in self.store.trials(state="done"):
            if t.candidate_id is None:
                continue
            g.add_node(t.candidate_id, score=t.score if t.score is not None else float("nan"),
                       status=str(t.status), committed=t.committed, hypothesis=t.hypothesis, trial=t.id,
                       niche=t.niche or "")
            if t.parent_id and t.parent_id != t.candidate_id:
                g.add_edge(t.parent_id, t.candidate_id)
        return g

    def ancestors(self, candidate: Candidate | str) -> list[Candidate]:
        """The chain of versions from the root to `candidate` (inclusive), oldest first."""
        cid = candidate.id if isinstance(candidate, Candidate) else candidate
        chain: list[Candidate] = []
        seen: set[str] = set()
        current = self.store.candidate(cid)
        while current is not None and current.id not in seen:
            chain.append(current)
            seen.add(current.id)
            current = self.store.candidate(current.parents[0]) if current.parents else None
        return chain[::-1]

    def niches(self) -> list[dict[str, Any]]:
        """Each island or MAP-Elites cell: its name, best version and score, and how many versions were placed there."""
        sizes = self.store.niche_sizes()
        return [{"niche": e.niche, "best_id": e.candidate_id, "best_score": e.score,
                 "placed": sizes.get(e.niche or "", 0)} for e in self.store.elites()]

    def niche_lines(self, *, limit: int = 20) -> list[str]:
        """Text lines for the niches (islands or cells), best first; empty for a single population."""
        niches = sorted(self.niches(), key=lambda n: -n["best_score"])
        if not niches:
            return []
        kind = "Cells" if niches[0]["niche"].startswith("cell ") else "Islands"
        lines = [f"{kind} ({len(niches)} filled" + (f", best {limit} shown):" if len(niches) > limit else "):")]
        lines += [f"  {n['niche']}: {n['best_id']} score {format_score(n['best_score'])} ({n['placed']} placed)"
                  for n in niches[:limit]]
        return lines

    def best(self) -> tuple[str, float] | None:
        top = self.store.best_member()
        return (top.candidate_id, top.score) if top else None

    def summary(self, *, max_recent: int = 10, max_children: int = 10, max_chain: int = 8) -> str:
        """Text for prompts: the newest `max_chain` versions of the chain to the best, the latest attempts
        started from the best, the latest trials. Indexed queries only: its cost does not grow with the run."""
        best = self.best()
        if best is None:
            return "No committed version yet."
        best_id, best_score = best
        chain, more = self._chain(best_id, max_chain)
        by_candidate: dict[str, Trial] = {}
        for t in self.store.trials(state="done", candidate_ids=chain):
            if t.candidate_id and (t.committed or t.candidate_id not in by_candidate):
                by_candidate[t.candidate_id] = t
        lines = [f"Best committed version: {best_id} (score {format_score(best_score)}).", "",
                 "Chain from the root to the best:" if not more else f"The newest {len(chain)} versions of the "
                 "chain to the best (older ones: show_version of the oldest one's parent):"]
        previous: float | None = None
        for cid in chain:
            found = by_candidate.get(cid)
            score = found.score if found else None
            delta = f" ({format_delta(score, previous)} vs the one above)" if previous and score is not None else ""
            lines.append(f"  {cid}  score {format_score(score)}{delta}  "
                         f"{((found.hypothesis if found else '') or '(seed)')[:160]}")
            previous = score
        children = [t for t in self.store.trials(state="done", parent_id=best_id, last=max_children)
                    if t.candidate_id != best_id]
        if children:
            lines += ["", f"Latest attempts started from the best ({len(children)}):"]
            lines += [_trial_line(t, base=best_score) for t in children]
        niches = self.niche_lines()
        if niches:
            lines += ["", *niches]
        recent = self.store.trials(state="done", last=max_recent, include_seeds=False)
        if recent:
            lines += ["", f"Latest {len(recent)} trials:"]
            lines += [_trial_line(t) for t in recent]
        return "\n".join(lines)

    def _chain(self, candidate_id: str, length: int) -> tuple[list[str], bool]:
        """The ids of the newest `length` versions up to `candidate_id`, oldest first, and whether older ones exist."""
        chain: list[str] = []
        current: str | None = candidate_id
        while current is not None and current not in chain and len(chain) < length:
            chain.append(current)
            parents = self.store.parents(current)
            current = parents[0] if parents else None
        return chain[::-1], current is not None and current not in chain

    def to_graphml(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        nx.write_graphml(self.graph(), path)
        return path

    def to_git(self, path: str | os.PathLike[str]) -> Path:
        """A git repository with one commit per committed version (score and hypothesis in the message)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise RunStoreError(f"git export target {str(path)!r} exists and is not empty; choose a new directory")
        path.mkdir(parents=True, exist_ok=True)
        _git(path, "init", "-q")
        for member in self.store.members():
            candidate = self.store.candidate(member.candidate_id)
            trial = self.store.trial(member.trial_id)
            assert candidate is not None and trial is not None  # Check internal correctness.
            for old in path.iterdir():
                if old.name != ".git":
                    _remove(old)
            candidate.write_to(path)
            _git(path, "add", "-A")
            message = _commit_message(candidate, trial)
            with tempfile.NamedTemporaryFile("w", delete=False) as f:
                f.write(message)
            try:
                _git(path, "commit", "-q", "--allow-empty", "-F", f.name)
            finally:
                os.unlink(f.name)
        return path


def _trial_line(t: Trial, *, base: float | None = None) -> str:
    """One trial; with `base` (the score of the version it started from), its Δ vs that version."""
    mark = "committed" if t.committed else str(t.status)
    reason = f" ({t.reason[:100]})" if t.reason and not t.committed else ""
    where = f" [{t.niche}]" if t.niche else ""
    delta = f" Δ {format_delta(t.score, base):>8}" if base and t.score is not None else ""
    return f"  trial {t.id}: {mark:<13} score {format_score(t.score):>9}{delta}{where}  {t.hypothesis[:120]}{reason}"


def _commit_message(candidate: Candidate, trial: Trial) -> str:
    title = (trial.hypothesis or candidate.hypothesis or "seed").splitlines()[0][:72]
    return (f"{title}\n\nscore: {format_score(trial.score)}\ncandidate: {candidate.id}\ntrial: {trial.id}\n"
            f"metrics: {dict(trial.metrics)}\n\n{trial.hypothesis}\n")


def _git(cwd: Path, *args: str) -> None:
    env: dict[str, Any] = {**os.environ, "GIT_AUTHOR_NAME": "evoagent", "GIT_AUTHOR_EMAIL": "evoagent@localhost",
                           "GIT_COMMITTER_NAME": "evoagent", "GIT_COMMITTER_EMAIL": "evoagent@localhost"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _remove(p: Path) -> None:
    if p.is_dir():
        for child in p.iterdir():
            _remove(child)
        p.rmdir()
    else:
        p.unlink()
