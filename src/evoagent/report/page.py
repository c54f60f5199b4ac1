"""The HTML report of a run: one self-contained file (Plotly's script and every style inline, no network).

The run's store is opened read-only, so a report can be written while the run is still going.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline

from .. import views
from ..errors import RunStoreError
from ..formatting import format_duration, format_tokens, plural
from ..records import ModelStats
from ..result import EvalResult, format_score, geometric_mean
from ..store import RunStore
from . import charts

REPORT_NAME = "report.html"
RUN_DB = "run.db"  # as run.Run names it (this module reads the store without importing run)
MAX_TEXT_CHARS = 20_000  # per diff or details block; longer ones are cut (the full text: `evoagent show`)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    """Everything the report shows, read from the store in one go."""

    summary: views.RunSummary
    rows: tuple[views.TrialRow, ...]
    best: EvalResult | None
    seed: EvalResult | None
    baselines: Mapping[str, Mapping[str, float]]
    supervisor_trials: tuple[int, ...]
    profile_points: tuple[tuple[int, Mapping[str, float]], ...]
    results: Mapping[str, EvalResult]  # candidate id -> its authoritative evaluation (for the table's details)
    models: tuple[ModelStats, ...] = ()  # per-model trials, commits, tokens and USD


def read(store: RunStore, *, max_details: int = 1000) -> ReportData:
    """Reads what the report needs; details of the last `max_details` trials (and of every commit) are kept."""
    rows = tuple(views.trial_rows(store))
    cls = views.evaluator_class(store)
    best_member = store.best_member()
    best = store.result(best_member.candidate_id) if best_member else None
    seed_ids = [r.candidate_id for r in rows if r.is_seed and r.candidate_id]
    seed = store.result(seed_ids[0]) if seed_ids else None
    caption = cls.score_caption(best.device if best else seed.device if seed else "")
    keep = {r.candidate_id for r in rows[-max_details:]} | {m.candidate_id for m in store.members()}
    results = {cid: res for cid in keep if cid and (res := store.result(cid)) is not None}
    profile = tuple((m.trial_id, cls.profile_summary(results[m.candidate_id])) for m in store.members()
                    if m.candidate_id in results)
    return ReportData(
        summary=views.summarize(store, caption=caption, now=time.time()), rows=rows, best=best, seed=seed,
        baselines=cls.baseline_metrics(best) if best else {},
        supervisor_trials=tuple(sorted({e["trial_id"] for e in store.events("supervisor") if e["trial_id"]})),
        profile_points=tuple(p for p in profile if p[1]), results=results,
        models=tuple(store.model_stats().values()))


def figures(data: ReportData) -> list[tuple[str, go.Figure, str]]:
    """(title, figure, a line saying how to read it) for every chart the run has data for."""
    caption = data.summary.caption
    baseline_scores = {name: geometric_mean(list(values.values())) for name, values in data.baselines.items()}
    out = [
        ("Score over trials", charts.score_chart(
            views.score_series(data.rows), data.rows, caption,
            baselines={k: v for k, v in baseline_scores.items() if v is not None},
            supervisor_trials=data.supervisor_trials),
         f"Higher is better; unit: {caption}. Each point is a trial, coloured by its label; the green step line is "
         "the committed best; dotted: the seed; dashed: baselines (geometric mean over the configurations); "
         "purple verticals: supervisor interventions. The strip below gives every trial's label."),
        ("Per configuration", charts.configs_chart(data.best, data.seed, caption, data.baselines),
         "The metric of the best version and of the seed on each configuration"
         + (f", as a ratio to {next(iter(data.baselines))}." if data.baselines else
            " (no baselines were measured on this device).")),
        ("Lineage", charts.lineage_chart(views.lineage_tree(data.rows)),
         "Committed versions (green) one generation above their parent, with every other child of each "
         "committed version; hover for the hypothesis."),
        ("Labels over time", charts.labels_chart(data.rows), "How the variation trials were judged, cumulatively."),
        ("Tokens and cost", charts.usage_chart(data.rows), "Model tokens by operator and US dollars, cumulative."),
        ("Trials per hour", charts.rate_chart(data.rows), "Throughput of the search over the run."),
    ]
    if data.profile_points:
        out.append(("Static profile", charts.profile_chart(data.profile_points),
                    "The target's profile summary of each committed version (for kernels: registers, spills, "
                    "shared memory, tensor-core instructions from the static compile report)."))
    return out


def build_report(run_dir: str | os.PathLike[str]) -> str:
    """The HTML text of a run's report (the store is opened read-only)."""
    store = open_store(run_dir)
    try:
        data = read(store)
        diffs = {t.id: t.diff for t in store.trials() if t.diff}
    finally:
        store.close()
    return render(data, diffs)


