"""Proposals use cases: turn weak topics and missing features into proposals, put them in the approval queue,
and run the approved ones through the request queue (see evorag.tools.proposals for how they are made).

- ``make`` (operator role; also the daily periodic task ``proposals``): weak topics (default: the usage
  analysis's, else from the answer reports as `evorag gaps` finds them; or any ``WeakTopicSource``) are matched with every URL the catalog knows but has not indexed
  (sitemap and llms.txt entries past the page limit, excluded or depth-cut pages, links to other sites) and with
  the documentation URLs of installed packages; missing features (default: evolutions rejected and never
  deployed, and unanswered questions asking for a transformation no tool does) become evolution requests. Each new proposal gets a MEDIUM-risk approval request (approvers are
  told by the ``approval_pending`` webhook event) and raises the ``proposal`` event.
- Deciding its approval (``evorag approvals approve ID``, the UI, MCP) decides the proposal: approved, a crawl
  proposal queues a ``proposal-crawl`` request and a tool proposal an ``evolve`` request (origin ``proposal``,
  its evidence counted in the priority); rejected, it is never proposed again. A proposal's approval waits
  EVORAG_PROPOSAL_TIMEOUT (a week by default: proposals are made by a periodic task, at any hour) and then
  expires; an expired proposal was never decided, so a later analysis that still finds it proposes it again.
- ``heal_from_alerts`` (called with the new alerts each time the anomalies are notified: the periodic
  ``anomalies`` task, `evorag anomalies --notify`): a new alert of a stream a health check can explain becomes a
  ``heal`` proposal, the alert its evidence; approved, it queues a ``heal`` request whose description is written
  from the alert's numbers (never its text), and the proposal is done with the healing's outcome. The notify
  cursor hands each alert over once, and the store keeps one proposal per alert.
- ``proposal-crawl`` asks the evidence queries, crawls each proposed page into a source of its own
  (``proposal-ID-N``, that page only), asks them again and records the effect: the scores before and after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evorag.errors import EvoragError, UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._request_kinds import (
    PeriodicTask,
    RequestKind,
    TaskContext,
    register_periodic_task,
    register_request_kind,
)
from evorag.tools.approvals import ApprovalRequest
from evorag.tools.docs_urls import installed_documentation
from evorag.tools.proposals import (
    PROPOSALS_FILE,
    Candidate,
    MissingFeature,
    Proposal,
    ProposalStore,
    WeakTopic,
    WeakTopicSource,
    crawl_proposal,
    heal_proposal,
    missing_features_from_audit,
    tool_proposal,
    weak_topics_from_answers,
)
from evorag.tools.types import CrawlRequest

if TYPE_CHECKING:
    from evorag.service._facade import Evorag
    from evorag.tools.metric_anomalies import Alert
    from evorag.tools.usage_analysis import UsageAnalysis

CRAWL_KIND = "proposal-crawl"
USAGE_PERIOD = "30d"  # how far back the usage analysis looks for weak topics when proposals are made
_SCORES = ("overall", "grounding", "ndcg")


class ProposalsService:
    def __init__(self, ctx: ServiceContext, service: Evorag) -> None:
        self._ctx = ctx
        self._service = service
        self._lock = threading.Lock()
        self._store: ProposalStore | None = None

    def store(self) -> ProposalStore:
        with self._lock:
            if self._store is None:
                self._ctx.settings.ensure_home()
                self._store = ProposalStore(self._ctx.settings.home / PROPOSALS_FILE)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # Inputs
    def weak_topics(self, *, threshold: float = 0.5, last: int = 500, since: str = USAGE_PERIOD,
                    analysis: UsageAnalysis | None = None) -> list[WeakTopic]:
        """The default input of ``make``: the usage analysis's weak topics since ``since`` (every interface's
        searches and questions, clustered by meaning, worst first), or, when the usage log has none (a home from
        before it), weak topics from the newest ``last`` answer reports, grouped by shared terms. Questions asking
        for a transformation of given input are left out of the usage analysis's topics. ``analysis``:
        that usage analysis, when the caller has it already."""
        from evorag.tools.transformation_requests import transformation_ask

        weak_topics = (analysis.weak_topics if analysis is not None
                       else self._service.usage.weak_topics(since=since))
        # A question asking evorag to transform input it gives is a missing capability (``missing_features``),
        # not a gap in the docs; and its input is the user's data, which must not become a proposal's evidence.
        about_docs = [(weak, tuple(dict.fromkeys(item["query"] for item in weak.evidence
                                                 if transformation_ask(item["query"]) is None)))
                      for weak in weak_topics]
        from_usage = [WeakTopic(weak.topic.label if transformation_ask(weak.topic.label) is None else queries[0],
                                queries, weak.score) for weak, queries in about_docs if queries]
        if weak_topics:
            return from_usage
        return weak_topics_from_answers(self._ctx.parts.metrics.history(last=last, kind="answer"), threshold=threshold)

    def missing_features(self, *, last: int = 2000, since: str = USAGE_PERIOD,
                         analysis: UsageAnalysis | None = None) -> list[MissingFeature]:
        """Capabilities asked for by evolutions that were rejected and never deployed (newest ``last`` audit
        entries), and by questions since ``since`` that asked evorag to transform input they gave, that no tool
        does and the docs did not answer (the usage analysis's ``question`` capabilities). A question's request is
        its instruction only: the input it gave is the user's data, not part of an evolution request."""
        from evorag.tools.transformation_requests import transformation_ask

        features = missing_features_from_audit(self._ctx.parts.pipeline.audit.entries(last))
        analysis = analysis if analysis is not None else self._service.usage.analyse(since=since)
        for capability in analysis.missing_capabilities:
            if capability.kind != "question":
                continue
            asks = [transformation_ask(question) for question in capability.evidence]
            requests = tuple(dict.fromkeys(ask.instruction for ask in asks if ask is not None)) or (capability.label,)
            features.append(MissingFeature(capability.label, requests, capability.score))
        return sorted(features, key=lambda f: (-f.impact, f.label))

    def candidates(self, *, packages: bool = True) -> list[Candidate]:
        """Every URL known but not indexed: pages crawls found and did not visit, links to other sites, and
        (``packages``) the documentation of installed packages."""
        catalog = self._ctx.parts.catalog
        found = [Candidate(url, via, source, reason) for source, url, reason, via in catalog.unvisited_pages()]
        found += [Candidate(url, "outbound", source, "link to another site") for source, url in catalog.external_links()
                  if catalog.page(url) is None]
        if packages:
            found += [Candidate(url, "package docs", name, "installed package metadata")
                      for name, url in installed_documentation() if catalog.page(url) is None]
        return found

    # Use cases
    def make(self, *, topics: Sequence[WeakTopic] | WeakTopicSource | None = None,
             features: Sequence[MissingFeature] | None = None, threshold: float = 0.5, max_urls: int = 5,
             packages: bool = True, principal: Principal | None = None) -> list[Proposal]:
        """Analyse and submit: the new proposals (one made before, in any status, is not made again), each
        waiting for approval. Operator role."""
        with self._ctx.acting(principal, "gaps"):
            self._settle_pending()
            if callable(topics):
                topics = topics()
            # One usage analysis (it embeds every question of the period) when both inputs come from it.
            analysis = self._service.usage.analyse(since=USAGE_PERIOD) if topics is None and features is None else None
            topics = self.weak_topics(threshold=threshold, analysis=analysis) if topics is None else list(topics)
            features = self.missing_features(analysis=analysis) if features is None else list(features)
            candidates = self.candidates(packages=packages) if topics else []
            # A page a person refused to crawl is not proposed again, in any combination with other pages.
            refused = {url for p in self.store().proposals(status="rejected", limit=10_000) for url in p.urls}
            candidates = [c for c in candidates if c.url not in refused]
            # A page waiting in a proposal (or being crawled for one) is not proposed again in another set of pages:
            # a topic whose analysis found one more candidate since would otherwise be proposed twice.
            waiting = {url for status in ("proposed", "approved")
                       for p in self.store().proposals(status=status, limit=10_000) for url in p.urls}
            made = [p for p in (crawl_proposal(t, candidates, max_urls=max_urls) for t in topics)
                    if p is not None and not waiting.intersection(p.urls)]
            made += [tool_proposal(feature) for feature in features]
            made.sort(key=lambda p: (-p.score, p.kind, p.topic))
            return [self._submit(proposal) for proposal in made if self.store().add(proposal) is not None]

    def heal_from_alerts(self, alerts: Sequence[Alert], *, principal: Principal | None = None) -> list[Proposal]:
        """Heal proposals for new ``alerts`` (oldest first): one per stream a health check can explain, made from
        its first alert (the stream's later ones in this batch are evidence too); an alert proposed before is not
        proposed again. Operator role (``heal``)."""
        by_stream: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_stream.setdefault(alert.metric, []).append(alert)
        made = [p for p in (heal_proposal(stream) for stream in by_stream.values()) if p is not None]
        if not made:
            return []
        with self._ctx.acting(principal, "heal"):
            self._settle_pending()
            return [self._submit(proposal) for proposal in made if self.store().add(proposal) is not None]

    def _settle_pending(self) -> None:
        """Pending proposals take their approval's outcome (an expired one may then be made again)."""
        for proposal in self.store().proposals(status="proposed", limit=10_000):
            self._current(proposal)

    def _submit(self, proposal: Proposal) -> Proposal:
        pipeline = self._ctx.parts.pipeline
        what = (f"crawl {len(proposal.urls)} page(s): {proposal.target}" if proposal.kind == "crawl"
                else "queue a heal run for an anomaly" if proposal.kind == "heal"
                else "queue an evolution for a missing tool")
        approval = pipeline.approvals.create(
            tool=f"proposal-{proposal.id}", risk="MEDIUM", ttl=self._ctx.settings.proposal_timeout,
            summary=f"Proposal {proposal.id} ({proposal.topic}): {what}; asked: {'; '.join(proposal.evidence[:5])}"[:1000],
            diff=proposal.request, payload={"proposal": proposal.id})
        proposal.approval_id = approval.id
        self.store().save(proposal)
        pipeline.audit.write("approval_pending", approval_id=approval.id, proposal=proposal.id)  # tells approvers
        self._ctx.parts.webhooks.emit("proposal", {
            "proposal_id": proposal.id, "kind": proposal.kind, "topic": proposal.topic, "target": proposal.target,
            "evidence": proposal.evidence, "score": proposal.score, "approval_id": approval.id})
        return proposal

    def proposals(self, *, status: str | None = None, limit: int = 100,
                  principal: Principal | None = None) -> list[Proposal]:
        """The newest proposals (reader role)."""
        self._ctx.check(principal, "metrics")
        return [self._current(p) for p in self.store().proposals(status=status, limit=limit)]

    def proposal(self, proposal_id: str, *, principal: Principal | None = None) -> Proposal:
        """One proposal; NotFoundError for an unknown id (reader role)."""
        self._ctx.check(principal, "metrics")
        return self._current(self.store().get(proposal_id))

    def _current(self, proposal: Proposal) -> Proposal:
        """A proposed one whose approval was rejected elsewhere (or expired) is rejected (or expired); an approved one whose
        queued request failed or was cancelled has failed, and a tool proposal whose evolution ran is done."""
        if proposal.status == "proposed" and proposal.approval_id:
            approval = self._ctx.parts.pipeline.approvals.get(proposal.approval_id)
            if approval.status in ("rejected", "expired"):
                proposal.status, proposal.decided_by = approval.status, approval.decided_by
                proposal.decided_at = approval.expires_at if approval.status == "expired" else None
                self.store().save(proposal)
        elif proposal.status == "approved" and proposal.request_id:
            request = self._service.requests.store().get(proposal.request_id)
            if request is not None and request.status in ("failed", "cancelled"):
                proposal.status, proposal.error = "failed", f"request {request.id} {request.status}: {request.error}"
                self.store().save(proposal)
            elif request is not None and request.status == "done" and proposal.kind == "tool":
                proposal.status, proposal.effect = "done", {"evolution_request": request.id,
                                                            "result": request.result}
                self.store().save(proposal)
            elif request is not None and request.status == "done" and proposal.kind == "heal":
                result = request.result if isinstance(request.result, dict) else {}
                proposal.status, proposal.effect = "done", {"heal_request": request.id,
                                                            "healed": result.get("healed"), "result": request.result}
                self.store().save(proposal)
        return proposal

    def decided(self, approval: ApprovalRequest, who: Principal) -> None:
        """Called when an approval is decided (ApprovalsService): an approved proposal's work is queued."""
        proposal_id = approval.payload.get("proposal")
        if not proposal_id:
            return
        proposal = self.store().get(str(proposal_id))  # NotFoundError: its database was removed since
        if proposal.status != "proposed":
            return
        proposal.decided_by, proposal.decided_at = who.name, self._service.requests.clock.time()
        if approval.status != "approved":
            proposal.status = "rejected"
            self.store().save(proposal)
            return
        proposal.status = "approved"
        self.store().save(proposal)  # the queued run checks it is approved
        try:
            if proposal.kind == "crawl":
                request = self._service.requests.submit(
                    CRAWL_KIND, {"proposal": proposal.id}, origin="proposal", evidence=len(proposal.evidence),
                    key=f"proposal:{proposal.id}", principal=who)
            elif proposal.kind == "heal":
                request = self._service.requests.submit("heal", {"description": proposal.request}, origin="proposal",
                                                        evidence=len(proposal.evidence), principal=who)
            else:
                request = self._service.requests.submit("evolve", {"request": proposal.request}, origin="proposal",
                                                        evidence=len(proposal.evidence), principal=who)
        except EvoragError as exc:  # approved, but its work could not be queued: said, and kept
            proposal.status, proposal.error = "failed", f"could not be queued: {exc.message}"
            self.store().save(proposal)
            raise
        proposal.request_id = request.id
        self.store().save(proposal)

    # Running an approved crawl proposal
    async def run_crawl(self, task: TaskContext) -> dict:
        store = self.store()
        proposal = await asyncio.to_thread(store.get, str(task.payload["proposal"]))
        if proposal.status != "approved":
            raise UserError(f"proposal {proposal.id} is {proposal.status}, not approved: nothing to crawl")
        knowledge = task.service.knowledge
        task.progress({"stage": "asking the evidence queries (before)"})
        before = {query: await self._scores(query, task.principal) for query in proposal.evidence}
        crawled = []
        for number, url in enumerate(proposal.urls, start=1):
            source = f"proposal-{proposal.id}-{number}"
            task.progress({"stage": f"crawling {url}"})
            try:
                plan = await asyncio.to_thread(knowledge.plan_crawl,
                                               CrawlRequest(url=url, source=source, max_pages=1, max_depth=0))
                report = await knowledge.run_crawl(plan, lambda state: task.progress(dataclasses.asdict(state)))
            except EvoragError as exc:
                crawled.append({"url": url, "source": source, "status": "failed", "reason": exc.message})
                continue
            crawled.append({"url": url, "source": source, "status": "crawled", "pages": report.pages_indexed,
                            "chunks": report.chunks_indexed})
        task.progress({"stage": "asking the evidence queries (after)"})
        after = {query: await self._scores(query, task.principal) for query in proposal.evidence}
        proposal.effect = {"crawled": crawled, "before": before, "after": after,
                           "mean_before": _means(before), "mean_after": _means(after)}
        ok = any(item["status"] == "crawled" and item["pages"] for item in crawled)
        proposal.status = "done" if ok else "failed"
        proposal.error = None if ok else "no proposed page could be crawled"
        await asyncio.to_thread(store.save, proposal)
        self._ctx.parts.pipeline.audit.write("proposal_done", proposal=proposal.id, status=proposal.status,
                                             mean_before=proposal.effect["mean_before"],
                                             mean_after=proposal.effect["mean_after"])
        return {"proposal": proposal.id, "status": proposal.status, **proposal.effect}

    async def _scores(self, query: str, principal: Principal) -> dict:
        answer = await self._service.knowledge.aask(query, principal=principal)
        metrics = answer.metrics or {}
        return {**{name: metrics.get(name) for name in _SCORES}, "model": answer.model,
                "citations": len(answer.citations)}


def _means(scores: dict[str, dict]) -> dict[str, float]:
    """Mean of each score over the queries; a question with no score (nothing retrieved) counts as 0."""
    if not scores:
        return {}
    return {name: round(sum(float(s.get(name) or 0.0) for s in scores.values()) / len(scores), 4) for name in _SCORES}


def _check_crawl(service: Evorag, payload: dict) -> dict:
    proposal = service.proposals.store().get(str(payload.get("proposal") or ""))
    if proposal.kind != "crawl":
        raise UserError(f"proposal {proposal.id} is a {proposal.kind} proposal, not a crawl")
    return {"proposal": proposal.id}


async def _run_crawl(task: TaskContext) -> Any:
    return await task.service.proposals.run_crawl(task)


async def _propose(task: TaskContext) -> dict:
    """The learning loop's daily step: analyse the usage, and put what it suggests in front of the approvers."""
    task.progress({"stage": "analysing the usage and making proposals"})
    made = await asyncio.to_thread(task.service.proposals.make, principal=task.principal)
    return {"proposals": [{"id": p.id, "kind": p.kind, "topic": p.topic, "target": p.target} for p in made]}


register_periodic_task(PeriodicTask("proposals", _propose, every="daily", operation="gaps"))
register_request_kind(RequestKind(CRAWL_KIND, _run_crawl, "crawl", writes=True, prepare=_check_crawl,
                                  describe=lambda payload: f"crawl the pages of proposal {payload.get('proposal')}"))
