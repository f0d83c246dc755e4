"""What a team run's events say, for every interface that shows them (terminal, MCP progress, chat steps).

Team callbacks receive AutoGen messages (``.source`` / ``.content``) and plain dicts from the flows' own
steps (``{"source": ..., "content": ...}``). The text is untrusted (models and pages wrote it): interfaces
escape or strip it where they render it.
"""

from __future__ import annotations

import re

SKIP_SOURCES = frozenset({"user"})  # the task itself, which the interface already shows as the request
_VERDICT = re.compile(r"^[A-Z][A-Z_]{2,}\b")


def event_parts(event: object) -> tuple[object, object]:
    """(source, content) of any team event; either may be None."""
    if isinstance(event, dict):
        return event.get("source"), event.get("content")
    return getattr(event, "source", None), getattr(event, "content", None)


def event_text(event: object) -> tuple[str, str] | None:
    """(speaker, text) of an event worth showing; None for events without a speaker, with non-text content
    (tool calls, the final TaskResult) or from the person who asked."""
    source, content = event_parts(event)
    if not source or not isinstance(content, str) or not content.strip() or source in SKIP_SOURCES:
        return None
    return str(source), content


def event_record(event: object) -> dict | None:
    """A transcript entry ``{"source", "content"}`` for any event with a speaker and something said (content
    that is not text, e.g. tool calls, as its ``str``); None for the rest (the final TaskResult, a request for
    input with nothing in it)."""
    source, content = event_parts(event)
    if source is None or content is None or content == "":
        return None
    return {"source": str(source), "content": content if isinstance(content, str) else str(content)}


def first_line(text: str, limit: int = 160) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0][:limit] if stripped else ""


def event_summary(event: object, limit: int = 500) -> str:
    """One line for any event, also those ``event_text`` skips (progress notifications count every event):
    ``speaker: text``, else the event's type."""
    source, content = event_parts(event)
    text = content if isinstance(content, str) else type(event).__name__
    return (f"{source}: {text}" if source else text)[:limit]


def step_title(source: str, content: str) -> str:
    """A heading for an agent's message: who speaks and, when the message starts with a verdict word
    (``TESTS: PASS``, ``DEPLOYED ...``), that first line."""
    first = first_line(content, 10_000)
    if _VERDICT.match(first):
        verdict = first if len(first) <= 70 else first[:69] + "…"
        return f"{source} · {verdict}"
    return source
