"""Variation operators: the agentic operator (with its tools and supervisor) and the classical baseline."""

from __future__ import annotations

from .agentic import AgenticVariationOperator
from .base import Proposal, TrialOutcome, Usage, VariationContext, VariationOperator
from .mutation import ParameterMutation
from .supervisor import Supervisor

__all__ = [
    "AgenticVariationOperator",
    "ParameterMutation",
    "Proposal",
    "Supervisor",
    "TrialOutcome",
    "Usage",
    "VariationContext",
    "VariationOperator",
]
