"""Live progress of a run for people: a rich bar in a terminal, an updating HTML block in a notebook, plain lines else.

A progress display is an event handler for `evolve(on_event=...)`; `evolve(..., progress=True)` picks
one with `progress_for(run)`. Its state is fed by the engine's events (so the cost per trial is
constant), starting from what the store holds when it opens (a resumed run counts earlier trials).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from .formatting import clip, format_duration
from .result import format_score
from .views import Ratio, RunSummary, confirmations, rows_of, seed_figure, summarize

if TYPE_CHECKING:
    from .evaluator import Evaluator
    from .records import Event
    from .store import RunStore

class ProgressState:
    """What the progress line shows, kept up to date from engine events."""

    def __init__(self, summary: RunSummary, retries: int = 0, store: RunStore | None = None) -> None:
        self.summary = summary
        self.retries = retries  # evaluations run again after their machine was lost
        self.labels: Counter[str] = Counter(summary.labels)
        self.started = time.monotonic()
        self.done_at_start = summary.trials
        self._store = store  # read at each commit for the improvement figure against the seed
        self._confirmed: dict[int, Ratio] = {}  # trial id -> its re-measured ratio to the best

    @classmethod
    def of(cls, store: RunStore, evaluator: Evaluator) -> ProgressState:
        return cls(summarize(store, caption=evaluator.score_caption(evaluator.device_label())),
                   retries=len(store.evaluations(kind="lost")), store=store)

    def update(self, event: Event) -> str:
        """Takes one event; returns a line about it worth printing ('' if none)."""
        p, s = event.payload, self.summary
        if event.kind == "start":
            self.summary = replace(s, budget_trials=(p.get("budget") or {}).get("trials"))
        elif event.kind == "seed":
            score = p.get("score")
            seed = score if s.seed_score is None or (score is not None and score > s.seed_score) else s.seed_score
            best = max((v for v in (s.best_score, score) if v is not None), default=None)
            self.summary = replace(s, seed_score=seed, best_score=best if p.get("status") == "ok" else s.best_score)
            reason = clip(p["reason"], 160) if p.get("reason") else ""
            if reason.endswith("…") and p.get("trial_id"):  # cut: the whole reason and the stage's log are in show
                reason += f" (all of it: evoagent show RUN {p['trial_id']})"
            head = f"seed {p.get('status')}: score {format_score(score)} {s.caption}"
            return head + (f" ({reason})" if reason else "")
        elif event.kind in ("trial", "commit"):
            return self._trial(event)
        elif event.kind == "supervisor":  # the event carries the advice's reason and directions
            directions = "; ".join(f"{i}. {d}" for i, d in enumerate(p.get("directions", []), 1))
            where = f" (all of it: evoagent show RUN {p['trial_id']})" if p.get("trial_id") else ""
            return clip(f"supervisor: {p.get('reason', '')}: {directions}", 240) + where
        elif event.kind == "infrastructure":
            self.retries += 1
            return (f"trial {p.get('trial_id')}: {p.get('what', 'evaluation')} lost with its machine, running it "
                    f"again | {clip(str(p.get('reason', '')), 160)}")
        elif event.kind == "cluster":
            return f"executor {p.get('executor')}"
        elif event.kind == "confirm" and p.get("ratio") is not None:
            self._confirmed[int(p["trial_id"])] = Ratio(value=p["ratio"], low=p["low"], high=p["high"],
                                                        rounds=p["rounds"])
        elif event.kind == "backoff":
            return f"model API failing ({p['failures']} trial(s) in a row): next trial in {p['delay_s']:.0f} s"
        elif event.kind == "stop":
            self.summary = replace(s, stopped=str(p.get("reason", "")))
        return ""

    def _trial(self, event: Event) -> str:
        p, s = event.payload, self.summary
        label = "committed" if p["committed"] else p["status"]
        self.labels[p["status"]] += 1
        usage = event.trial.usage if event.trial is not None else None
        best = s.best_score
        if p["committed"] and p.get("score") is not None:  # an island or a new MAP-Elites cell may commit lower
            best = p["score"] if best is None else max(best, p["score"])
        self.summary = replace(
            s, trials=s.trials + 1, committed=s.committed + bool(p["committed"]), labels=dict(self.labels),
            best_score=best, tokens=s.tokens + (usage.tokens if usage else 0),
            cost_usd=s.cost_usd + (usage.cost_usd if usage else 0.0))
        change = ""
        figure = self._confirmed.pop(int(p["trial_id"]), None)
        if figure is not None:  # re-measured beside the best: that figure, with its spread, is the one to show
            change = f" ({figure.text('the best')})"
        elif p.get("score") is not None and s.best_score:  # judged on one measurement (it did not pass the rule)
            change = f" ({p['score'] / s.best_score:.3f}x the best, measured once)"
        if p["committed"] and self._store is not None:  # the best against the seed, as `status` and the report say
            member = self._store.best_member()
            self.summary = replace(self.summary, seed_figure=seed_figure(
                rows_of(self._store.trials(), confirmations(self._store)), member.candidate_id if member else None))
        where = f" [{p['niche']}]" if p.get("niche") else ""
        # the trial's id counts the seeds too (as `show` does); the count beside it is the progress bar's
        count = f" ({self.summary.trials} of {s.budget_trials})" if s.budget_trials else ""
        line = (f"trial {p['trial_id']}{count} {label}: score {format_score(p.get('score'))} {s.caption}{change}{where}"
                f" | {clip(p.get('hypothesis', ''), 90)}")
        if not p["committed"] and p.get("reason"):
            reason = clip(p["reason"], 160)
            more = f" (all of it: evoagent show RUN {p['trial_id']})" if reason.endswith("…") else ""
            line += f"\n    {reason}{more}"
        return line

    def left_s(self) -> float | None:
        """Estimated seconds until the trial budget is spent, from this call's pace (None if unknown)."""
        s = self.summary
        done_here = s.trials - self.done_at_start
        if s.budget_trials is None or done_here <= 0:
            return None
        return (time.monotonic() - self.started) / done_here * max(s.budget_trials - s.trials, 0)

    def line(self) -> str:
        s = replace(self.summary, elapsed_s=time.monotonic() - self.started)
        left = self.left_s()
        retried = f", {self.retries} retried after a lost machine" if self.retries else ""
        return s.line() + retried + (f", ~{format_duration(left)} left" if left else "")


