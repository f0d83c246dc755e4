"""Usage: what every interface asked and did (the usage log, evorag.tools.usage_log), and its analysis (topics,
weak topics, missing capabilities: evorag.tools.usage_analysis).

Recording happens here, in the service, so the CLI, the MCP server, the UI and Python callers are all logged the
same way; the interface is the acting principal's ``via``. Recording never breaks what it records: a log that
cannot be written (a full disk, a corrupt file) is a warning in the log, and the search goes on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.changes import parse_since

if TYPE_CHECKING:
    # Imported where used: recording (every search) needs neither the analysis nor numpy.
    from evorag.tools.usage_analysis import UsageAnalysis, WeakTopic

logger = logging.getLogger("evorag.usage")

DEFAULT_SINCE = "7d"
MAX_QUERIES = 20_000  # the newest queries analysed (embedding is the cost: ~20k short texts is about a minute)


def cited_pages(answer) -> list[str]:
    """The pages an answer cited, else (no citation) the pages it was given."""
    cited = [c.get("url") for c in answer.citations or () if isinstance(c, dict) and c.get("url")]
    return cited or [s.get("url") for s in answer.sources_used or () if isinstance(s, dict) and s.get("url")]


def _error_text(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class UsageRecorder:
    """Writes the usage log for the use cases; every method swallows (and logs) its own failures."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def _write(self, what: str, write):
        """What ``write`` returned (a record's id), or None when the log could not be written."""
        try:
            return write(self._ctx.parts.usage_log)
        except Exception as exc:  # noqa: BLE001 - the log must never break a search, an answer or a tool call
            logger.warning("could not write the usage log (%s): %s", what, _error_text(exc))
            return None

    def search(self, who: Principal, query: str, *, source: str | None, hits: list | None, started: float,
               error: BaseException | None = None) -> int | None:
        """Log a search; its id in the log (what feedback names), or None when it could not be logged."""
        top = max((float(h.score) for h in hits), default=None) if hits else None
        return self._write("search", lambda log: log.record_query(
            kind="search", via=who.via, principal=who.name, query=query, source=source,
            hits=len(hits) if hits is not None else None, top_score=top, not_found=hits is not None and not hits,
            latency_ms=(time.perf_counter() - started) * 1000, error=_error_text(error) if error else None,
            pages=[h.chunk.url for h in hits or ()]))

    def ask(self, who: Principal, question: str, *, source: str | None, answer=None, top_score: float | None,
            started: float, error: BaseException | None = None) -> int | None:
        """Log an answer; its id in the log (the answer id feedback names), or None when it could not be logged."""
        metrics = (answer.metrics or {}) if answer is not None else {}

        def score(name: str) -> float | None:
            value = metrics.get(name)
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

        return self._write("ask", lambda log: log.record_query(
            kind="ask", via=who.via, principal=who.name, query=question, source=source,
            hits=len(answer.sources_used) if answer is not None else None, top_score=top_score,
            grounding=score("grounding"), overall=score("overall"),
            not_found=bool(answer is not None and answer.not_found), extractive=bool(answer and answer.fallback),
            latency_ms=(time.perf_counter() - started) * 1000, error=_error_text(error) if error else None,
            pages=cited_pages(answer) if answer is not None else ()))

    def tool_call(self, who: Principal, tool: str, *, started: float, error: BaseException | None = None) -> None:
        self._write("tool call", lambda log: log.record_tool_call(
            via=who.via, principal=who.name, tool=tool, ok=error is None,
            latency_ms=(time.perf_counter() - started) * 1000, error=_error_text(error) if error else None))

    def evolution(self, who: Principal, request: str, *, outcome=None, started: float,
                  error: BaseException | None = None) -> None:
        self._write("evolution", lambda log: log.record_evolution(
            via=who.via, principal=who.name, request=request,
            # A refused request (a blocked URL, a spent quota) is the caller's problem, not a missing capability.
            outcome=outcome.status if outcome is not None else "refused" if isinstance(error, UserError) else "error",
            gate=getattr(outcome, "gate", None), reason=getattr(outcome, "reason", None) or (
                _error_text(error) if error else None),
            tool=getattr(outcome, "tool", None), latency_ms=(time.perf_counter() - started) * 1000))


@dataclass(slots=True)
class UsageReport:
    """The analysis of a period, and the HTML file written when one was asked for."""

    analysis: UsageAnalysis
    html: Path | None = None

    def to_dict(self) -> dict:
        return {**self.analysis.to_dict(), "html": str(self.html) if self.html else None}


class UsageService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def analyse(self, *, since: str | float | None = None, until: float | None = None,
                principal: Principal | None = None) -> UsageAnalysis:
        """Topics, weak topics and missing capabilities of the usage since ``since`` (a date, a time or a span
        such as ``7d``; default 7 days) until now (reader role). Embeds the distinct queries (blocking)."""
        from evorag.tools.usage_analysis import analyse  # see TYPE_CHECKING above

        self._ctx.check(principal, "metrics")
        # The period is [start, end): "until now" includes what was recorded at this very instant.
        end = math.nextafter(self._ctx.parts.clock(), math.inf) if until is None else float(until)
        start = parse_since(since or DEFAULT_SINCE, now=end) if not isinstance(since, int | float) else float(since)
        if start >= end:
            raise UserError(f"--since must be in the past, got {since!r}", hint="e.g. 7d, 24h or 2024-05-01")
        log = self._ctx.parts.usage_log
        queries = log.queries(since=start - (end - start), until=end)[-MAX_QUERIES:]
        calls, evolutions = log.tool_calls(since=start, until=end), log.evolutions(since=start, until=end)
        # Nothing to cluster: the embedding model need not load.
        embed = self._ctx.parts.embedder.embed_documents if queries or evolutions else _no_embedding
        # Thumbs up/down (evorag.service._feedback) count as evidence for or against the topics they rate.
        return analyse(queries, calls, evolutions, embed=embed, since=start, until=end,
                       feedback=log.feedback(since=start, until=end), tools=self._tools_for(queries, start))

    def _tools_for(self, queries: list, since: float) -> list[tuple[str, str]]:
        """The deployed tools' names and descriptions, read (opening the tool registry) only when some question
        of the period asked for a transformation the docs did not answer."""
        from evorag.tools.transformation_requests import transformation_ask

        if not any(q.ts >= since and q.kind == "ask" and q.not_found and transformation_ask(q.query) is not None
                   for q in queries):
            return []
        return [(manifest.name, manifest.description) for manifest in self._ctx.parts.registry.tools()]

    def report(self, *, since: str | float | None = None, html: Path | None = None,
               principal: Principal | None = None) -> UsageReport:
        """``analyse``, and with ``html`` a self-contained HTML report written to that file."""
        analysis = self.analyse(since=since, principal=principal)
        if html is not None:
            from evorag.tools.usage_html import write_usage_html

            write_usage_html(analysis, Path(html))
        return UsageReport(analysis, Path(html) if html is not None else None)

    def weak_topics(self, *, since: str | float | None = None, principal: Principal | None = None) -> list[WeakTopic]:
        """The weak topics of the period, worst (volume x impact) first, each with its queries as evidence: what
        crawl proposals start from (reader role)."""
        return list(self.analyse(since=since, principal=principal).weak_topics)


def _no_embedding(texts):
    raise AssertionError("analyse embeds nothing when there are no queries and no evolution requests")
