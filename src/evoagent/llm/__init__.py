"""Language-model backends behind one protocol: Anthropic (Claude), HeuristicPolicy (offline), ScriptedLLM (tests)."""

from __future__ import annotations

from .anthropic import Anthropic, Prices
from .base import LLM, LLMResponse
from .heuristic import HeuristicPolicy
from .scripted import ScriptedLLM

__all__ = ["LLM", "Anthropic", "HeuristicPolicy", "LLMResponse", "Prices", "ScriptedLLM"]
