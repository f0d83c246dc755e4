"""Answering: context assembly, the prompt, the model call with its extractive fallback, citations."""

from evorag.tools.answering._answerer import Answer, Answerer, cited_numbers, resolve_citations
from evorag.tools.answering._context import Passage, approx_tokens, assemble_context
from evorag.tools.answering._extractive import extractive_answer
from evorag.tools.answering._prompt import SYSTEM_PROMPT, build_messages, render_sources

__all__ = [
    "SYSTEM_PROMPT",
    "Answer",
    "Answerer",
    "Passage",
    "approx_tokens",
    "assemble_context",
    "build_messages",
    "cited_numbers",
    "extractive_answer",
    "render_sources",
    "resolve_citations",
]