def open_store(run_dir: str | os.PathLike[str]) -> RunStore:
    """The run's store, read-only (the writer may be running)."""
    path = Path(run_dir) / RUN_DB
    if not path.is_file():
        raise RunStoreError(f"{str(run_dir)!r} is not a run directory (no {RUN_DB} in it)")
    return RunStore(path, readonly=True)


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Writes the report to `out` (default: report.html in the run directory); returns its path."""
    text = build_report(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see half a file
    return path


def render(data: ReportData, diffs: Mapping[int, str]) -> str:
    s = data.summary
    sections, blobs = [], []
    for i, (title, fig, how) in enumerate(figures(data)):
        fig.update_layout(title=None, margin={"t": 40})  # the section's heading names it
        blobs.append(f'<script type="application/json" id="figure-{i}">{_json_for_script(fig.to_json())}</script>')
        sections.append(f'<section><h2>{html.escape(title)}</h2><p class="how">{html.escape(how)}</p>'
                        f'<div class="chart" id="chart-{i}" data-figure="figure-{i}"></div></section>')
    sections.append(f"<section><h2>Trials</h2><p class='how'>Click a row for its diff and evaluation details.</p>"
                    f"{_trials_table(data, diffs)}</section>")
    title = f"evoagent report: {s.target} — {os.path.basename(s.run_dir.rstrip('/')) or s.run_dir}"
    return _TEMPLATE.format(
        title=html.escape(title), style=_STYLE, header=_header(data), sections="\n".join(sections),
        blobs="\n".join(blobs), plotly=plotly.offline.get_plotlyjs(), script=_SCRIPT)


def _json_for_script(text: str) -> str:
    """JSON safe inside a <script> element: '</' can never close it."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _header(data: ReportData) -> str:
    s = data.summary
    best = "no correct version yet" if s.best_score is None else (
        f"{format_score(s.best_score)} {s.caption}"
        + (f" — {s.seed_text()}" if s.ratio_to_seed is not None else "")
        + f" (version {s.best_id})")
    state = f"stopped: {s.stopped}" if s.stopped else f"running ({s.running} trial(s) in flight)" if s.running \
        else "running (between trials)" if s.started else "not running"
    facts = [("run", s.run_dir), ("target", s.target), ("state", state), ("best", best),
             ("trials", f"{s.trials}" + (f" of {s.budget_trials}" if s.budget_trials is not None else "")),
             ("commits", str(s.committed)),
             ("labels", ", ".join(f"{k} {v}" for k, v in sorted(s.labels.items())) or "none yet"),
             ("usage", f"{format_tokens(s.tokens)} tokens, ${s.cost_usd:.2f}"),
             *((f"model {m.model}", f"{plural(m.trials, 'trial')}, {plural(m.commits, 'commit')}, "
                f"{format_tokens(m.tokens)} tokens, "
                f"${m.cost_usd:.2f}" + (" + unknown" if m.unpriced_calls else "")) for m in data.models),
             ("elapsed", format_duration(s.elapsed_s)),
             ("written", time.strftime("%Y-%m-%d %H:%M:%S"))]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"<table class='facts'>{cells}</table>"


