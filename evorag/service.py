"""The service object: one place that wires settings, stores and tools together.

The CLI, the MCP server, the UI and Python callers all go through ``Evorag``; none of them holds
logic of its own. Heavy parts (the embedding model, the vector store) are opened on first use.

Every operation takes the principal it acts for (``principal=``) and checks its role
(evorag.principals.OPERATIONS). Without one it acts for the principal the current call already acts for
(a crawl started by an evolution belongs to whoever started the evolution), else for ``Evorag.principal``:
by default the local OS user as admin, since whoever calls the Python API owns EVORAG_HOME.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

from evorag._evolution import EvolutionMixin
from evorag.errors import NotFoundError, UserError
from evorag.principals import Principal, PrincipalStore, acting_as, acting_principal, local_principal, require
from evorag.settings import Settings, load_settings
from evorag.tools.catalog import Catalog, SourceRecord
from evorag.tools.embedding import Embedder, create_embedder
from evorag.tools.types import Chunk, Hit

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_source_name(name: str) -> str:
    if not _SOURCE_NAME.match(name or "") or ".." in name:
        raise UserError(
            f"invalid source name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def require_text(value: str, what: str) -> str:
    """Refuse text that is not valid Unicode: bytes the terminal could not decode reach Python's argv as lone
    surrogates (``$'\\xff'``), which no tokenizer or model accepts. Refused rather than replaced: a query
    with U+FFFD in place of what was typed would search for something else."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"the {what} is not valid UTF-8 text",
                        hint="type it again, or set a UTF-8 locale (e.g. LANG=C.UTF-8)") from None
    return value


def default_source_name(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "source").replace(":", "-")
    name = f"{host}-{parts.port}" if parts.port else host
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]


@dataclass(slots=True)
class CrawlRequest:
    url: str
    source: str | None = None
    max_pages: int | None = None
    max_depth: int | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    allow_private: bool | None = None
    browser: bool = False
    selector: str | None = None


