"""Knowledge use cases: crawl (as jobs), search, ask, the sources, and repairing the index.

Sources are named by selectors (``evorag.tools.versions``): ``NAME``, ``NAME@X``, ``NAME@latest`` or a range such
as ``NAME@>=2,<3``; each resolves to one version of the source, or a NotFoundError naming those that exist.

This is also the ``Knowledge`` port the teams use (``acrawl``, ``search``, ``aask``) and their ``IndexHealth``
port (``half_written_pages``, ``repair_index``): a team crawls and asks through the same checks as anyone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evorag.errors import NotFoundError, UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.service._feedback import PreferredSources, RejectedPages
from evorag.service._inputs import default_source_name, require_text, validate_source_name
from evorag.service._jobs import CrawlJob, CrawlJobs
from evorag.service._requests import RequestsService
from evorag.service._usage import UsageRecorder
from evorag.tools.catalog import SourceRecord, VersionRecord
from evorag.tools.costs import current_operation
from evorag.tools.search import SearchOptions
from evorag.tools.types import Chunk, CrawlRequest, Hit
from evorag.tools.url_guard import check_url
from evorag.tools.versions import (
    describe_versions,
    parse_selector,
    range_specifiers,
    resolve_version,
    source_label,
    validate_version_label,
)

if TYPE_CHECKING:
    # Imported where used: a search loads neither the crawler (httpx, lxml) nor the answerer (issue 14).
    from evorag.tools.answering import Answer
    from evorag.tools.crawl_job import CrawlReport, ProgressCallback
    from evorag.tools.crawling import CrawlOptions
    from evorag.tools.indexer import Indexer

MAX_SEARCH_LIMIT = 1000
# What a source holds (its ``kind`` option; crawled sites have none), as messages name it.
_KINDS = {"site": "website", "folder": "local folder", "git": "git repository"}


@dataclass(frozen=True, slots=True)
class CrawlPlan:
    """A crawl request checked and completed from the settings: what a job runs."""

    start_url: str
    source: str
    selector: str | None
    options: CrawlOptions
    version: str | None = None


class KnowledgeService:
    def __init__(self, ctx: ServiceContext, requests: RequestsService) -> None:
        self._ctx = ctx
        self.jobs = CrawlJobs(requests)  # crawl jobs are requests in the one request queue
        self.usage = UsageRecorder(ctx)  # every search and answer is logged (evorag/service/_usage.py)
        self.rejected = RejectedPages(ctx)  # a principal's thumbs-down pages, demoted (evorag/service/_feedback.py)
        self.preferred = PreferredSources(ctx)  # the sources a principal usually names, first when none is named

    # Crawling
    async def start_crawl(self, request: CrawlRequest, *, on_progress: ProgressCallback | None = None,
                          principal: Principal | None = None) -> CrawlJob:
        """Check ``request`` and start crawling it as a job (operator role); returns the queued job at once.

        Raises here, before a job exists, for what no crawl could get past: BlockedURLError for a refused URL,
        UserError for a malformed one, a bad source name or option, or a source that holds another site.
        """
        with self._ctx.acting(principal, "crawl"):
            # Queued as a ``crawl`` request, planned (plan_crawl, off the loop: the URL guard may ask DNS) first.
            return await self.jobs.start(request, on_progress=on_progress)

    async def acrawl(self, request: CrawlRequest, on_progress: ProgressCallback | None = None, *,
                     principal: Principal | None = None) -> CrawlReport:
        """Crawl ``request.url`` into a source and wait for the report; re-crawls are incremental and resume
        interrupted ones.

        Raises what ``start_crawl`` raises, then CrawlError when the site cannot be reached and ConfigError
        when the index was built by another BM25 encoder. A failure leaves the index as it was before the failed
        pages. Cancelling the caller cancels the crawl (pages indexed so far are kept).
        """
        job = await self.start_crawl(request, on_progress=on_progress, principal=principal)
        return await self.jobs.result(job.id)

    def crawl(self, request: CrawlRequest, on_progress: ProgressCallback | None = None, *,
              principal: Principal | None = None) -> CrawlReport:
        """``acrawl`` for callers without an event loop."""
        return asyncio.run(self.acrawl(request, on_progress, principal=principal))

    def check_url(self, url: str) -> str:
        """``url`` normalised, if the URL guard lets a crawl of it through (blocking: the guard may ask DNS)."""
        return check_url(url, allow_private=self._ctx.settings.allow_private)

    def plan_crawl(self, request: CrawlRequest) -> CrawlPlan:
        """Every check of a crawl request, in one place; the options come from the settings (blocking: DNS)."""
        settings = self._ctx.settings
        allow_private = settings.allow_private if request.allow_private is None else request.allow_private
        if request.url.strip().lower().startswith("file:"):
            raise UserError("crawl takes http(s) URLs, not files",
                            hint="index a local folder with `evorag add-folder PATH` (Evorag.add_folder)")
        start_url = check_url(request.url, allow_private=allow_private)
        source = validate_source_name(request.source or default_source_name(start_url))
        version = validate_version_label(request.version) if request.version is not None else None
        existing = self._check_source_holds(source, start_url, version)
        selector = request.selector or (existing.options.get("selector") if existing else None)
        limits = {name: value for name, value in (("max_pages", request.max_pages), ("max_depth", request.max_depth))
                  if value is not None}
        from evorag.tools.crawling import CrawlOptions  # see TYPE_CHECKING above

        options = CrawlOptions.from_settings(
            settings, source=source, include=list(request.include), exclude=list(request.exclude),
            allow_private=allow_private, browser=request.browser, selector=selector, **limits)
        return CrawlPlan(start_url, source, selector, options, version)

    def check_source_holds(self, source: str, start_url: str, version: str | None = None, *,
                           kind: str = "site") -> VersionRecord | None:
        """The version of ``source`` a crawl (or a folder or repository run, ``kind``) updates, if it exists.

        Refuses another site (folder, repository) under the same name and version, mixing kinds of source
        (``site``, ``folder``, ``git``: each is refreshed its own way), and mixing versioned with unversioned
        pages in one source (``NAME`` would be ambiguous)."""
        return self._check_source_holds(source, start_url, version, kind)

    def _check_source_holds(self, source: str, start_url: str, version: str | None = None,
                            kind: str = "site") -> VersionRecord | None:
        existing = self._ctx.parts.catalog.get_source(source)
        if existing is None:
            return None
        held = existing.options.get("kind", "site")
        if held != kind:
            again = {"folder": "`evorag add-folder`", "git": "`evorag add-git`"}.get(held, "`evorag crawl`")
            raise UserError(f"source {source!r} holds a {_KINDS.get(held, held)}, not a {_KINDS.get(kind, kind)}",
                            hint=f"update it with {again}, or choose another --source name")
        labels = existing.version_labels
        if version is None and existing.versioned:
            raise UserError(
                f"source {source!r} holds versions {describe_versions(labels, existing.latest)}",
                hint="pass --version to crawl one of them or a new one, or choose another --source name",
            )
        if version is not None and None in labels:
            raise UserError(
                f"source {source!r} was indexed without --version",
                hint="crawl the versions under another --source name, or remove it first with "
                "`evorag sources remove NAME`",
            )
        record = next((v for v in existing.versions if v.version == version), None)
        if record and record.start_url and record.start_url != start_url:
            raise UserError(
                f"source {source_label(source, version)!r} already holds {record.start_url}",
                hint="choose another --source name"
                + (" or --version" if version is not None else "")
                + " or remove it first with `evorag sources remove`",
            )
        return record

    async def run_crawl(self, plan: CrawlPlan, on_progress: ProgressCallback) -> CrawlReport:
        """The crawl itself, as its queued request runs it (holding the writer slot)."""
        from evorag.tools.crawl_job import run_crawl  # see TYPE_CHECKING above

        indexer = await asyncio.to_thread(self._prepare_crawl, plan)
        report = await run_crawl(source=plan.source, start_url=plan.start_url, options=plan.options,
                                 catalog=self._ctx.parts.catalog, indexer=indexer, on_progress=on_progress,
                                 version=plan.version)
        await asyncio.to_thread(self._ctx.parts.webhooks.emit, "crawl_finished", {
            "source": report.source, "version": plan.version, "start_url": report.start_url,
            "complete": report.complete, "pages_indexed": report.pages_indexed,
            "pages_unchanged": report.pages_unchanged, "pages_removed": report.pages_removed,
            "pages_failed": report.pages_failed, "elapsed_s": report.elapsed_s})
        return report

    def _prepare_crawl(self, plan: CrawlPlan) -> Indexer:
        # Checked again now that this crawl writes: one queued before it may have claimed the name.
        self._check_source_holds(plan.source, plan.start_url, plan.version)
        indexer = self._ctx.parts.indexer()  # opens the store: loads the embedding model
        # Refuse before fetching a page or recording the source: the crawl could not index anything.
        indexer.store.check_sparse()
        self._ctx.parts.catalog.upsert_source(plan.source, plan.start_url,
                                              {"selector": plan.selector} if plan.selector else {},
                                              version=plan.version)
        return indexer

    # Crawl jobs
    def crawl_job(self, job_id: str, *, principal: Principal | None = None) -> CrawlJob:
        self._ctx.check(principal, "job_status")
        return self.jobs.get(job_id)

    def crawl_jobs(self, *, principal: Principal | None = None) -> list[CrawlJob]:
        self._ctx.check(principal, "job_status")
        return self.jobs.all()

    async def wait_crawl_job(self, job_id: str, timeout: float, *, on_change=None,
                             principal: Principal | None = None) -> CrawlJob:
        """Wait up to ``timeout`` s for a job to finish; awaits ``on_change(job)`` after every update."""
        self._ctx.check(principal, "job_status")
        return await self.jobs.wait(job_id, timeout, on_change)

    def cancel_crawl_job(self, job_id: str, *, principal: Principal | None = None) -> CrawlJob:
        self._ctx.check(principal, "cancel_job")
        return self.jobs.cancel(job_id)

    async def acancel_crawl_jobs(self) -> None:
        """Cancel every crawl job this process runs (a server shutting down); each is recorded as cancelled."""
        await self.jobs.aclose()

    # Searching and answering
    def search(self, query: str, *, source: str | None = None, limit: int = 10, code: bool = False,
               max_per_page: int | None = None, principal: Principal | None = None) -> list[Hit]:
        """Hybrid dense + BM25 search over page sections; ``code=True`` searches code examples instead.

        Results are ranked by page with at most ``max_per_page`` sections of one page (default: the setting,
        1; 0: no limit), so ``limit`` results cover that many distinct pages unless more are asked for.

        Code blocks live in both kinds of chunk (inside their section, and on their own), so each search looks
        at one kind to avoid returning the same block twice. ``source`` is a selector (``NAME``, ``NAME@X``,
        ``NAME@latest``, a range): one version of one source is searched. Logged in the usage log.
        """
        who = self._ctx.check(principal, "search")
        if not query or not query.strip():
            raise UserError("the query is empty", hint="pass some words to search for")
        # An agent team searching while it evolves or heals is not someone asking: only a search made for its
        # own sake (no other operation under way) is usage.
        logged, started = current_operation() is None, time.perf_counter()
        try:
            hits = self._search(query, source=source, limit=limit, code=code, max_per_page=max_per_page, who=who)
        except Exception as exc:
            if logged:
                self.usage.search(who, query, source=source, hits=None, started=started, error=exc)
            raise
        if logged:
            self.usage.search(who, query, source=source, hits=hits, started=started)
        return hits

    def _search(self, query: str, *, source: str | None, limit: int, code: bool = False,
                max_per_page: int | None = None, who: Principal | None = None) -> list[Hit]:
        """``search`` without the role check and the usage log (answering logs the question instead). With
        ``who``, the pages ``who`` gave a thumbs-down for this question are demoted and, when no source is named,
        the sources ``who`` usually names come a little first (evorag.service._feedback)."""
        require_text(query, "query")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise UserError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}")
        if max_per_page is not None and not 0 <= max_per_page <= MAX_SEARCH_LIMIT:
            raise UserError(f"max_per_page must be between 0 (no limit) and {MAX_SEARCH_LIMIT}, got {max_per_page}")
        name, version = self.resolve_source(source) if source is not None else (None, None)
        settings = self._ctx.settings
        options = SearchOptions.from_settings(settings, limit=limit, source=name, version=version,
                                              kind="code" if code else "text",
                                              candidates=max(settings.candidates, limit))
        if max_per_page is not None:
            options.max_per_page = max_per_page
        searcher = self._ctx.parts.searcher()
        vector = searcher.embedder.embed_query(query)  # embedded once: the search and the feedback lookup share it
        hits = searcher.search_vector(query, vector, options)
        if who is None:
            return hits
        if name is None:
            hits = self.preferred.rerank(who, hits)
        return self.rejected.demote(who, vector, hits)

    def ask(self, question: str, *, source: str | None = None, evaluate: bool = True, reference: str | None = None,
            relevance: dict | None = None, principal: Principal | None = None) -> Answer:
        """``aask`` for callers without an event loop."""
        return asyncio.run(self.aask(question, source=source, evaluate=evaluate, reference=reference,
                                     relevance=relevance, principal=principal))

    async def aask(self, question: str, *, source: str | None = None, evaluate: bool = True,
                   reference: str | None = None, relevance: dict | None = None,
                   principal: Principal | None = None) -> Answer:
        """Retrieve, assemble the context, answer (LLM, or extractive when it is down) and score.

        The report is stored in the metrics history, the question in the usage log. Raises UserError for an
        empty question or an unknown source; model failures never raise, they produce an extractive answer with
        a note.
        """
        with self._ctx.acting(principal, "ask") as who:
            require_text(question, "question")
            if reference is not None:
                require_text(reference, "reference answer")
            started, retrieved = time.perf_counter(), {}
            try:
                answer = await self._answer(question, source=source, evaluate=evaluate, reference=reference,
                                            relevance=relevance, retrieved=retrieved, who=who)
            except Exception as exc:
                await asyncio.to_thread(self.usage.ask, who, question, source=source, top_score=retrieved.get("top"),
                                        started=started, error=exc)
                raise
            answer.answer_id = await asyncio.to_thread(self.usage.ask, who, question, source=source, answer=answer,
                                                       top_score=retrieved.get("top"), started=started)
            return answer

    async def _answer(self, question: str, *, source: str | None, evaluate: bool, reference: str | None,
                      relevance: dict | None, retrieved: dict | None = None,
                      who: Principal | None = None) -> Answer:
        settings, parts = self._ctx.settings, self._ctx.parts
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def retrieve():
            from evorag.tools.answering import assemble_context  # see TYPE_CHECKING above

            hits = self._search(question, source=source, limit=settings.answer_passages * 2, who=who)
            if retrieved is not None and hits:
                retrieved["top"] = max(float(hit.score) for hit in hits)
            timings["retrieve"] = round((time.perf_counter() - started) * 1000, 1)
            mark = time.perf_counter()
            passages = assemble_context(hits, self._chunks_between, token_budget=settings.context_tokens,
                                        max_passages=settings.answer_passages)
            timings["context"] = round((time.perf_counter() - mark) * 1000, 1)
            return passages, parts.answerer

        # Embedding, search, context assembly and building the answerer in one trip off the event loop: other
        # clients keep being served meanwhile, and each hand-off between threads costs a wait for the GIL.
        passages, answerer = await asyncio.to_thread(retrieve)
        answer = await answerer.answer(question, passages)
        timings.update(answer.timings_ms)
        if evaluate:
            mark = time.perf_counter()
            await asyncio.to_thread(self._score, answer, passages, reference=reference, relevance=relevance,
                                    source=source, timings=timings, mark=mark)
        elif not answer.fallback:
            # No correctness report asked for, but a model answer still passes the grounding gate to be shown.
            await asyncio.to_thread(self._ground, answer, passages)
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        answer.timings_ms = timings
        return answer

    def _score(self, answer: Answer, passages, *, reference, relevance, source, timings, mark) -> None:
        """The correctness report, the grounding gate, and the record in the metrics history (blocking)."""
        parts = self._ctx.parts
        if not passages:
            # Nothing retrieved is the weakest answer there is: keep it, it is a knowledge gap.
            answer.metrics = {"grounding": None, "ndcg": 0.0, "overall": 0.0, "note": "no sources matched"}
            answer.report_id = parts.metrics.record(answer.metrics, query=answer.question, source_filter=source,
                                                    model=answer.model, timings=timings)
            return
        contexts = [p.to_dict() for p in passages]
        report = parts.evaluator.evaluate(answer.question, answer.answer, contexts, reference=reference,
                                          relevance=relevance)
        if self._gate(answer, passages, report.grounding):
            report = parts.evaluator.evaluate(answer.question, answer.answer, contexts, reference=reference,
                                              relevance=relevance)
        timings["evaluate"] = round((time.perf_counter() - mark) * 1000, 1)
        answer.metrics = report.to_dict()
        answer.report_id = parts.metrics.record(report, query=answer.question, source_filter=source,
                                                model=answer.model, timings=timings, tokens=answer.tokens)

    def _ground(self, answer: Answer, passages) -> None:
        """The grounding gate without the rest of the correctness report (blocking)."""
        grounding = self._ctx.parts.evaluator.grounding(answer.answer, [p.to_dict() for p in passages]).score
        self._gate(answer, passages, grounding)

    def _gate(self, answer: Answer, passages, grounding: float | None) -> bool:
        """The grounding gate: a model answer its sources do not support is not shown; the extractive answer
        replaces it (the model's text stays in the record). True when it did."""
        if answer.fallback or grounding is None or grounding >= self._ctx.settings.min_grounding:
            return False
        answer.replace_with_extractive(
            passages, f"the {answer.model} answer was not supported by the sources (grounding {grounding:.2f})")
        return True

    def _chunks_between(self, first: Chunk, second: Chunk) -> int:
        """Chunks of the same page and kind strictly between two chunks (context assembly merges neighbours)."""
        # Loaded with the store itself (see Components.store), which is open by now.
        from evorag.tools.stores import SearchFilter

        return self._ctx.parts.store.count(
            SearchFilter(url=first.url, kind=first.kind, source=first.source, version=first.version,
                         positions_between=(first.position, second.position)))

    # Sources
    def require_source(self, name: str) -> SourceRecord:
        record = self._ctx.parts.catalog.get_source(name)
        if record is None:
            known = ", ".join(s.name + (f" ({describe_versions(s.version_labels, s.latest)})" if s.versioned else "")
                              for s in self._ctx.parts.catalog.sources()) or "none yet"
            raise NotFoundError(f"unknown source {name!r}", hint=f"known sources: {known}")
        return record

    def resolve_source(self, selector: str) -> tuple[str, str | None]:
        """(name, version) of a source selector (``evorag.tools.versions``). Raises UserError for a malformed
        selector, NotFoundError for an unknown source or a version nobody indexed (naming those that exist)."""
        parsed = parse_selector(selector)
        record = self.require_source(validate_source_name(parsed.name))
        return record.name, resolve_version(record.name, parsed.spec, record.version_labels, record.latest)

    def resolve_exact(self, selector: str) -> tuple[SourceRecord, str | None, bool]:
        """(source, version, whole source?) of a selector naming the source or exactly one of its versions:
        what removing, exporting or marking a version takes. ``NAME`` alone means the whole source."""
        parsed = parse_selector(selector)
        record = self.require_source(validate_source_name(parsed.name))
        if parsed.spec is None:
            return record, None, True
        if parsed.spec.lower() == "latest" or range_specifiers(parsed.spec) is not None:
            raise UserError(f"{selector!r} does not name one version exactly",
                            hint=f"name the version, e.g. {record.name}@{record.version_labels[-1] or 'X'}")
        return record, resolve_version(record.name, parsed.spec, record.version_labels, record.latest), False

    def sources(self, *, principal: Principal | None = None) -> list[SourceRecord]:
        self._ctx.check(principal, "list_sources")
        return self._ctx.parts.catalog.sources()

    def source_pages(self, name: str, *, principal: Principal | None = None) -> list[str]:
        """The URLs of a source's indexed pages (of the version ``name``, a selector, resolves to), sorted."""
        self._ctx.check(principal, "list_sources")
        source, version = self.resolve_source(name)
        pages = self._ctx.parts.catalog.pages(source, version)
        return sorted(url for url, record in pages.items() if record.indexed_hash is not None)

    def remove_source(self, name: str, *, principal: Principal | None = None) -> None:
        """Remove a source, or one version of it (``NAME@X``), from the index; needs the approver role (it
        deletes what a crawl built)."""
        with self._ctx.acting(principal, "remove_source"):
            record, version, whole = self.resolve_exact(name)
            with self._ctx.writer:
                if whole:
                    self._ctx.parts.indexer().remove_source(record.name)
                else:
                    self._ctx.parts.indexer().remove_version(record.name, version)

    def warm_up(self) -> None:
        """Open the index and load the embedding model now (seconds on a small machine; blocking: call it in a
        thread), so that a server's first question does not wait for them."""
        self._ctx.parts.store  # noqa: B018 - opens the index
        self._ctx.parts.embedder.embed_query("warm up")  # the model itself loads on the first embedding

    # The teams' IndexHealth port
    def half_written_pages(self) -> int:
        """Pages a killed crawl left half-written (the index is consistent again after ``repair_index``)."""
        return len(self._ctx.parts.catalog.pending_pages())

    def repair_index(self) -> int:
        """Remove what killed crawls left half-written; returns how many pages it fixed (holds the writer slot)."""
        with self._ctx.writer:
            return self._ctx.parts.indexer().recover()
