"""Plotly figures of a run, drawn from the shared views (usable in notebooks as well as in the HTML report)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..result import EvalResult, format_score
from ..views import ScoreSeries, TreeNode, TrialRow, label_counts

# One colour per label, the same in every chart (committed versions stand out in green).
LABEL_COLORS = {
    "committed": "#2ca02c", "ok": "#1f77b4", "compile_error": "#ff7f0e", "incorrect": "#d62728",
    "illegal": "#9467bd", "timeout": "#8c564b", "crash": "#111111", "oom": "#e377c2",
    "budget_overrun": "#bcbd22", "duplicate": "#a0a0a0", "harness_error": "#17becf",
}
HEIGHT_PX = 380


def _color(label: str) -> str:
    return LABEL_COLORS.get(label, "#7f7f7f")


def _layout(fig: go.Figure, title: str, *, height: int = HEIGHT_PX, **kwargs: Any) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white", height=height,
                      margin={"l": 70, "r": 20, "t": 50, "b": 45}, legend={"orientation": "h", "y": -0.18},
                      **kwargs)
    return fig


def _trial_ticks(fig: go.Figure, trial_ids: Sequence[int], **where: Any) -> None:
    """Whole-number ticks on a trial axis (one per trial when there are few)."""
    fig.update_xaxes(tickformat="d", dtick=1 if len(trial_ids) <= 20 else None, **where)


def tick_format(values: Sequence[float | None]) -> str:
    """A d3 format for an axis of these values: 3 significant digits, with an exponent for very small or large
    numbers (so 7.5e-6, not 0.0000075)."""
    largest = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=1.0)
    return ".3~e" if largest and (largest < 1e-3 or largest >= 1e6) else ".3~g"


def _hover(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width] + "…"


def score_chart(series: ScoreSeries, rows: Sequence[TrialRow], caption: str, *,
                baselines: Mapping[str, float] | None = None, supervisor_trials: Sequence[int] = ()) -> go.Figure:
    """Every trial as a point coloured by its label, the committed best as a step line, seed and baseline lines.

    The strip below the scores shows every trial's label (failed trials have no score above).
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.78, 0.22], vertical_spacing=0.04)
    hypothesis = {r.id: r.hypothesis for r in rows}
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(series.labels):
        by_label.setdefault(label, []).append(i)
    for label, idx in sorted(by_label.items()):
        scored = [i for i in idx if series.scores[i] is not None]
        text = [f"trial {series.trial_ids[i]}: {_hover(hypothesis.get(series.trial_ids[i], ''))}" for i in idx]
        if scored:
            fig.add_trace(go.Scatter(
                x=[series.trial_ids[i] for i in scored], y=[series.scores[i] for i in scored], mode="markers",
                name=label, legendgroup=label,
                marker={"color": _color(label), "size": 9 if label == "committed" else 7},
                text=[f"trial {series.trial_ids[i]}: {_hover(hypothesis.get(series.trial_ids[i], ''))}"
                      for i in scored],
                hovertemplate="%{text}<br>score %{y:.6g}<extra>" + label + "</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[series.trial_ids[i] for i in idx], y=[label] * len(idx), mode="markers", name=label,
            legendgroup=label, showlegend=not scored, marker={"color": _color(label), "symbol": "line-ns-open",
                                                               "size": 12, "line": {"width": 2}},
            text=text, hovertemplate="%{text}<extra>" + label + "</extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=list(series.trial_ids), y=list(series.best_so_far), mode="lines", name="committed best",
                             line={"shape": "hv", "color": LABEL_COLORS["committed"], "width": 2}), row=1, col=1)
    lines = {"seed": series.seed_score, **(baselines or {})}
    for i, (name, value) in enumerate(lines.items()):
        if value is not None:
            fig.add_hline(y=value, line={"dash": "dot" if name == "seed" else "dash", "width": 1,
                                         "color": "#555555" if name == "seed" else _BASELINE_COLORS[i % 4]},
                          annotation_text=f"{name} {format_score(value)}", annotation_position="top left",
                          row=1, col=1)
    for trial_id in supervisor_trials:
        fig.add_vline(x=trial_id, line={"dash": "dot", "color": "#9467bd", "width": 1}, row="all", col=1)
    if supervisor_trials:
        fig.add_annotation(x=supervisor_trials[0], y=1.02, yref="paper", text="supervisor", showarrow=False,
                           font={"color": "#9467bd", "size": 11})
    fig.update_yaxes(title_text=caption, tickformat=tick_format([*series.scores, *lines.values()]), row=1, col=1)
    fig.update_yaxes(title_text="label", row=2, col=1)
    fig.update_xaxes(title_text="trial", row=2, col=1)
    _trial_ticks(fig, series.trial_ids)
    return _layout(fig, "Score over trials", height=HEIGHT_PX + 120)


