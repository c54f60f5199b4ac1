"""Views of a run's store shared by the CLI, notebooks and the HTML report: trials table, score series, lineage tree.

Every function here reads a `RunStore` (read-only is enough, so they work while a run is being written)
and returns plain frozen records; nothing here draws or prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .evaluator import Evaluator
from .formatting import format_duration, format_tokens, plural, table_html
from .records import Trial
from .result import format_score
from .store import RunStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Ratio:
    """An improvement figure: a ratio of scores, with the spread of its re-measurements when it has them.

    `rounds` is 0 for a plain ratio of two stored scores (no spread); otherwise `low` and `high` bound
    the paired re-measurements (for a product along a lineage: the products of the bounds).
    """

    value: float
    low: float | None = None
    high: float | None = None
    rounds: int = 0

    def __mul__(self, other: Ratio) -> Ratio:
        low = (self.low if self.low is not None else self.value) * (other.low if other.low is not None else other.value)
        high = ((self.high if self.high is not None else self.value)
                * (other.high if other.high is not None else other.value))
        measured = self.rounds + other.rounds
        return Ratio(value=self.value * other.value, low=low if measured else None, high=high if measured else None,
                     rounds=measured)

    def text(self, of: str, *, unit: str = "x") -> str:
        """'1.270x the seed (1.200-1.310 over 2 re-measurements)', the spread only when measured."""
        spread = ""
        if self.rounds and self.low is not None and self.high is not None:
            spread = f" ({self.low:.3f}-{self.high:.3f} over {plural(self.rounds, 're-measurement')})"
        return f"{self.value:.3f}{unit} {of}{spread}"

    def short(self) -> str:
        """'1.270 (1.200-1.310)' for a table cell."""
        if self.rounds and self.low is not None and self.high is not None:
            return f"{self.value:.3f} ({self.low:.3f}-{self.high:.3f})"
        return f"{self.value:.3f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRow:
    """One trial as people read it: who it came from, how it was judged, what it cost.

    Attributes:
        ratio_to_parent: score / the parent's score (None when either has no score); for a trial re-measured
            beside its parent (`[population] confirm`), the median of the paired re-measurements.
        parent_figure: the same as a `Ratio`, with the re-measurements' spread when there were any.
        status: the outcome label, or the trial's state ('running', 'interrupted') while it has none.
        finished_s: seconds from the run's first trial to this one's end (None while running).
    """

    id: int
    operator: str
    parent_id: str | None
    candidate_id: str | None
    status: str
    score: float | None
    ratio_to_parent: float | None
    committed: bool
    hypothesis: str
    reason: str
    tokens: int
    cost_usd: float
    wall_s: float | None
    finished_s: float | None
    parent_figure: Ratio | None = None

    @property
    def is_seed(self) -> bool:
        return self.operator == "seed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreSeries:
    """Scores over trials: every finished trial, the committed best after each, the seed's score."""

    trial_ids: tuple[int, ...]
    scores: tuple[float | None, ...]  # None for a trial without a score (failed)
    labels: tuple[str, ...]
    committed: tuple[bool, ...]
    best_so_far: tuple[float | None, ...]  # the best committed score once each trial was done
    seed_score: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeNode:
    """A node of the lineage tree: a committed version, or a failed child of a committed version."""

    trial_id: int
    candidate_id: str | None
    parent_trial_id: int | None  # the trial that produced the parent (None for seeds)
    depth: int  # generations from a seed
    committed: bool
    status: str
    score: float | None
    hypothesis: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """Where a run stands, in the words a person needs (the CLI's status, the notebook's summary)."""

    run_dir: str
    target: str
    caption: str  # the score's unit and meaning, e.g. "sum of radii"
    trials: int  # variation trials done (seeds not counted)
    budget_trials: int | None
    running: int
    committed: int
    labels: Mapping[str, int]
    best_score: float | None
    best_id: str | None
    seed_score: float | None
    tokens: int
    cost_usd: float
    elapsed_s: float  # from the first trial's start to the last trial's end (or now while running)
    stopped: str  # why the last evolve() call stopped ('' while running or before any stop)
    seed_figure: Ratio | None = None  # the best against its seed, through its lineage's re-measured ratios
    started: bool = False  # an evolve() call started and has not stopped (it may be between two trials)

    def state(self) -> str:
        """'stopped (why)', 'running, N trial(s) in flight', 'running, between trials' or 'not running'."""
        if self.stopped:
            return f"stopped ({self.stopped})"
        if self.running:
            return f"running, {self.running} trial(s) in flight"
        return "running, between trials" if self.started else "not running"

    @property
    def ratio_to_seed(self) -> float | None:
        return self.seed_figure.value if self.seed_figure is not None else ratio(self.best_score, self.seed_score)

    def seed_text(self, of: str = "the seed") -> str:
        """'1.270x the seed (1.200-1.310 over 4 re-measurements)', or '' before there is a ratio."""
        if self.seed_figure is not None:
            return self.seed_figure.text(of)
        value = self.ratio_to_seed
        return "" if value is None else f"{value:.3f}x {of}"

    def line(self) -> str:
        """One line: trials of budget, best with its unit and ratio to the seed, commits, labels, cost."""
        of = f"/{self.budget_trials}" if self.budget_trials is not None else ""
        best = "no correct version yet" if self.best_score is None else f"best {format_score(self.best_score)} " \
            f"{self.caption}" + (f" ({self.seed_text('seed')})" if self.ratio_to_seed is not None else "")
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items())) or "none yet"
        return (f"trials {self.trials}{of} | {best} | commits {self.committed} | labels: {labels} | "
                f"{format_tokens(self.tokens)} tokens ${self.cost_usd:.2f} | {format_duration(self.elapsed_s)}")


def ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


def evaluator_class(store: RunStore) -> type[Evaluator]:
    """The run's evaluator class (not an instance: nothing is built), or the base class if it cannot be loaded."""
    from .errors import EvoagentError
    from .references import load_object

    spec = store.meta("evaluator", {}) or {}
    try:
        cls = load_object(str(spec.get("class", "")))
    except (EvoagentError, ImportError, OSError, SyntaxError):
        return Evaluator
    return cls if isinstance(cls, type) and issubclass(cls, Evaluator) else Evaluator


def trial_rows(store: RunStore) -> list[TrialRow]:
    """Every trial (seeds, running and interrupted ones too), oldest first."""
    return rows_of(store.trials(), confirmations(store))


def rows_of(trials: Sequence[Trial], confirmed: Mapping[int, Mapping[str, Any]] | None = None) -> list[TrialRow]:
    """Rows of these trials; `confirmed` (trial id -> its 'confirm' event) gives re-measured ratios to the parent."""
    scores = {t.candidate_id: t.score for t in trials if t.candidate_id and t.score is not None}
    start = min((t.started_at for t in trials), default=0.0)
    return [_row(t, scores.get(t.parent_id) if t.parent_id else None, start, (confirmed or {}).get(t.id))
            for t in trials]


def _row(t: Trial, parent_score: float | None, start: float, confirm: Mapping[str, Any] | None) -> TrialRow:
    figure = _parent_figure(t, parent_score, confirm)
    return TrialRow(
        id=t.id, operator=t.operator, parent_id=t.parent_id, candidate_id=t.candidate_id,
        status=str(t.status) if t.status is not None else t.state, score=t.score,
        ratio_to_parent=figure.value if figure else None, committed=t.committed, hypothesis=t.hypothesis,
        reason=t.reason, tokens=t.usage.tokens, cost_usd=t.usage.cost_usd, wall_s=t.wall_s,
        finished_s=None if t.finished_at is None else t.finished_at - start, parent_figure=figure)


def _parent_figure(t: Trial, parent_score: float | None, confirm: Mapping[str, Any] | None) -> Ratio | None:
    """The re-measured ratio when the trial was re-measured beside its parent, else score / parent score."""
    if confirm and confirm.get("ratio") is not None and confirm.get("best_id") == t.parent_id and t.score is not None:
        return Ratio(value=float(confirm["ratio"]), low=float(confirm["low"]), high=float(confirm["high"]),
                     rounds=int(confirm["rounds"]))
    plain = ratio(t.score, parent_score)
    return None if plain is None else Ratio(value=plain)


