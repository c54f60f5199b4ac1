"""How a finished submission reads for the agent and its supervisor: its Δ vs the version it started from."""

from __future__ import annotations

from ..candidate import Candidate
from ..formatting import config_deltas, format_delta
from ..records import TrialOutcome
from ..result import EvalResult, Status, format_score

Version = tuple[Candidate, EvalResult | None]


def outcome_text(outcome: TrialOutcome, submitted: Version | None, start: Version | None) -> str:
    """'version abc: ok, score 5, Δ +2.10% vs its starting version def (per configuration: ...); committed ...'."""
    reason = f"; {outcome.reason}" if outcome.reason else ""
    if outcome.status is not Status.OK:
        return f"version {outcome.candidate_id or '-'}: {outcome.status.value}{reason}"
    start_result = start[1] if start is not None else None
    start_score = start_result.score if start_result is not None else None
    delta = format_delta(outcome.score, start_score)
    mine = submitted[1] if submitted is not None else None
    per = config_deltas(mine.metrics, start_result.metrics) if mine is not None and start_result is not None else ""
    if not outcome.committed:
        verdict = "not committed"
    elif outcome.score is not None and start_score is not None and outcome.score > start_score:
        verdict = "committed: an improvement, now in the lineage"
    else:
        verdict = "committed within the commit tolerance (not an improvement)"
    start_id = start[0].id if start is not None else outcome.parent_id or "-"
    return (f"version {outcome.candidate_id}: ok, score {format_score(outcome.score)}, Δ {delta} vs its starting "
            f"version {start_id}" + (f" (per configuration: {per})" if per else "") + f"; {verdict}{reason}")


def improved(outcome: TrialOutcome, start_score: float | None) -> bool:
    """Whether a trial raised the score: committed and above the score of the version it started from."""
    return (outcome.committed and outcome.score is not None
            and (start_score is None or outcome.score > start_score))
