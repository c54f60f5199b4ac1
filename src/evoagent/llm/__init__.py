"""Language-model backends behind one protocol: Anthropic (Claude), OpenAICompatible, Ensemble, HeuristicPolicy
(offline), ScriptedLLM (tests)."""

from __future__ import annotations

from .anthropic import Anthropic
from .base import LLM, LLMResponse
from .ensemble import Ensemble, Member
from .heuristic import HeuristicPolicy
from .models import Prices
from .openai_compat import OpenAICompatible
from .scripted import ScriptedLLM

__all__ = ["LLM", "Anthropic", "Ensemble", "HeuristicPolicy", "LLMResponse", "Member", "OpenAICompatible", "Prices",
           "ScriptedLLM"]
