"""evoagent: agentic evolutionary search over code, with an autonomous coding agent as the variation operator."""

from __future__ import annotations

from . import llm
from .candidate import Candidate
from .config import Budget, Options
from .engine import BestVersion, EvolveResult, evolve, iterate
from .errors import (
    BudgetExhausted,
    ClusterError,
    ClusterLost,
    ConfigError,
    EvaluatorError,
    EvoagentError,
    IncompatibleRunError,
    KernelSourceError,
    LLMError,
    RunStoreError,
    SandboxError,
)
from .evaluator import Evaluator, FunctionEvaluator
from .executors import Executor, ExecutorConfig
from .knowledge import KnowledgeBase
from .lineage import Lineage
from .niches import Islands, MapElites
from .operators.agentic import AgenticVariationOperator
from .operators.base import Proposal, VariationContext, VariationOperator
from .operators.mutation import ParameterMutation
from .operators.supervisor import Supervisor
from .population import Chain, MatchOrImprove, Population, Tree
from .records import Descriptors, Event, Member, ModelStats, NicheView, Trial, TrialOutcome, Usage
from .result import EvalResult, StageResult, Status
from .run import Run
from .sandbox import Sandbox, SandboxConfig, SandboxResult
from .store import RunStore

__version__ = "0.1.0"

__all__ = [
    "AgenticVariationOperator",
    "BestVersion",
    "Budget",
    "BudgetExhausted",
    "Candidate",
    "Chain",
    "ClusterError",
    "ClusterLost",
    "ConfigError",
    "Descriptors",
    "EvalResult",
    "Evaluator",
    "EvaluatorError",
    "Event",
    "EvoagentError",
    "EvolveResult",
    "Executor",
    "ExecutorConfig",
    "FunctionEvaluator",
    "IncompatibleRunError",
    "Islands",
    "KernelSourceError",
    "KnowledgeBase",
    "LLMError",
    "Lineage",
    "MapElites",
    "MatchOrImprove",
    "Member",
    "ModelStats",
    "NicheView",
    "Options",
    "ParameterMutation",
    "Population",
    "Proposal",
    "Run",
    "RunStore",
    "RunStoreError",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxResult",
    "StageResult",
    "Status",
    "Supervisor",
    "Tree",
    "Trial",
    "TrialOutcome",
    "Usage",
    "VariationContext",
    "VariationOperator",
    "evolve",
    "iterate",
    "llm",
]
