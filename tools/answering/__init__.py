"""Answering: context assembly, the prompt, extractive answers, the model call and its checks, citations."""

from evorag.tools.answering._answerer import Answer, Answerer
from evorag.tools.answering._citations import cited_numbers, resolve_citations
from evorag.tools.answering._context import Passage, approx_tokens, assemble_context
from evorag.tools.answering._extractive import (
    NOT_FOUND,
    ExtractiveAnswer,
    ExtractiveAnswerer,
    ExtractiveConfig,
    extractive_answer,
)
from evorag.tools.answering._model_check import model_answer_problem
from evorag.tools.answering._prompt import SYSTEM_PROMPT, build_messages, render_sources

__all__ = [
    "NOT_FOUND",
    "SYSTEM_PROMPT",
    "Answer",
    "Answerer",
    "ExtractiveAnswer",
    "ExtractiveAnswerer",
    "ExtractiveConfig",
    "Passage",
    "approx_tokens",
    "assemble_context",
    "build_messages",
    "cited_numbers",
    "extractive_answer",
    "model_answer_problem",
    "render_sources",
    "resolve_citations",
]