_BASELINE_COLORS = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2")


def configs_chart(best: EvalResult | None, seed: EvalResult | None, caption: str,
                  baselines: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Per-configuration metrics of the best and the seed next to the baselines (ratio to the first baseline)."""
    fig = go.Figure()
    configs = sorted({*(best.metrics if best else {}), *(seed.metrics if seed else {})})
    reference = next(iter(baselines.items()), None)
    series: dict[str, Mapping[str, float]] = {}
    if seed is not None:
        series["seed"] = seed.metrics
    if best is not None:
        series["best"] = best.metrics
    series.update(baselines)
    for i, (name, metrics) in enumerate(series.items()):
        values = [metrics.get(c) for c in configs]
        if reference is not None:
            values = [v / reference[1][c] if v is not None and reference[1].get(c) else None
                      for v, c in zip(values, configs)]
        color = {"seed": "#aaaaaa", "best": LABEL_COLORS["committed"]}.get(name, _BASELINE_COLORS[(i - 2) % 4])
        fig.add_trace(go.Bar(x=configs, y=values, name=name, marker={"color": color},
                             hovertemplate="%{x}<br>%{y:.4g}<extra>" + name + "</extra>"))
    ytitle = f"ratio to {reference[0]}" if reference is not None else caption
    fig.update_yaxes(title_text=ytitle, tickformat=tick_format([v for t in fig.data for v in (t.y or ())]))
    return _layout(fig, "Per configuration: best and seed" + (" vs baselines" if baselines else ""),
                   barmode="group")


def lineage_chart(nodes: Sequence[TreeNode]) -> go.Figure:
    """The lineage as a tree over time: committed versions and the children each one had (x trial, y generation)."""
    fig = go.Figure()
    where = {n.trial_id: (n.trial_id, n.depth) for n in nodes}
    xs: list[float | None] = []
    ys: list[float | None] = []
    for n in nodes:
        if n.parent_trial_id in where:
            px, py = where[n.parent_trial_id]
            xs += [px, n.trial_id, None]
            ys += [py, n.depth, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#c8c8c8", "width": 1}, hoverinfo="skip",
                             showlegend=False))
    by_label: dict[str, list[TreeNode]] = {}
    for n in nodes:
        by_label.setdefault(n.status, []).append(n)
    for label, members in sorted(by_label.items()):
        fig.add_trace(go.Scatter(
            x=[n.trial_id for n in members], y=[n.depth for n in members], mode="markers", name=label,
            marker={"color": _color(label), "size": 12 if label == "committed" else 8,
                    "symbol": "circle" if label in ("committed", "ok") else "x"},
            text=[f"trial {n.trial_id} ({n.candidate_id or '-'}) score {format_score(n.score)}: {_hover(n.hypothesis)}"
                  for n in members], hovertemplate="%{text}<extra>" + label + "</extra>"))
    fig.update_xaxes(title_text="trial")
    _trial_ticks(fig, [n.trial_id for n in nodes])
    fig.update_yaxes(title_text="generation (commits from a seed)", dtick=1)
    return _layout(fig, "Lineage: committed versions and their children")


def labels_chart(rows: Sequence[TrialRow]) -> go.Figure:
    """Cumulative count of each label over the variation trials."""
    fig = go.Figure()
    counts = label_counts(rows)
    trials = [r.id for r in rows if not r.is_seed and r.status not in ("running", "interrupted")]
    for label, values in counts.items():
        fig.add_trace(go.Scatter(x=trials, y=values, mode="lines", name=label, stackgroup="labels",
                                 line={"color": _color(label)}))
    fig.update_xaxes(title_text="trial")
    _trial_ticks(fig, trials)
    fig.update_yaxes(title_text="trials so far")
    return _layout(fig, "Labels over time")


def _time_unit(rows: Sequence[TrialRow]) -> tuple[float, str]:
    """Seconds per unit and its name for a time axis spanning the run (seconds, minutes or hours)."""
    span = max((r.finished_s for r in rows if r.finished_s is not None), default=0.0)
    return (1.0, "seconds") if span < 120 else (60.0, "minutes") if span < 7200 else (3600.0, "hours")


def usage_chart(rows: Sequence[TrialRow]) -> go.Figure:
    """Cumulative tokens (by operator) and US dollars over the time since the run's start."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    per, unit = _time_unit(rows)
    done = sorted((r for r in rows if r.finished_s is not None and not r.is_seed), key=lambda r: r.finished_s or 0.0)
    for operator in sorted({r.operator for r in done}):
        mine = [r for r in done if r.operator == operator]
        fig.add_trace(go.Scatter(x=[(r.finished_s or 0.0) / per for r in mine], y=_cumulative([r.tokens for r in mine]),
                                 mode="lines+markers", name=f"tokens ({operator})"), secondary_y=False)
    fig.add_trace(go.Scatter(x=[(r.finished_s or 0.0) / per for r in done], y=_cumulative([r.cost_usd for r in done]),
                             mode="lines", name="US dollars", line={"dash": "dash", "color": "#444444"}),
                  secondary_y=True)
    if not any(r.tokens for r in done):
        fig.add_annotation(text="no model tokens used (an offline operator)", showarrow=False, x=0.5, y=0.6,
                           xref="paper", yref="paper", font={"size": 14, "color": "#555555"})
        fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(title_text=f"{unit} since the run started", rangemode="tozero")
    fig.update_yaxes(title_text="tokens", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="US dollars", secondary_y=True, rangemode="tozero")
    return _layout(fig, "Tokens and cost over time")


def _cumulative(values: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def rate_chart(rows: Sequence[TrialRow], *, bins: int = 20) -> go.Figure:
    """Trials finished per hour, in up to `bins` equal time bins (at least a minute each) over the run."""
    ends = sorted(r.finished_s for r in rows if r.finished_s is not None and not r.is_seed)
    per, unit = _time_unit(rows)
    fig = go.Figure()
    if ends:
        width = max(ends[-1] / bins, 60.0)
        count = int(ends[-1] // width) + 1
        per_bin = [0] * count
        for end in ends:
            per_bin[min(int(end // width), count - 1)] += 1
        fig.add_trace(go.Bar(x=[(i + 0.5) * width / per for i in range(count)], y=[n * 3600 / width for n in per_bin],
                             width=[width / per * 0.9] * count, marker={"color": "#1f77b4"}, name="trials per hour",
                             hovertemplate="%{y:.1f} trials/h<extra></extra>"))
        fig.update_xaxes(range=[0, count * width / per])
    fig.update_xaxes(title_text=f"{unit} since the run started")
    fig.update_yaxes(title_text="trials per hour")
    return _layout(fig, "Trials per hour")


def profile_chart(points: Sequence[tuple[int, Mapping[str, float]]]) -> go.Figure:
    """The profile summary of each committed version (one small panel per quantity)."""
    names = sorted({name for _, summary in points for name in summary})
    columns = min(len(names), 4) or 1
    grid_rows = (len(names) + columns - 1) // columns or 1
    fig = make_subplots(rows=grid_rows, cols=columns, subplot_titles=names, horizontal_spacing=0.08)
    for i, name in enumerate(names):
        xs = [t for t, summary in points if name in summary]
        fig.add_trace(go.Scatter(x=xs, y=[summary[name] for _, summary in points if name in summary],
                                 mode="lines+markers", name=name, showlegend=False,
                                 line={"shape": "hv", "color": LABEL_COLORS["committed"]}),
                      row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(title_text="trial of the commit")
    _trial_ticks(fig, [t for t, _ in points])
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Static profile of committed versions", height=260 * grid_rows + 60)