def confirmations(store: RunStore) -> dict[int, dict[str, Any]]:
    """Trial id -> the payload of its (last) 'confirm' event: the re-measured figure of a would-be commit."""
    return {int(e["payload"]["trial_id"]): e["payload"] for e in store.events("confirm")
            if e["payload"].get("trial_id") is not None}


def seed_figure(rows: Sequence[TrialRow], candidate_id: str | None) -> Ratio | None:
    """A committed version against the seed it descends from: the product of its lineage's ratios to their parents.

    Each step is the re-measured ratio where the commit was re-measured beside its parent, so the
    figure carries their spread; without re-measurements the product is the plain ratio of scores.
    None when the lineage cannot be followed to a seed.
    """
    committed = {r.candidate_id: r for r in rows if r.committed and r.candidate_id}
    figure, seen = Ratio(value=1.0), set()
    row = committed.get(candidate_id or "")
    while row is not None and not row.is_seed:
        if row.parent_figure is None or row.candidate_id in seen:
            return None
        seen.add(row.candidate_id)
        figure = figure * row.parent_figure
        row = committed.get(row.parent_id or "")
    return figure if row is not None and candidate_id is not None else None


def improvement_lines(store: RunStore, trial_id: int) -> list[str]:
    """The trial's improvement figure for people: against its parent and, for a commit, against the seed."""
    rows = trial_rows(store)
    row = next((r for r in rows if r.id == trial_id), None)
    if row is None or row.is_seed or row.parent_figure is None:
        return []
    lines = [f"improvement: {row.parent_figure.text('its parent ' + (row.parent_id or ''))}"]
    if row.committed:
        figure = seed_figure(rows, row.candidate_id)
        if figure is not None:
            lines.append(f"improvement: {figure.text('the seed')}")
    return lines


def score_series(rows: Sequence[TrialRow]) -> ScoreSeries:
    """The score of every finished trial and the committed best after each."""
    done = [r for r in rows if r.status not in ("running", "interrupted")]
    best: float | None = None
    best_so_far = []
    for r in done:
        if r.committed and r.score is not None:
            best = r.score if best is None else max(best, r.score)
        best_so_far.append(best)
    seeds = [r.score for r in done if r.is_seed and r.score is not None]
    return ScoreSeries(trial_ids=tuple(r.id for r in done), scores=tuple(r.score for r in done),
                       labels=tuple("committed" if r.committed else r.status for r in done),
                       committed=tuple(r.committed for r in done), best_so_far=tuple(best_so_far),
                       seed_score=max(seeds) if seeds else None)


def lineage_tree(rows: Sequence[TrialRow]) -> list[TreeNode]:
    """Committed versions and the failed (or not committed) children of each, with generations from a seed."""
    producer = {r.candidate_id: r for r in rows if r.committed and r.candidate_id}
    depth: dict[int, int] = {}
    nodes = []
    for r in rows:
        parent = producer.get(r.parent_id) if r.parent_id else None
        if r.parent_id and parent is None:
            continue  # the child of a version that never entered the lineage (not shown)
        depth[r.id] = 0 if parent is None else depth.get(parent.id, 0) + 1
        nodes.append(TreeNode(trial_id=r.id, candidate_id=r.candidate_id,
                              parent_trial_id=parent.id if parent else None, depth=depth[r.id],
                              committed=r.committed, status="committed" if r.committed else r.status,
                              score=r.score, hypothesis=r.hypothesis))
    return nodes


def label_counts(rows: Sequence[TrialRow]) -> dict[str, list[int]]:
    """Cumulative count of each label after each variation trial (seeds not counted)."""
    trials = [r for r in rows if not r.is_seed and r.status not in ("running", "interrupted")]
    names = sorted({"committed" if r.committed else r.status for r in trials})
    counts: Counter[str] = Counter()
    series: dict[str, list[int]] = {name: [] for name in names}
    for r in trials:
        counts["committed" if r.committed else r.status] += 1
        for name in names:
            series[name].append(counts[name])
    return series