class PlainProgress:
    """Lines on a stream: each trial as it ends, and the progress line after it."""

    def __init__(self, state: ProgressState, stream: TextIO | None = None) -> None:
        self.state, self.stream = state, stream or sys.stderr

    def __call__(self, event: Event) -> None:
        text = self.state.update(event)
        if text:
            print(f"  {text}", file=self.stream, flush=True)
        if event.kind in ("trial", "commit"):
            print(f"  [{self.state.line()}]", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar in the terminal (rich): trials of budget, best, commits, labels, tokens, elapsed and left."""

    def __init__(self, state: ProgressState, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self.state = state
        self.console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=True)
        self.bar = Progress(SpinnerColumn(), TextColumn("trials"), BarColumn(bar_width=24), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), console=self.console, transient=False)
        budget = state.summary.budget_trials
        self.task = self.bar.add_task("run", total=budget, completed=state.summary.trials, info=self._info())
        self.bar.start()

    def _info(self) -> str:
        return self.state.line().split(" | ", 1)[1] if " | " in self.state.line() else self.state.line()

    def __call__(self, event: Event) -> None:
        text = self.state.update(event)
        if text:
            self.console.print(f"  {text}", markup=False)
        self.bar.update(self.task, total=self.state.summary.budget_trials, completed=self.state.summary.trials,
                        info=self._info())

    def close(self) -> None:
        self.bar.update(self.task, info=self._info())
        self.bar.stop()


class NotebookProgress:
    """An HTML block in a Jupyter output that updates in place (a <progress> bar and the progress line)."""

    def __init__(self, state: ProgressState) -> None:
        ipython: Any = importlib.import_module("IPython.display")
        self.state, self._html = state, ipython.HTML
        self.last = ""
        self.handle = ipython.display(ipython.HTML(self._render()), display_id=True)

    def _render(self) -> str:
        import html

        s = self.state.summary
        bar = (f"<progress value='{s.trials}' max='{s.budget_trials}' style='width:16em'></progress> "
               if s.budget_trials else "")
        last = f"<br><small>{html.escape(self.last)}</small>" if self.last else ""
        return f"<div class='evoagent-progress'>{bar}<code>{html.escape(self.state.line())}</code>{last}</div>"

    def __call__(self, event: Event) -> None:
        text = self.state.update(event)
        if text:
            self.last = text
        if self.handle is not None:
            self.handle.update(self._html(self._render()))

    def close(self) -> None:
        self.last = f"stopped: {self.state.summary.stopped}" if self.state.summary.stopped else self.last
        if self.handle is not None:
            self.handle.update(self._html(self._render()))


class LiveText:
    """A region of the terminal redrawn in place (rich), for `evoagent status --watch`."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text = Text
        self.live = Live(Text(""), console=Console(file=stream), auto_refresh=False)
        self.live.start()

    @classmethod
    def on_terminal(cls, stream: TextIO) -> LiveText | None:
        """A live region when `stream` is a terminal and rich is installed, else None (print changes instead)."""
        return cls(stream) if stream.isatty() and _has_rich() else None

    def update(self, text: str) -> None:
        self.live.update(self._text(text), refresh=True)

    def stop(self) -> None:
        self.live.stop()


Progress = PlainProgress | RichProgress | NotebookProgress


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where output is HTML), False in a terminal or plain Python."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_for(store: RunStore, evaluator: Evaluator, *, stream: TextIO | None = None) -> Progress:
    """The display that suits where we run: notebook HTML, a rich bar on a terminal, else plain lines (logs, CI)."""
    state = ProgressState.of(store, evaluator)
    if in_notebook():
        return NotebookProgress(state)
    out = stream or sys.stderr
    if out.isatty() and _has_rich():
        return RichProgress(state, out)
    return PlainProgress(state, out)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True