class Evorag(EvolutionMixin):
    """evorag's Python API. Thread-safe for concurrent searches; one writer at a time."""

    def __init__(self, settings: Settings | None = None, *, principal: Principal | None = None,
                 **overrides: object) -> None:
        self.settings = settings or load_settings(**overrides)
        self.settings.ensure_home()
        self.principal = principal or local_principal()
        self._principals: PrincipalStore | None = None
        self.catalog = Catalog(self.settings.catalog_path)
        self._embedder: Embedder | None = None
        self._store = None
        self._answerer = None
        self._evaluator = None
        self._metrics = None
        self._evolution = None
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()

    # Lazily opened parts
    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = create_embedder(self.settings)
            return self._embedder

    @property
    def store(self):
        with self._lock:
            if self._store is None:
                from evorag.tools.stores import store_from_settings

                embedder = self.embedder
                if not embedder.dim and hasattr(embedder, "probe"):
                    embedder.probe()
                store = store_from_settings(self.settings)
                store.open(embedder.name, embedder.dim)
                self._store = store
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            memory = getattr(self, "_memory_store", None)
            if memory is not None:
                memory.close()
                self._memory_store = None
            if self._principals is not None:
                self._principals.close()
                self._principals = None
            self.catalog.close()

    def __enter__(self) -> Self:
        return self

    # Principals
    @property
    def principals(self) -> PrincipalStore:
        """The users, roles and (hashed) credentials under the home."""
        with self._lock:
            if self._principals is None:
                self._principals = PrincipalStore(self.settings.principals_path)
            return self._principals

    @contextlib.contextmanager
    def acting(self, principal: Principal | None, operation: str) -> Iterator[Principal]:
        """Check that the principal may do ``operation`` and record it as the one acting (audit log)."""
        who = require(principal or acting_principal() or self.principal, operation)
        with acting_as(who):
            yield who

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _indexer(self):
        from evorag.tools.indexer import Indexer

        return Indexer(
            self.store,
            self.embedder,
            self.catalog,
            max_chars=self.settings.chunk_max_chars,
            min_chars=self.settings.chunk_min_chars,
        )

    # Knowledge
    def crawl(self, request: CrawlRequest, on_progress=None, *, principal: Principal | None = None):
        """Crawl and index one documentation site. See ``acrawl``."""
        return asyncio.run(self.acrawl(request, on_progress=on_progress, principal=principal))

    async def acrawl(self, request: CrawlRequest, on_progress=None, *, principal: Principal | None = None):
        """Crawl ``request.url`` into a source; re-crawls are incremental and resume interrupted ones.

        Raises BlockedURLError for refused URLs, UserError for malformed ones, CrawlError when the
        site cannot be reached, ConfigError when the index was built by another BM25 encoder. A
        failure leaves the index as it was before the failed pages. Needs the operator role.
        """
        with self.acting(principal, "crawl"):
            return await self._crawl(request, on_progress)

    async def _crawl(self, request: CrawlRequest, on_progress):
        from evorag.tools.crawl_job import run_crawl
        from evorag.tools.crawler import CrawlOptions
        from evorag.tools.url_guard import check_url

        settings = self.settings
        allow_private = settings.allow_private if request.allow_private is None else request.allow_private
        start_url = check_url(request.url, allow_private=allow_private)
        source = validate_source_name(request.source or default_source_name(start_url))
        existing = self.catalog.get_source(source)
        if existing and existing.start_url and existing.start_url != start_url:
            raise UserError(
                f"source {source!r} already holds {existing.start_url}",
                hint="choose another --source name or remove it first with `evorag sources remove`",
            )
        selector = request.selector or (existing.options.get("selector") if existing else None)
        options = CrawlOptions(
            source=source,
            max_pages=request.max_pages or settings.max_pages,
            max_depth=settings.max_depth if request.max_depth is None else request.max_depth,
            include=list(request.include),
            exclude=list(request.exclude),
            allow_private=allow_private,
            browser=request.browser,
            selector=selector,
            concurrency=settings.crawl_concurrency,
            rate_per_host=settings.crawl_rate_per_host,
            retries=settings.crawl_retries,
            timeout=settings.crawl_timeout,
            max_page_bytes=settings.max_page_bytes,
            user_agent=settings.user_agent,
            state_dir=settings.crawl_state_dir,
        )
        indexer = self._indexer()
        # Refuse before fetching a page or recording the source: the crawl could not index anything.
        indexer.store.check_sparse()
        # One writer at a time; waiting for the lock in a thread keeps the event loop free.
        await asyncio.to_thread(self._write_lock.acquire)
        try:
            self.catalog.upsert_source(source, start_url, {"selector": selector} if selector else {})
            return await run_crawl(
                source=source,
                start_url=start_url,
                options=options,
                catalog=self.catalog,
                indexer=indexer,
                on_progress=on_progress,
            )
        finally:
            self._write_lock.release()

    def search(
        self,
        query: str,
        *,
        source: str | None = None,
        limit: int = 10,
        code: bool = False,
        principal: Principal | None = None,
    ) -> list[Hit]:
        """Hybrid dense + BM25 search over page sections; ``code=True`` searches code examples instead.

        Code blocks live in both kinds of chunk (inside their section, and on their own), so each
        search looks at one kind to avoid returning the same block twice.
        """
        from evorag.tools.search import HybridSearcher, SearchOptions

        require(principal or acting_principal() or self.principal, "search")

        if not query or not query.strip():
            raise UserError("the query is empty", hint="pass some words to search for")
        require_text(query, "query")
        if not 1 <= limit <= 1000:
            raise UserError(f"limit must be between 1 and 1000, got {limit}")
        if source is not None:
            self.require_source(source)
        options = SearchOptions(
            limit=limit,
            source=source,
            kind="code" if code else "text",
            candidates=max(self.settings.candidates, limit),
            rrf_k=self.settings.rrf_k,
            dense_weight=self.settings.dense_weight,
            sparse_weight=self.settings.sparse_weight,
            fusion=self.settings.fusion,
        )
        return HybridSearcher(self.store, self.embedder).search(query, options)

    def _chunks_between(self, first: Chunk, second: Chunk) -> int:
        """Chunks of the same page and kind strictly between two chunks (context assembly merges neighbours)."""
        from evorag.tools.stores import SearchFilter

        return self.store.count(
            SearchFilter(url=first.url, kind=first.kind, positions_between=(first.position, second.position))
        )

    def require_source(self, name: str) -> SourceRecord:
        record = self.catalog.get_source(name)
        if record is None:
            known = ", ".join(s.name for s in self.catalog.sources()) or "none yet"
            raise NotFoundError(f"unknown source {name!r}", hint=f"known sources: {known}")
        return record

    def sources(self, *, principal: Principal | None = None) -> list[SourceRecord]:
        require(principal or acting_principal() or self.principal, "list_sources")
        return self.catalog.sources()

    def remove_source(self, name: str, *, principal: Principal | None = None) -> None:
        """Remove a source from the index; needs the approver role (it deletes what a crawl built)."""
        with self.acting(principal, "remove_source"):
            self.require_source(name)
            with self._write_lock:
                self._indexer().remove_source(name)

    def external_links(self, source: str | None = None) -> list[tuple[str, str]]:
        return self.catalog.external_links(source)

    # Answers and their measured quality
    @property
    def metrics(self):
        from evorag.tools.metrics_store import MetricsStore

        with self._lock:
            if self._metrics is None:
                self._metrics = MetricsStore(self.settings.metrics_path)
            return self._metrics

    @property
    def evaluator(self):
        from evorag.tools.evaluation import Evaluator, EvaluatorConfig, Weights

        with self._lock:
            if self._evaluator is None:
                config = EvaluatorConfig()
                config.weights = Weights.from_mapping(self.settings.eval_weights)
                embed = self.embedder.embed_documents if self.settings.eval_embeddings else None
                self._evaluator = Evaluator(config, embed=embed)
            return self._evaluator

    @property
    def answerer(self):
        from evorag.tools.answering import Answerer

        with self._lock:
            if self._answerer is None:
                from evorag.agents.model_clients import create_model_client, model_label

                client = create_model_client(self.settings)
                self._answerer = Answerer(client, model_name=model_label(self.settings),
                                          timeout=self.settings.answer_timeout)
            return self._answerer

    def ask(self, question: str, **kwargs):
        """Answer a question with citations and a correctness report. See ``aask``."""
        return asyncio.run(self.aask(question, **kwargs))

    async def aask(
        self,
        question: str,
        *,
        source: str | None = None,
        evaluate: bool = True,
        reference: str | None = None,
        relevance: dict | None = None,
        principal: Principal | None = None,
    ):
        """Retrieve, assemble the context, answer (LLM, or extractive when it is down) and score.

        The report is stored in the metrics history. Raises UserError for an empty question or an
        unknown source; model failures never raise, they produce an extractive answer with a note.
        """
        with self.acting(principal, "ask"):
            return await self._answer(question, source=source, evaluate=evaluate, reference=reference,
                                      relevance=relevance)

    async def _answer(self, question: str, *, source: str | None, evaluate: bool, reference: str | None,
                      relevance: dict | None):
        import time

        from evorag.tools.answering import assemble_context

        require_text(question, "question")
        if reference is not None:
            require_text(reference, "reference answer")
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def retrieve():
            hits = self.search(question, source=source, limit=self.settings.answer_passages * 2)
            timings["retrieve"] = round((time.perf_counter() - started) * 1000, 1)
            mark = time.perf_counter()
            passages = assemble_context(
                hits, self._chunks_between, token_budget=self.settings.context_tokens,
                max_passages=self.settings.answer_passages,
            )
            timings["context"] = round((time.perf_counter() - mark) * 1000, 1)
            return passages

        # Embedding, search and context assembly in one trip off the event loop: other clients keep
        # being served meanwhile, and each hand-off between threads costs a wait for the GIL under load.
        passages = await asyncio.to_thread(retrieve)
        answer = await self.answerer.answer(question, passages)
        timings.update(answer.timings_ms)
        if evaluate and passages:
            mark = time.perf_counter()
            report = await asyncio.to_thread(
                self.evaluator.evaluate, question, answer.answer, [p.to_dict() for p in passages],
                reference=reference, relevance=relevance,
            )
            grounding = report.grounding
            if not answer.fallback and grounding is not None and grounding < self.settings.min_grounding:
                # The correctness report is the gate: an answer its sources do not support is not shown.
                answer.replace_with_extractive(
                    passages, f"the {answer.model} answer was not supported by the sources (grounding {grounding:.2f})")
                report = await asyncio.to_thread(
                    self.evaluator.evaluate, question, answer.answer, [p.to_dict() for p in passages],
                    reference=reference, relevance=relevance,
                )
            timings["evaluate"] = round((time.perf_counter() - mark) * 1000, 1)
            answer.metrics = report.to_dict()
            answer.report_id = self.metrics.record(
                report, query=question, source_filter=source, model=answer.model, timings=timings,
                tokens=answer.tokens,
            )
        elif evaluate:
            # Nothing retrieved is the weakest answer there is: keep it, it is a knowledge gap.
            answer.metrics = {"grounding": None, "ndcg": 0.0, "overall": 0.0, "note": "no sources matched"}
            answer.report_id = self.metrics.record(answer.metrics, query=question, source_filter=source,
                                                   model=answer.model, timings=timings)
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        answer.timings_ms = timings
        return answer
