"""Knowledge gaps: questions answered badly point at documentation the index lacks.

Low-scoring answers (grounding or relevance under a threshold, or answered without a model) are matched
with links that crawls saw but did not follow (other sites); each match is a crawl proposal. After
approval the pages are crawled and the same questions are asked again, so the report shows the metrics
before and after.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from evorag.teams._ports import Knowledge
from evorag.tools.evolution import EvolutionPipeline
from evorag.tools.sparse import tokenize
from evorag.tools.types import CrawlRequest

from evorag.errors import UserError


@dataclass(slots=True)
class GapProposal:
    url: str
    queries: list[str]
    score: float
    found_in: str  # the source whose pages link to it
    source_name: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class GapReport:
    proposals: list[GapProposal]
    crawled: list[dict] = field(default_factory=list)
    before: dict[str, dict] = field(default_factory=dict)
    after: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"proposals": [p.to_dict() for p in self.proposals], "crawled": self.crawled,
                "before": self.before, "after": self.after}


def _weak(row: dict, threshold: float) -> bool:
    values = [row.get("grounding"), row.get("ndcg")]
    # Answered without a model, or from no sources at all, counts as weak whatever the scores say.
    return row.get("model") in ("extractive", "none") or any(v is not None and v < threshold for v in values)


def _url_terms(url: str) -> set[str]:
    parts = urlsplit(url)
    return set(tokenize(" ".join(re.split(r"[/._-]+", f"{parts.hostname or ''} {parts.path}"))))


def find_knowledge_gaps(history: Sequence[dict], links: Sequence[tuple[str, str]], *, threshold: float = 0.5,
                        limit: int = 10) -> list[GapProposal]:
    """Match weak answers of ``history`` (answer reports) with ``links`` ((source, url) the crawls did not
    follow); the best ``limit`` matches are crawl proposals."""
    weak = {}
    for row in history:
        if row.get("query") and _weak(row, threshold):
            weak[row["query"]] = row
    if not weak:
        return []
    proposals: dict[str, GapProposal] = {}
    for query in weak:
        terms = set(tokenize(query))
        for found_in, url in links:
            overlap = len(terms & _url_terms(url))
            if overlap == 0:
                continue
            proposal = proposals.setdefault(url, GapProposal(url=url, queries=[], score=0.0, found_in=found_in))
            proposal.queries.append(query)
            proposal.score += overlap
    ranked = sorted(proposals.values(), key=lambda p: (-p.score, p.url))[:limit]
    for proposal in ranked:
        host = (urlsplit(proposal.url).hostname or "site").replace(".", "-")
        proposal.source_name = f"gap-{host}"[:64]
    return ranked


def _brief(answer) -> dict:
    metrics = answer.metrics or {}
    return {"grounding": metrics.get("grounding"), "ndcg": metrics.get("ndcg"), "overall": metrics.get("overall"),
            "model": answer.model}


async def fill_knowledge_gaps(knowledge: Knowledge, pipeline: EvolutionPipeline, proposals: list[GapProposal], *,
                              approver, max_pages: int, on_event: Callable[[object], None] | None = None) -> GapReport:
    """Ask each proposal's approval (MEDIUM risk), crawl the approved ones (at most ``max_pages`` each) and ask
    the weak questions again, before and after."""
    emit = on_event or (lambda event: None)
    report = GapReport(proposals=proposals)
    queries = sorted({q for p in proposals for q in p.queries})
    for query in queries:
        report.before[query] = _brief(await knowledge.aask(query))
    for proposal in proposals:
        approval = pipeline.approvals.create(
            tool=proposal.source_name, risk="MEDIUM",
            summary=f"Crawl {proposal.url} (up to {max_pages} pages) to answer: {'; '.join(proposal.queries)}",
            ttl=pipeline.approval_ttl,
        )
        decision = await approver(approval)
        if not decision.approved:
            report.crawled.append({"url": proposal.url, "status": "pending" if decision.approved is None else "rejected",
                                   "approval_id": approval.id})
            continue
        try:
            pipeline.approvals.apply(approval.id, decision)  # MEDIUM: whoever answered must be an approver
        except UserError as exc:
            report.crawled.append({"url": proposal.url, "status": "pending", "approval_id": approval.id,
                                   "reason": str(exc)})
            continue
        emit({"source": "gaps", "content": f"crawling {proposal.url}"})
        crawl = await knowledge.acrawl(CrawlRequest(url=proposal.url, source=proposal.source_name, max_pages=max_pages))
        report.crawled.append({"url": proposal.url, "status": "crawled", "source": proposal.source_name,
                               "pages": crawl.pages_indexed, "chunks": crawl.chunks_indexed})
        pipeline.audit.write("gap_crawled", url=proposal.url, source=proposal.source_name, pages=crawl.pages_indexed)
    if any(item["status"] == "crawled" for item in report.crawled):
        for query in queries:
            report.after[query] = _brief(await knowledge.aask(query))
    await asyncio.sleep(0)
    return report
