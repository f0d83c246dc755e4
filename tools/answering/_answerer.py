"""Answers with numbered citations: extractive by default, from a language model when one is configured and
its answer passes the checks (real citations, no prompt markup; the grounding gate follows in the service)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from evorag.tools.answering._citations import resolve_citations
from evorag.tools.answering._context import Passage
from evorag.tools.answering._extractive import (
    NOTHING_INDEXED,
    ExtractiveAnswer,
    ExtractiveAnswerer,
)
from evorag.tools.answering._model_check import model_answer_problem
from evorag.tools.answering._prompt import build_messages
from evorag.tools.resilience import CircuitBreaker

FALLBACK_NOTE = "this answer quotes the top sources instead."


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
    # The answer's id in the usage log: what feedback (thumbs up/down) names. None when it could not be logged.
    answer_id: int | None = None
    invalid_citations: list[int] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    # The model's own answer when a check replaced it (kept for the record, not shown as the answer).
    rejected_model_answer: str | None = None
    # True when the sources do not answer the question: ``answer`` says so and names ``closest_pages``.
    not_found: bool = False
    closest_pages: list[dict] = field(default_factory=list)
    # The extractive answer computed alongside a model's, ready to replace it (not part of the record).
    extractive: ExtractiveAnswer | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extractive")
        return data

    def replace_with_extractive(self, passages: Sequence[Passage], reason: str) -> None:
        """Swap a model answer that failed a check for the extractive one (or "not found"), saying why."""
        extractive = self.extractive or ExtractiveAnswerer().answer(self.question, passages)
        self.rejected_model_answer = self.answer or None
        self.answer, self.citations, _ = resolve_citations(extractive.text, passages)
        self.not_found, self.closest_pages = not extractive.found, extractive.closest
        self.note = f"{reason}: " + (FALLBACK_NOTE if extractive.found else extractive.reason)
        self.model, self.fallback = "extractive", True


def _content(result) -> str:
    content = getattr(result, "content", result)
    return content if isinstance(content, str) else str(content)


class Answerer:
    """Answers from the passages: extractively, and with the model client (under a timeout and a circuit breaker)
    when there is one. A model answer that fails, times out, cites no real source or echoes its prompt is
    replaced by the extractive answer, with a note saying why; the model's text stays in the record."""

    def __init__(self, client, *, model_name: str, timeout: float = 60.0, breaker: CircuitBreaker | None = None,
                 extractive: ExtractiveAnswerer | None = None):
        self.client = client
        self.model_name = model_name
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker("llm")
        self.extractive = extractive or ExtractiveAnswerer()

    async def answer(self, question: str, passages: Sequence[Passage]) -> Answer:
        started = time.perf_counter()
        sources = [passage.to_dict() for passage in passages]
        if not passages:
            return Answer(question, NOTHING_INDEXED, [], [], model="none", note="no sources matched the question",
                          not_found=True)
        # Embedding the candidate sentences is CPU work: off the event loop, like retrieval.
        extractive = await asyncio.to_thread(self.extractive.answer, question, passages)
        timings = {"extract": round((time.perf_counter() - started) * 1000, 1)}
        text, note, tokens = None, None, {}
        if self.client is None:
            note = "no language model is configured"
        elif not self.breaker.allow():
            note = f"the language model is unavailable ({self.breaker.last_error}); retrying later"
        else:
            mark = time.perf_counter()
            try:
                text, tokens = await asyncio.wait_for(self._generate(question, passages), self.timeout)
                self.breaker.record_success()
            except TimeoutError:
                note = f"the language model did not answer within {self.timeout:g}s"
                self.breaker.record_failure("timeout")
            except Exception as exc:  # noqa: BLE001 - any model failure means: answer without it
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                note = f"the language model failed: {reason}"
                self.breaker.record_failure(reason)
            timings["generate"] = round((time.perf_counter() - mark) * 1000, 1)
        answer = Answer(question=question, answer=text or "", citations=[], sources_used=sources,
                        model=self.model_name, timings_ms=timings, tokens=tokens, extractive=extractive)
        if text is not None and not text.strip():
            text, note = None, "the language model returned an empty answer"
        if text is None:
            answer.answer = ""
            answer.replace_with_extractive(passages, note or "no answer")
            return answer
        problem = model_answer_problem(text, passages)
        answer.answer, answer.citations, answer.invalid_citations = resolve_citations(text, passages)
        if problem is not None:
            answer.answer = text
            answer.replace_with_extractive(passages, f"the {self.model_name} answer was refused: {problem}")
        return answer

    async def _generate(self, question: str, passages: Sequence[Passage]) -> tuple[str, dict]:
        from autogen_core.models import SystemMessage, UserMessage

        system, user = build_messages(question, passages)
        result = await self.client.create(
            [SystemMessage(content=system["content"]), UserMessage(content=user["content"], source="user")]
        )
        usage = getattr(result, "usage", None)
        tokens = {"prompt": getattr(usage, "prompt_tokens", 0), "completion": getattr(usage, "completion_tokens", 0)}
        return _content(result), tokens