def summarize(store: RunStore, *, caption: str | None = None, now: float | None = None) -> RunSummary:
    """The run's state from its store (works on a read-only store while the run is written).

    `now` (a time.time() value) measures the elapsed time of a run still going; without it, up to the last trial.
    """
    trials = store.trials()
    rows = rows_of(trials, confirmations(store))
    finished = [r for r in rows if not r.is_seed and r.status not in ("running", "interrupted")]
    best = store.best_member()
    running = sum(r.status == "running" for r in rows)
    start = min((t.started_at for t in trials), default=0.0)
    end = now if now is not None and running else max((t.finished_at or start for t in trials), default=start)
    events = [e for e in store.events() if e["kind"] in ("start", "stop")]
    config_budget = ((store.meta("config", {}) or {}).get("budget") or {}).get("trials")
    started_budget = next((e["payload"].get("budget", {}).get("trials") for e in reversed(events)
                           if e["kind"] == "start"), None)
    return RunSummary(
        run_dir=str(store.path.parent), **_target(store, caption, best.candidate_id if best else None),
        trials=len(finished), budget_trials=started_budget if started_budget is not None else config_budget,
        running=running,
        committed=sum(r.committed for r in finished), labels=dict(Counter(r.status for r in finished)),
        best_score=best.score if best else None, best_id=best.candidate_id if best else None,
        seed_score=score_series(rows).seed_score, tokens=sum(r.tokens for r in rows),
        cost_usd=sum(r.cost_usd for r in rows), elapsed_s=max(end - start, 0.0), stopped=_stopped(events),
        seed_figure=seed_figure(rows, best.candidate_id if best else None),
        started=bool(events) and events[-1]["kind"] == "start")


def _target(store: RunStore, caption: str | None, best_id: str | None) -> dict[str, str]:
    """The target's name and score caption: as the engine stored them (no import of the target, whose module
    may import torch), else from its class (runs written before the engine stored them)."""
    stored = store.meta("target") or {}
    device = _best_device(store, best_id)
    if stored.get("name") and (caption or device in ("", stored.get("device"))):
        return {"target": str(stored["name"]), "caption": caption or str(stored["caption"])}
    cls = evaluator_class(store)
    return {"target": _target_name(store, cls), "caption": caption or cls.score_caption(device)}


def _target_name(store: RunStore, cls: type[Evaluator]) -> str:
    """The evaluator's name, or its class name when the class cannot be loaded here."""
    if cls is not Evaluator:
        return cls.name
    return str((store.meta("evaluator", {}) or {}).get("class", "custom")).rpartition(":")[2] or "custom"


def _stopped(lifecycle: Sequence[Mapping[str, Any]]) -> str:
    """Why the last evolve() call stopped, or '' if one is going on (or none ran)."""
    if not lifecycle or lifecycle[-1]["kind"] != "stop":
        return ""
    return str(lifecycle[-1]["payload"].get("reason", "")) or "stopped"


def _best_device(store: RunStore, candidate_id: str | None) -> str:
    result = store.result(candidate_id) if candidate_id else None
    return result.device if result else ""


# -- HTML for notebooks (Run._repr_html_) --------------------------------------------------------------------

def summary_html(summary: RunSummary) -> str:
    """A compact table for Jupyter: the run's state and its best score with unit."""
    ratio_text = f" ({summary.seed_text('seed')})" if summary.ratio_to_seed is not None else ""
    fields = [
        ("run", summary.run_dir), ("target", summary.target),
        ("trials", f"{summary.trials}" + (f" of {summary.budget_trials}" if summary.budget_trials is not None
                                          else "") + (f", {summary.running} running" if summary.running else "")),
        ("best", f"{format_score(summary.best_score)} {summary.caption}{ratio_text}"
         + (f" — version {summary.best_id}" if summary.best_id else "")),
        ("commits", str(summary.committed)),
        ("labels", ", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items())) or "none yet"),
        ("usage", f"{format_tokens(summary.tokens)} tokens, ${summary.cost_usd:.2f}"),
        ("elapsed", format_duration(summary.elapsed_s) + (f" (stopped: {summary.stopped})" if summary.stopped else "")),
    ]
    return table_html(fields, title="evoagent run")
