"""Hybrid retrieval: dense and BM25 candidates from the store, fused in process (tools.fusion), then ranked by
page (tools.page_ranking) when the options ask for it, as the service's do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evorag.tools import sparse
from evorag.tools.embedding import Embedder
from evorag.tools.fusion import fuse_scored
from evorag.tools.page_ranking import PageRanking, rank_by_page
from evorag.tools.types import Hit, Scored

if TYPE_CHECKING:
    from evorag.settings import Settings

# Page-aware ranking groups this many fused chunks (at least) by page: enough for the support of a page's
# further chunks and for ``limit`` distinct pages, while reading only the page (URL, title) of each.
PAGE_POOL = 50
PAGE_POOL_PER_RESULT = 4


@dataclass(slots=True)
class SearchOptions:
    """How to search. Built directly, results are chunks in fused order (every page-aware part off);
    ``from_settings`` gives what the service runs: ranked by page, ``max_per_page`` chunks per page."""

    limit: int = 10
    source: str | None = None
    kind: str | None = None  # "text" | "code" | None for both
    version: str | None = None  # only this documentation version of ``source`` (evorag.tools.versions)
    candidates: int = 100
    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    fusion: str = "minmax"  # "rrf" | "minmax" | "dbsf" (see tools.fusion)
    max_per_page: int = 0  # chunks per page in the results; 0: no limit
    page_support: float = 0.0  # how much a page's further matching chunks add to its score
    changelog_weight: float = 1.0  # score factor of changelogs/release notes unless asked about; 1: none
    term_coverage: float = 0.0  # what a page gains for covering all of the query's terms across its candidates

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SearchOptions:
        """Options from evorag settings (candidates, fusion and its weights, page ranking); keyword arguments
        override them."""
        values: dict[str, Any] = {
            "candidates": settings.candidates,
            "rrf_k": settings.rrf_k,
            "dense_weight": settings.dense_weight,
            "sparse_weight": settings.sparse_weight,
            "fusion": settings.fusion,
            "max_per_page": settings.max_per_page,
            "page_support": settings.page_support,
            "changelog_weight": settings.changelog_weight,
            "term_coverage": settings.term_coverage,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def page_ranking(self) -> PageRanking:
        """The page-aware part; raises ``ValueError`` for out-of-range values."""
        return PageRanking(max_per_page=self.max_per_page, page_support=self.page_support,
                           changelog_weight=self.changelog_weight, term_coverage=self.term_coverage)


class HybridSearcher:
    def __init__(self, store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(self, query: str, options: SearchOptions) -> list[Hit]:
        return self.search_vector(query, self.embedder.embed_query(query), options)

    def search_vector(self, query: str, vector, options: SearchOptions) -> list[Hit]:
        """Search with a query vector computed by the caller (benchmarks and batch evaluation)."""
        from evorag.tools.stores import SearchFilter

        ranking = options.page_ranking
        where = SearchFilter(source=options.source, kind=options.kind, version=options.version)
        lists, weights = [], []
        if options.dense_weight > 0:
            lists.append(self.store.dense_candidates(vector, options.candidates, where))
            weights.append(options.dense_weight)
        if options.sparse_weight > 0:
            query_vector = sparse.encode_query(query)
            if query_vector.indices:
                lists.append(self.store.sparse_candidates(query_vector, options.candidates, where))
                weights.append(options.sparse_weight)
        if not lists:
            return []
        # Candidates come as ids: only the fused top ``limit`` are loaded, not 2 x ``candidates`` payloads
        # (the payloads were two thirds of the store's time per query and most of the Python time).
        pool = max(PAGE_POOL, PAGE_POOL_PER_RESULT * options.limit) if ranking.active else options.limit
        fused = fuse_scored(lists, weights, method=options.fusion, k=options.rrf_k, limit=pool)
        if ranking.active:
            fused = self._rank_by_page(query, fused, ranking, options.limit)
        chunks = self.store.get_chunks([item.id for item in fused])
        # A chunk deleted between the two calls (a re-crawl replacing its page) is left out.
        return [Hit(chunk=chunks[item.id], score=item.score) for item in fused if item.id in chunks]

    def _rank_by_page(self, query: str, fused: list[Scored], ranking: PageRanking, limit: int) -> list[Scored]:
        ids = [item.id for item in fused]
        if ranking.term_coverage > 0:
            # The term coverage needs each candidate's BM25 terms: its sparse vector's indices, read with its
            # page (tokenizing the candidates' text again took several times as long as the whole search).
            found = self.store.page_terms(ids)
            pages = {chunk_id: ref for chunk_id, (ref, _) in found.items()}
            terms = {chunk_id: chunk_terms for chunk_id, (_, chunk_terms) in found.items()}
            return rank_by_page(fused, pages, ranking, query=query, limit=limit, terms=terms)
        # The page of every pooled candidate: two payload fields, about half the cost of whole payloads.
        return rank_by_page(fused, self.store.page_refs(ids), ranking, query=query, limit=limit)
