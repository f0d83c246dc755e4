"""Answers with numbered citations, from a language model or, when none answers, extractively."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from evorag.tools.answering._context import Passage
from evorag.tools.answering._extractive import extractive_answer
from evorag.tools.answering._prompt import build_messages
from evorag.tools.resilience import CircuitBreaker

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@dataclass(slots=True)
class Answer:
    question: str
    answer: str
    citations: list[dict]
    sources_used: list[dict]
    model: str
    fallback: bool = False
    note: str | None = None
    metrics: dict | None = None
    report_id: int | None = None
    invalid_citations: list[int] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    # The model's own answer when the grounding gate replaced it (kept for the record, not shown as the answer).
    rejected_model_answer: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def replace_with_extractive(self, passages: Sequence[Passage], reason: str) -> None:
        """Swap an answer that failed a quality check for the cited extractive one, saying why."""
        self.rejected_model_answer = self.answer
        text, self.citations, self.invalid_citations = resolve_citations(
            extractive_answer(self.question, passages), passages)
        self.answer = text
        self.note = f"{reason}: this answer quotes the top sources instead."
        self.model, self.fallback = "extractive", True


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in order of first appearance: ``[1]``, ``[2, 3]``, ``[2][3]``."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            seen.setdefault(int(part), None)
    return list(seen)


def resolve_citations(text: str, passages: Sequence[Passage]) -> tuple[str, list[dict], list[int]]:
    """Map [n] markers to passages; markers that point nowhere are removed from the text and reported."""
    valid = {passage.number: passage for passage in passages}
    numbers = cited_numbers(text)
    invalid = [n for n in numbers if n not in valid]
    if invalid:
        def keep_valid(match: re.Match) -> str:
            kept = [p.strip() for p in re.split(r"[,;]", match.group(1)) if int(p) in valid]
            return f"[{', '.join(kept)}]" if kept else ""

        text = _CITATION.sub(keep_valid, text)
    citations = [valid[n].citation() for n in numbers if n in valid]
    return text.strip(), citations, invalid


def _content(result) -> str:
    content = getattr(result, "content", result)
    return content if isinstance(content, str) else str(content)


class Answerer:
    """Calls the model client under a timeout and a circuit breaker; falls back to extraction."""

    def __init__(self, client, *, model_name: str, timeout: float = 60.0, breaker: CircuitBreaker | None = None):
        self.client = client
        self.model_name = model_name
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker("llm")

    async def answer(self, question: str, passages: Sequence[Passage]) -> Answer:
        started = time.perf_counter()
        sources = [passage.to_dict() for passage in passages]
        if not passages:
            return Answer(question, "The indexed documentation has nothing on this question.", [], [],
                          model="none", note="no sources matched the question")
        text, note, tokens, fallback = None, None, {}, True
        if self.client is None:
            note = "no language model is configured"
        elif not self.breaker.allow():
            note = f"the language model is unavailable ({self.breaker.last_error}); retrying later"
        else:
            try:
                text, tokens = await asyncio.wait_for(self._generate(question, passages), self.timeout)
                fallback = False
                self.breaker.record_success()
            except TimeoutError:
                note = f"the language model did not answer within {self.timeout:g}s"
                self.breaker.record_failure("timeout")
            except Exception as exc:  # noqa: BLE001 - any model failure means: answer without it
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                note = f"the language model failed: {reason}"
                self.breaker.record_failure(reason)
        if fallback or not text or not text.strip():
            if not fallback:
                note = "the language model returned an empty answer"
            text = extractive_answer(question, passages)
            fallback = True
        text, citations, invalid = resolve_citations(text, passages)
        if fallback:
            note = f"{note}: this answer quotes the top sources instead." if note else None
        return Answer(
            question=question,
            answer=text,
            citations=citations,
            sources_used=sources,
            model="extractive" if fallback else self.model_name,
            fallback=fallback,
            note=note,
            invalid_citations=invalid,
            timings_ms={"generate": round((time.perf_counter() - started) * 1000, 1)},
            tokens=tokens,
        )

    async def _generate(self, question: str, passages: Sequence[Passage]) -> tuple[str, dict]:
        from autogen_core.models import SystemMessage, UserMessage

        system, user = build_messages(question, passages)
        result = await self.client.create(
            [SystemMessage(content=system["content"]), UserMessage(content=user["content"], source="user")]
        )
        usage = getattr(result, "usage", None)
        tokens = {"prompt": getattr(usage, "prompt_tokens", 0), "completion": getattr(usage, "completion_tokens", 0)}
        return _content(result), tokens