def _trials_table(data: ReportData, diffs: Mapping[int, str]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("trial", "parent", "label", "score", "× parent", "hypothesis", "reason"))
    body = []
    for r in data.rows:
        label = "committed" if r.committed else r.status
        ratio = r.parent_figure.short() if r.parent_figure is not None else ""
        body.append(
            f"<tr class='trial' data-trial='{r.id}'><td>{r.id}</td><td>{html.escape(r.parent_id or '')}</td>"
            f"<td><span class='label' style='background:{charts.LABEL_COLORS.get(label, '#7f7f7f')}'>"
            f"{html.escape(label)}</span></td><td class='num'>{format_score(r.score)}</td><td class='num'>{ratio}</td>"
            f"<td>{html.escape(r.hypothesis)}</td><td>{html.escape(r.reason)}</td></tr>"
            f"<tr class='detail' hidden><td colspan='7'>{_details(r, data.results, diffs)}</td></tr>")
    return f"<table class='trials'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _details(row: views.TrialRow, results: Mapping[str, EvalResult], diffs: Mapping[int, str]) -> str:
    parts = [f"<p>version {html.escape(row.candidate_id or '-')} by {html.escape(row.operator)}; "
             f"{format_tokens(row.tokens)} tokens, ${row.cost_usd:.4f}, wall {format_duration(row.wall_s)}"
             "</p>"]
    diff = diffs.get(row.id, "")
    parts.append(f"<h4>diff</h4><pre class='diff'>{_diff_html(diff)}</pre>" if diff else "<p>(no diff)</p>")
    result = results.get(row.candidate_id or "")
    if result is None:
        parts.append(f"<p>evaluation details: see <code>evoagent show RUN {row.id}</code></p>")
        return "".join(parts)
    stages = "".join(f"<tr><td>{html.escape(st.name)}</td><td>{html.escape(str(st.status))}</td>"
                     f"<td>{st.seconds:.2f} s</td><td>{html.escape(st.reason)}</td></tr>" for st in result.stages)
    parts.append(f"<h4>evaluation on {html.escape(result.device or '-')}</h4><table class='stages'><tr><th>stage</th>"
                 f"<th>label</th><th>time</th><th>reason</th></tr>{stages}</table>")
    for st in result.stages:  # a failed stage's log: for an evaluator's exception, its traceback (its frames first)
        if not st.ok and st.logs:
            parts.append(f"<h4>log of stage {html.escape(st.name)} ({html.escape(str(st.status))})</h4>"
                         f"<pre class='log'>{_cut(st.logs)}</pre>")
    if result.metrics:
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td class='num'>{format_score(value)}</td></tr>"
                       for name, value in result.metrics.items())
        parts.append(f"<table class='stages'><tr><th>configuration</th><th>metric</th></tr>{rows}</table>")
    details = {st.name: st.details for st in result.stages if st.details}
    if details:
        parts.append("<details><summary>stage details</summary><pre>"
                     f"{_cut(json.dumps(details, indent=1, default=str))}</pre></details>")
    return "".join(parts)


def _diff_html(diff: str) -> str:
    """A unified diff with added lines green and removed lines red (the file headers stay plain)."""
    lines = []
    for line in _cut(diff).split("\n"):
        kind = ("" if line.startswith(("+++", "---")) else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "hunk" if line.startswith("@@") else "")
        lines.append(f"<span class='{kind}'>{line}</span>" if kind else line)
    return "\n".join(lines)


def _cut(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"\n… ({len(text) - MAX_TEXT_CHARS} more characters)"
    return html.escape(text)


_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .3em; } h2 { font-size: 1.15em; margin: 1.4em 0 .2em; }
p.how { color: #555; margin: .2em 0 .4em; font-size: .92em; }
table.facts th { text-align: left; padding-right: 1.2em; color: #555; font-weight: 600; white-space: nowrap; }
table.trials { border-collapse: collapse; width: 100%; font-size: .88em; }
table.trials th, table.trials td { border-bottom: 1px solid #e4e4e4; padding: 3px 6px; text-align: left;
                                   vertical-align: top; }
table.trials th { white-space: nowrap; }
table.trials tr.trial { cursor: pointer; } table.trials tr.trial:hover { background: #f3f7fb; }
span.label { color: white; border-radius: 3px; padding: 0 5px; font-size: .9em; white-space: nowrap; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; max-height: 30em; }
pre.diff { white-space: pre; }
pre.diff span.add { background: #e6ffec; color: #116329; }
pre.diff span.del { background: #ffebe9; color: #82071e; }
pre.diff span.hunk { color: #6639ba; }
pre.log { white-space: pre-wrap; }
td.num { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
table.stages td, table.stages th { padding: 2px 8px; text-align: left; }
.chart { width: 100%; }
"""

_SCRIPT = """
(function () {
  const charts = Array.from(document.querySelectorAll('div.chart'));
  const drawn = charts.map(function (div) {
    const figure = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    const config = {displaylogo: false, responsive: true};
    return Plotly.newPlot(div, figure.data, figure.layout, config).then(function () { div.dataset.drawn = 'yes'; });
  });
  window.evoagentReport = {charts: charts.length, drawn: Promise.all(drawn)};
  document.querySelectorAll('tr.trial').forEach(function (row) {
    row.addEventListener('click', function () { row.nextElementSibling.hidden = !row.nextElementSibling.hidden; });
  });
})();
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<h1>{title}</h1>
{header}
{sections}
{blobs}
<script>{plotly}</script>
<script>{script}</script>
</body></html>
"""

