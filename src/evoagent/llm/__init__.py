"""Language-model backends behind one protocol: Anthropic (Claude), HeuristicPolicy (offline), ScriptedLLM (tests)."""

from __future__ import annotations

from .anthropic import Anthropic
from .base import LLM, LLMResponse
from .heuristic import HeuristicPolicy
from .models import Prices
from .scripted import ScriptedLLM

__all__ = ["LLM", "Anthropic", "HeuristicPolicy", "LLMResponse", "Prices", "ScriptedLLM"]
