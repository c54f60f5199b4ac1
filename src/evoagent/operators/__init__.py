"""Variation operators: the agentic operator (with its tools and supervisor) and the classical baseline."""

from __future__ import annotations

from ..records import TrialOutcome, Usage
from .agentic import AgenticVariationOperator
from .base import Proposal, VariationContext, VariationOperator
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
