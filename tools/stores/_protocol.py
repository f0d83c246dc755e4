"""The contract every vector store keeps, whichever Qdrant runs underneath."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from evorag.tools.sparse import SparseVector
from evorag.tools.types import Chunk, ChunkKind, Hit, PageRef, Scored


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Restricts a search or count to chunks matching every field that is set."""

    source: str | None = None
    kind: ChunkKind | None = None
    url: str | None = None
    positions_between: tuple[int, int] | None = None  # (low, high): low < position < high
    version: str | None = None  # a documentation version (None: any, which for an unversioned source is none)

    def conditions(self) -> dict[str, str]:
        fields = (("source", self.source), ("kind", self.kind), ("url", self.url), ("version", self.version))
        return {key: value for key, value in fields if value is not None}


@runtime_checkable
class VectorStore(Protocol):
    """Chunks with a dense and a BM25 sparse vector each, one collection per embedding model.

    Collections are named after the model (``<alias>-<model slug>-<hash>``); the alias (``evorag``
    by default) names the collection in use, so switching models builds a new collection next to
    the old one and then swaps the alias: vectors of different models never mix.

    Every method except ``open``/``open_current``/``collections``/``close`` needs an open collection
    and raises ``InternalError`` otherwise. Backend failures surface as ``StoreError``.

    Each collection also records the signature of the BM25 encoder that built its sparse vectors
    (``evorag.tools.sparse.Bm25Encoder.signature``). If it is not the store's current encoder, ``upsert``
    and BM25 queries raise ``ConfigError`` (see ``check_sparse``); everything else, removals
    included, still works, so the index can be emptied and rebuilt.
    """

    alias: str

    def open(self, model_name: str, dim: int, *, activate: bool = True) -> None:
        """Select the collection of ``model_name``, creating it with ``dim`` if new.

        With ``activate`` the alias is pointed at it; without, it is opened for (re)building and
        ``activate()`` swaps the alias later. Raises ``ConfigError`` if the collection exists with
        another dimension (the model changed under the same name).
        """
        ...

    def open_current(self) -> None:
        """Open the collection the alias points at. Raises ``NotFoundError`` when there is none."""
        ...

    def activate(self) -> None:
        """Point the alias at the open collection."""
        ...

    def check_sparse(self) -> None:
        """Raise ``ConfigError`` if the open collection's BM25 vectors come from another encoder.

        The error names both signatures. A collection holding no chunks takes the current encoder
        instead (it has nothing to mix with). Callers that are about to do work call it first.
        """
        ...

    def info(self) -> dict:
        """``collection``, ``alias``, ``active`` (alias points here), ``model``, ``dim``, ``sparse``, ``points``, ``backend``."""
        ...

    def collections(self) -> list[dict]:
        """Every collection under this alias' prefix: ``collection``, ``model``, ``dim``, ``points``, ``active``."""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete a collection that is neither open nor active (``UserError`` otherwise)."""
        ...

    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector]) -> None:
        """Insert or replace chunks by id (UUID strings). Durable once it returns (see the backend)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        ...

    def delete_where(
        self, *, url: str | None = None, source: str | None = None, content_hash_not: str | None = None,
        version: str | None = None,
    ) -> int:
        """Remove the chunks of a page or a source, optionally keeping those of one content hash; with
        ``version``, only the chunks of that documentation version.

        Returns how many were removed. Needs ``url`` or ``source`` (``InternalError`` otherwise), so a
        missing argument can never empty the collection.
        """
        ...

    def dense_search(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        """Nearest chunks by cosine similarity, best first."""
        ...

    def sparse_search(self, vector: SparseVector, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        """Chunks by BM25 (the store applies IDF), best first; chunks sharing no term are not returned."""
        ...

    def dense_candidates(
        self, vector: np.ndarray, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        """``dense_search`` by id and score only: no payload is read, so fusing candidates stays cheap."""
        ...

    def sparse_candidates(
        self, vector: SparseVector, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        """``sparse_search`` by id and score only."""
        ...

    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks of these ids, by id; ids no longer stored are missing from the result."""
        ...

    def page_refs(self, ids: Sequence[str]) -> dict[str, PageRef]:
        """The page (URL, title) and section of each of these chunk ids; ids no longer stored are missing.

        Reads those payload fields only: page-aware ranking needs them for every candidate.
        """
        ...

    def page_terms(self, ids: Sequence[str]) -> dict[str, tuple[PageRef, frozenset[int]]]:
        """``page_refs`` with each chunk's BM25 term ids (the indices of its sparse vector), in one read:
        what the term coverage of page-aware ranking needs, without the text."""
        ...

    def hybrid_search(
        self,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        where: SearchFilter | None = None,
        *,
        candidates: int = 100,
        k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> list[Hit]:
        """Dense and BM25 candidates fused inside Qdrant by RRF, in one request.

        The ranking and scores equal ``evorag.tools.fusion.qdrant_rrf`` over ``dense_search(candidates)``
        and ``sparse_search(candidates)`` with the same ``k`` and (dense, sparse) ``weights``; only
        the fused top ``limit`` payloads are read, which makes it the fast path. A zero weight
        leaves that retriever out. For the other fusions in tools.fusion, search separately.
        """
        ...

    def get_page_chunks(self, url: str) -> list[Chunk]:
        """All chunks of one page, in page order."""
        ...

    def iter_chunks(self, collection: str | None = None, batch_size: int = 256) -> Iterator[Chunk]:
        """Every chunk of a collection (default: the open one), for re-embedding into a new model."""
        ...

    def iter_points(
        self, where: SearchFilter, batch_size: int = 256
    ) -> Iterator[tuple[Chunk, list[float], SparseVector]]:
        """Every chunk of the open collection matching ``where`` with its dense and BM25 vectors, as stored
        (exporting a source: ``evorag sources export``)."""
        ...

    def count(self, where: SearchFilter | None = None) -> int:
        """Exact number of chunks matching ``where``."""
        ...

    def sources(self) -> dict[str, int]:
        """Chunk count per source."""
        ...

    def optimize(self) -> None:
        """Build search indexes for what was written since the last call (no-op on a server)."""
        ...

    def flush(self) -> None:
        """Persist everything to the main storage (writes are already durable in the WAL)."""
        ...

    def close(self) -> None:
        """Release the collection and the backend; idempotent."""
        ...
