"""Hybrid retrieval: dense and BM25 candidates from the store, fused in process (tools.fusion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evorag.tools import sparse
from evorag.tools.embedding import Embedder
from evorag.tools.fusion import fuse_scored
from evorag.tools.types import Hit

if TYPE_CHECKING:
    from evorag.settings import Settings


@dataclass(slots=True)
class SearchOptions:
    limit: int = 10
    source: str | None = None
    kind: str | None = None  # "text" | "code" | None for both
    candidates: int = 100
    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    fusion: str = "minmax"  # "rrf" | "minmax" | "dbsf" (see tools.fusion)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SearchOptions:
        """Options from evorag settings (candidates, fusion and its weights); keyword arguments override them."""
        values: dict[str, Any] = {
            "candidates": settings.candidates,
            "rrf_k": settings.rrf_k,
            "dense_weight": settings.dense_weight,
            "sparse_weight": settings.sparse_weight,
            "fusion": settings.fusion,
        }
        values.update(overrides)
        return cls(**values)


class HybridSearcher:
    def __init__(self, store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(self, query: str, options: SearchOptions) -> list[Hit]:
        return self.search_vector(query, self.embedder.embed_query(query), options)

    def search_vector(self, query: str, vector, options: SearchOptions) -> list[Hit]:
        """Search with a query vector computed by the caller (benchmarks and batch evaluation)."""
        from evorag.tools.stores import SearchFilter

        where = SearchFilter(source=options.source, kind=options.kind)
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
        fused = fuse_scored(lists, weights, method=options.fusion, k=options.rrf_k, limit=options.limit)
        chunks = self.store.get_chunks([item.id for item in fused])
        # A chunk deleted between the two calls (a re-crawl replacing its page) is left out.
        return [Hit(chunk=chunks[item.id], score=item.score) for item in fused if item.id in chunks]
