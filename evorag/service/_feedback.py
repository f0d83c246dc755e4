"""Feedback on answers (thumbs up/down) from every interface, and what ranking does with it.

A feedback record names a logged answer or search by its id in the usage log (``Answer.answer_id``, the
``answer_id`` of the MCP ``ask`` result) or a question by its text, and is stored in the usage log with the acting
principal and its interface (``via``). The usage analysis counts it (evorag.tools.usage_analysis), and through it
the crawl proposals.

Ranking, per principal: a thumbs-down remembers the pages that answer cited. When the same principal later asks
a near-duplicate question (cosine >= ``NEAR_DUPLICATE`` between the query vectors), those pages move behind the
others in their results: demoted, never removed, and nobody else's results change. Preferred sources: in a
search that names no source, the sources a principal usually names are ranked a little higher for them
(``PreferredSources``).

Why a table in the usage log and not mem0: mem0's scoping by ``user_id`` would keep principals apart, but its
local Qdrant store admits one process per home (``evorag feedback`` in a terminal would fail while ``evorag ui``
runs), and it embeds with a model copy of its own. The usage log is shared by processes (SQLite WAL), and the
lookup reuses the search's own query vector: one indexed SQLite query per search, plus one dot product per
remembered thumbs-down only when the principal has any.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np

from evorag.errors import NotFoundError, UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.types import Hit
from evorag.tools.usage_log import MAX_COMMENT, FeedbackRecord

logger = logging.getLogger("evorag.usage")
# Measured with all-MiniLM-L6-v2 query vectors: "How do I exclude pages from a crawl?" vs "how can I exclude some
# pages when crawling" 0.95, vs "how can I skip some URLs when crawling" 0.71, vs "How do I include pages in a
# crawl?" 0.77, vs "how do I crawl localhost" 0.45. Demotion is for the same question asked again, so the bar is
# above the opposite question's 0.77.
NEAR_DUPLICATE = 0.8
# A source a principal always names gains 15% of score in their results that name no source: enough to settle
# near-ties between libraries, not to lift a weak match over a good one.
PREFERRED_SOURCE_WEIGHT = 0.15
_VECTOR_CACHE = 2048  # question vectors kept (a thumbs-down question is embedded once per process)
_VALUES = {"up": 1, "+1": 1, "1": 1, "down": -1, "-1": -1}


def parse_value(value: int | str) -> int:
    """+1 or -1 from ``up``/``down``/``+1``/``-1`` (or the ints); anything else is a UserError."""
    if isinstance(value, bool):
        raise UserError(f"feedback is up (+1) or down (-1), got {value!r}")
    parsed = value if isinstance(value, int) and value in (-1, 1) else _VALUES.get(str(value).strip().lower())
    if parsed is None:
        raise UserError(f"feedback is up (+1) or down (-1), got {value!r}")
    return parsed


class FeedbackService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def give(self, answer: int | str, value: int | str, *, comment: str = "", pages: list[str] | None = None,
             principal: Principal | None = None) -> FeedbackRecord:
        """Record ``principal``'s thumbs up (+1) or down (-1) on ``answer`` (reader role): an answer or search id
        from the usage log (int, or digits), else the question's text. An id that is unknown, or names another
        principal's answer, is a NotFoundError and nothing is stored; a question never logged is stored as given
        (with ``pages`` if any)."""
        who = self._ctx.check(principal, "feedback")
        vote = parse_value(value)
        comment = comment or ""
        if len(comment) > MAX_COMMENT:
            raise UserError(f"the comment is {len(comment)} characters; at most {MAX_COMMENT}")
        log = self._ctx.parts.usage_log
        text = str(answer if answer is not None else "").strip()
        if isinstance(answer, bool) or not text:
            raise UserError("name the answer: its answer_id, or the question's text")
        if isinstance(answer, int) or text.isdigit():
            logged = log.query(int(text))
            # Another principal's answer is not theirs to rate (ids are sequential: easy to guess), and saying
            # whether it exists would tell them what others asked.
            if logged is None or logged.principal != who.name:
                raise NotFoundError(f"no answer or search with id {text} of {who.name}",
                                    hint="the id is answer_id in an answer (`evorag ask --json`, the MCP ask tool)")
        else:
            logged = log.latest_query(who.name, text)
        record_id = log.record_feedback(
            via=who.via, principal=who.name, query=logged.query if logged else text, value=vote,
            comment=comment, pages=pages if pages is not None else (logged.pages if logged else ()),
            query_id=logged.id if logged else None)
        return next(r for r in reversed(log.feedback(principal=who.name)) if r.id == record_id)

    def given(self, *, principal: Principal | None = None) -> list[FeedbackRecord]:
        """The feedback ``principal`` gave, oldest first (reader role: one sees one's own)."""
        who = self._ctx.check(principal, "feedback")
        return self._ctx.parts.usage_log.feedback(principal=who.name)


class RejectedPages:
    """Demotes, in one principal's results, the pages that principal gave a thumbs-down for the same question."""

    def __init__(self, ctx: ServiceContext, *, threshold: float = NEAR_DUPLICATE) -> None:
        self._ctx = ctx
        self.threshold = threshold
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def demote(self, who: Principal, vector, hits: list[Hit]) -> list[Hit]:
        """``hits`` with the rejected pages moved behind the others (order kept within each group)."""
        if not hits:
            return hits
        try:
            rejected = self.rejected_pages(vector, self._ctx.parts.usage_log.feedback(principal=who.name, value=-1))
        except Exception as exc:  # noqa: BLE001 - like the usage log itself, feedback must never break a search
            logger.warning("feedback not applied to the ranking: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return hits
        if not rejected:
            return hits
        return [h for h in hits if h.chunk.url not in rejected] + [h for h in hits if h.chunk.url in rejected]

    def rejected_pages(self, vector, downs: list[FeedbackRecord]) -> set[str]:
        downs = [d for d in downs if d.pages]
        if not downs:
            return set()
        query = _unit(np.asarray(vector, dtype=np.float64))
        pages: set[str] = set()
        for record in downs:
            if float(self._vector(record.query) @ query) >= self.threshold:
                pages.update(record.pages)
        return pages

    def _vector(self, text: str) -> np.ndarray:
        with self._lock:
            cached = self._vectors.get(text)
            if cached is not None:
                self._vectors.move_to_end(text)
                return cached
        vector = _unit(np.asarray(self._ctx.parts.embedder.embed_query(text), dtype=np.float64))
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > _VECTOR_CACHE:
                self._vectors.popitem(last=False)
        return vector


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


class PreferredSources:
    """Ranks, in one principal's results of a search that names no source, the sources that principal usually
    names a little higher: someone who asks about Flask nine times in ten sees Flask's page first when a pytest
    page scores about the same. A hit's score is multiplied by ``1 + weight x`` its source's share of the sources
    the principal named in their newest ``last`` searches and questions; with no such history nothing changes.
    Read from the usage log (so every process of the home agrees), cached for ``ttl`` seconds per principal."""

    def __init__(self, ctx: ServiceContext, *, weight: float = PREFERRED_SOURCE_WEIGHT, last: int = 200,
                 ttl: float = 30.0) -> None:
        self._ctx = ctx
        self.weight = weight
        self.last = last
        self.ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, float]]] = {}
        self._lock = threading.Lock()

    def shares(self, who: Principal) -> dict[str, float]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(who.name)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        counts = self._ctx.parts.usage_log.named_sources(who.name, last=self.last)
        total = sum(counts.values())
        shares = {name: count / total for name, count in counts.items()} if total else {}
        with self._lock:
            self._cache[who.name] = (now, shares)
            if len(self._cache) > 1000:
                self._cache.clear()
        return shares

    def rerank(self, who: Principal, hits: list[Hit]) -> list[Hit]:
        if len({hit.chunk.source for hit in hits}) < 2:
            return hits
        try:
            shares = self.shares(who)
        except Exception as exc:  # noqa: BLE001 - like the usage log itself, preferences never break a search
            logger.warning("source preferences not applied: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return hits
        if not shares:
            return hits
        scored = [(hit.score * (1 + self.weight * shares.get(hit.chunk.source, 0.0)), index, hit)
                  for index, hit in enumerate(hits)]
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        return [Hit(chunk=hit.chunk, score=score) for score, _, hit in scored]
