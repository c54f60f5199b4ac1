"""The knowledge base: markdown documents ranked for a query, their recipes, and lessons from trials."""

from __future__ import annotations

from .base import BUILTIN_DIR, Document, Hit, KnowledgeBase, KnowledgeError, Lesson, Section
from .recipes import Edit, MarkedParam, Recipe, RecipeError, marked_params, param_recipe, parse_recipe

__all__ = [
    "BUILTIN_DIR",
    "Document",
    "Edit",
    "Hit",
    "KnowledgeBase",
    "KnowledgeError",
    "Lesson",
    "MarkedParam",
    "Recipe",
    "RecipeError",
    "Section",
    "marked_params",
    "param_recipe",
    "parse_recipe",
]
