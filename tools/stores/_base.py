"""The part of ``VectorStore`` that does not depend on which Qdrant client runs underneath.

``QdrantStoreBase`` keeps the open collection's name and metadata, checks arguments, builds
filters and queries, selects candidates, fuses hybrid searches, swaps aliases and guards the BM25
encoder signature. A backend subclass implements only the primitives that talk to its client
(the abstract methods below); they receive backend-neutral values (``Conditions``, plain dense
lists, ``SparseVector``) and translate them into their client's types.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Self

import numpy as np
from evorag.tools.sparse import Bm25Encoder, SparseVector
from evorag.tools.stores._common import (
    DENSE,
    PAGE_FIELDS,
    SPARSE,
    UPSERT_BATCH,
    Conditions,
    FusedQuery,
    QueryVector,
    canonical_id,
    check_alias,
    check_dim_arg,
    check_upsert,
    chunk_from_payload,
    chunks_by_id,
    collection_name,
    delete_conditions,
    hits_from_points,
    page_refs_by_id,
    page_terms_by_id,
    query_vector,
    scored_from_points,
    sparse_signature_to_record,
)
from evorag.tools.stores._protocol import SearchFilter
from evorag.tools.types import Chunk, Hit, PageRef, Scored

from evorag.errors import InternalError, NotFoundError, StoreError, UserError

SCROLL_PAGE = 512


class QdrantStoreBase(ABC):
    """``VectorStore`` over the primitives of one Qdrant client (see the module docstring).

    ``place`` ends messages that name where the index lives ("under /path", "at http://...").
    With ``serialize_writes`` opening, closing and every write hold one lock: an Edge shard is an
    in-process handle that must not be replaced or closed in the middle of an update. A server
    orders concurrent requests itself, so its store passes ``False`` and writes do not queue.
    """

    backend: str

    def __init__(
        self, alias: str, sparse_encoder: Bm25Encoder, *, place: str, serialize_writes: bool
    ) -> None:
        self.alias = check_alias(alias)
        self.sparse_signature = sparse_encoder.signature
        self.place = place
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if serialize_writes else contextlib.nullcontext()
        )
        self._name: str | None = None
        self._meta: dict = {}

    # -- collections and the alias --------------------------------------------------------------
    def open(self, model_name: str, dim: int, *, activate: bool = True) -> None:
        dim = check_dim_arg(dim)
        name = collection_name(self.alias, model_name)
        with self._lock:
            meta = self._open_collection(name, model_name, dim)
            self._name, self._meta = name, meta
            if meta.get("sparse") is None:
                # Unsigned: made by hand or other tooling, or a server older than 1.16 (no metadata).
                # evorag has only ever had one BM25 encoder, so refusing would lock a sound index;
                # recording makes any later change detectable. Best effort: an old server has
                # nowhere to keep it.
                with contextlib.suppress(StoreError):
                    self._record_sparse()
                self._meta["sparse"] = self.sparse_signature
            if activate:
                self.activate()

    def open_current(self) -> None:
        target = self._alias_target()
        if target is None:
            raise NotFoundError(
                f"no index yet {self.place} (alias {self.alias!r})", hint="index a source first"
            )
        meta = self._collection_meta(target)
        if not meta:
            raise StoreError(
                f"alias {self.alias!r} points at {target}, which has no metadata {self.place}",
                hint="re-index, or restore the collection from a snapshot",
            )
        if "model" not in meta:
            raise StoreError(
                f"collection {target} does not record its embedding model",
                hint="open it with the model name instead",
            )
        self.open(meta["model"], meta["dim"])

    def activate(self) -> None:
        with self._lock:
            self._point_alias(self._require_name())

    def check_sparse(self) -> None:
        with self._lock:
            name = self._require_name()
            recorded = self._meta.get("sparse")
            if sparse_signature_to_record(name, recorded, self.sparse_signature, lambda: self.count() == 0):
                self._record_sparse()

    def _record_sparse(self) -> None:
        self._write_sparse_signature(self._require_name(), self.sparse_signature)
        self._meta = {**self._meta, "sparse": self.sparse_signature}

    def info(self) -> dict:
        name = self._require_name()
        return {
            "backend": self.backend,
            "collection": name,
            "alias": self.alias,
            "active": self._alias_target() == name,
            "model": self._meta.get("model"),
            "dim": self._meta.get("dim"),
            "sparse": self._meta.get("sparse"),
            "points": self.count(),
            **self._where_it_lives(name),
        }

    def collections(self) -> list[dict]:
        names = sorted(name for name in self._collection_names() if name.startswith(f"{self.alias}-"))
        active = self._alias_target()
        found = []
        for name in names:
            meta = self._collection_meta(name)
            found.append(
                {
                    "collection": name,
                    "model": meta.get("model"),
                    "dim": meta.get("dim"),
                    "points": self._count_collection(name),
                    "active": name == active,
                }
            )
        return found

    def drop_collection(self, name: str) -> None:
        with self._lock:
            if name in (self._name, self._alias_target()):
                raise UserError(
                    f"collection {name} is in use", hint="open or activate another model's collection first"
                )
            if not name.startswith(f"{self.alias}-") or not self._collection_exists(name):
                raise NotFoundError(f"no collection {name} {self.place}")
            self._drop(name)

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector]) -> None:
        self._require_name()
        matrix = check_upsert(chunks, dense, sparse, int(self._meta["dim"]))
        ids = [canonical_id(chunk.id) for chunk in chunks]
        with self._lock:
            self.check_sparse()
            for start in range(0, len(chunks), UPSERT_BATCH):
                end = start + UPSERT_BATCH
                # Rows become Python lists one batch at a time: 100k x 384 at once is ~1 GB of floats.
                self._upsert_points(
                    ids[start:end], chunks[start:end], matrix[start:end].tolist(), sparse[start:end]
                )

    def delete(self, ids: Sequence[str]) -> None:
        self._require_name()
        if not ids:
            return
        point_ids = [canonical_id(chunk_id) for chunk_id in ids]
        with self._lock:
            self._delete_points(point_ids)

    def delete_where(
        self, *, url: str | None = None, source: str | None = None, content_hash_not: str | None = None,
        version: str | None = None,
    ) -> int:
        selector = delete_conditions(url, source, content_hash_not, version)
        with self._lock:
            self._require_name()
            doomed = self._count(selector)
            if doomed:
                self._delete_matching(selector)
            return doomed

    # -- reads ----------------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(
            self._search(DENSE, self._dense_query(vector), limit, where, with_payload=True)
        )

    def sparse_search(self, vector: SparseVector, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(
            self._search(SPARSE, self._sparse_query(vector), limit, where, with_payload=True)
        )

    def dense_candidates(
        self, vector: np.ndarray, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        return scored_from_points(
            self._search(DENSE, self._dense_query(vector), limit, where, with_payload=False)
        )

    def sparse_candidates(
        self, vector: SparseVector, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        return scored_from_points(
            self._search(SPARSE, self._sparse_query(vector), limit, where, with_payload=False)
        )

    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        self._require_name()
        if not ids:
            return {}
        return chunks_by_id(self._retrieve([canonical_id(chunk_id) for chunk_id in ids]))

    def page_refs(self, ids: Sequence[str]) -> dict[str, PageRef]:
        self._require_name()
        if not ids:
            return {}
        return page_refs_by_id(self._retrieve([canonical_id(chunk_id) for chunk_id in ids], fields=PAGE_FIELDS))

    def page_terms(self, ids: Sequence[str]) -> dict[str, tuple[PageRef, frozenset[int]]]:
        self._require_name()
        if not ids:
            return {}
        # The sparse vector alone: its indices are the chunk's term ids, a fraction of the text's size.
        records = self._retrieve([canonical_id(chunk_id) for chunk_id in ids], fields=PAGE_FIELDS, vectors=[SPARSE])
        return page_terms_by_id(records)

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
        self._require_name()
        prefetches: list[tuple[str, QueryVector]] = []
        fused_weights: list[float] = []
        if weights[0] > 0:
            prefetches.append((DENSE, self._dense_query(dense)))
            fused_weights.append(float(weights[0]))
        sparse_query = self._sparse_query(sparse) if weights[1] > 0 else None
        if sparse_query is not None:
            prefetches.append((SPARSE, sparse_query))
            fused_weights.append(float(weights[1]))
        if limit <= 0 or candidates <= 0 or not prefetches:
            return []
        request = FusedQuery(
            prefetches, fused_weights, Conditions.of(where), candidates=candidates, k=k, limit=limit
        )
        return hits_from_points(self._fused(request))

    def get_page_chunks(self, url: str) -> list[Chunk]:
        with self._reading(None) as target:
            chunks = list(self._scroll(target, Conditions(must={"url": url}), SCROLL_PAGE))
        return sorted(chunks, key=lambda chunk: chunk.position)

    def iter_chunks(self, collection: str | None = None, batch_size: int = 256) -> Iterator[Chunk]:
        with self._reading(collection) as target:
            yield from self._scroll(target, Conditions(), batch_size)

    def iter_points(
        self, where: SearchFilter, batch_size: int = 256
    ) -> Iterator[tuple[Chunk, list[float], SparseVector]]:
        with self._reading(None) as target:
            offset = None
            while True:
                records, offset = self._scroll_page(target, Conditions.of(where), batch_size, offset,
                                                    with_vectors=True)
                for record in records:
                    vectors = record.vector or {}
                    bm25 = vectors.get(SPARSE)
                    sparse = SparseVector(list(bm25.indices), list(bm25.values)) if bm25 else SparseVector([], [])
                    yield chunk_from_payload(record.id, record.payload or {}), list(vectors[DENSE]), sparse
                if offset is None:
                    return

    def count(self, where: SearchFilter | None = None) -> int:
        self._require_name()
        return self._count(Conditions.of(where))

    def sources(self) -> dict[str, int]:
        self._require_name()
        # Deleted values can linger in a keyword index with a zero count.
        return {str(value): int(count) for value, count in self._source_counts() if count > 0}

    def close(self) -> None:
        with self._lock:
            self._name, self._meta = None, {}
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- shared helpers -------------------------------------------------------------------------
    def _require_name(self) -> str:
        name = self._name
        if name is None:
            raise InternalError("the vector store is not open: call open(model_name, dim) first")
        return name

    def _dense_query(self, vector: np.ndarray) -> list[float]:
        self._require_name()
        return query_vector(vector, int(self._meta["dim"]))

    def _sparse_query(self, vector: SparseVector) -> SparseVector | None:
        if not vector.indices:
            return None  # no known term: nothing can match
        self.check_sparse()
        return vector

    def _search(
        self,
        using: str,
        query: QueryVector | None,
        limit: int,
        where: SearchFilter | None,
        *,
        with_payload: bool,
    ) -> list:
        self._require_name()
        if query is None or limit <= 0:
            return []
        return self._nearest(using, query, limit, Conditions.of(where), with_payload=with_payload)

    def _scroll(self, target: object, selector: Conditions, page: int) -> Iterator[Chunk]:
        offset = None
        while True:
            records, offset = self._scroll_page(target, selector, page, offset)
            for record in records:
                yield chunk_from_payload(record.id, record.payload or {})
            if offset is None:
                return

    # -- primitives each backend implements -----------------------------------------------------
    @abstractmethod
    def _open_collection(self, name: str, model_name: str, dim: int) -> dict:
        """Select collection ``name`` (creating it with ``dim`` if new); return its metadata.

        Raises ``ConfigError`` (``check_dim``) when it exists with another dimension.
        """

    @abstractmethod
    def _collection_names(self) -> list[str]:
        """Every collection the backend holds, of any alias."""

    @abstractmethod
    def _collection_meta(self, name: str) -> dict:
        """The recorded metadata of a collection, ``{}`` when it has none."""

    @abstractmethod
    def _collection_exists(self, name: str) -> bool: ...

    @abstractmethod
    def _count_collection(self, name: str) -> int | None:
        """Points in any collection, open or not; None when unknown (held by another process)."""

    @abstractmethod
    def _drop(self, name: str) -> None: ...

    @abstractmethod
    def _alias_target(self) -> str | None:
        """The collection this store's alias points at, if any."""

    @abstractmethod
    def _point_alias(self, name: str) -> None:
        """Point this store's alias at ``name`` in one step (readers never see it missing)."""

    @abstractmethod
    def _write_sparse_signature(self, name: str, signature: str) -> None:
        """Record the BM25 encoder signature in the collection's metadata."""

    @abstractmethod
    def _where_it_lives(self, name: str) -> dict:
        """The backend's location entry of ``info()`` (``path`` or ``location``)."""

    @abstractmethod
    def _upsert_points(
        self, ids: list[str], chunks: Sequence[Chunk], rows: list[list[float]], sparse: Sequence[SparseVector]
    ) -> None:
        """Write one batch of points, durably, before returning."""

    @abstractmethod
    def _delete_points(self, point_ids: list[str]) -> None: ...

    @abstractmethod
    def _delete_matching(self, selector: Conditions) -> None: ...

    @abstractmethod
    def _count(self, selector: Conditions) -> int:
        """Exact number of points of the open collection matching ``selector``."""

    @abstractmethod
    def _retrieve(
        self, point_ids: list[str], fields: list[str] | None = None, vectors: list[str] | None = None
    ) -> list:
        """Records (``.id``, ``.payload``, ``.vector``) of these ids in the open collection.

        ``fields`` names the payload fields to read; None reads the whole payload. ``vectors`` names the
        vectors to read (``.vector`` maps each name to its vector); None reads none.
        """

    @abstractmethod
    def _nearest(
        self, using: str, query: QueryVector, limit: int, selector: Conditions, *, with_payload: bool
    ) -> list:
        """Scored points (``.id``, ``.score``, ``.payload``) nearest to ``query`` in vector ``using``."""

    @abstractmethod
    def _fused(self, fused: FusedQuery) -> list:
        """Scored points (``.id``, ``.score``, ``.payload``) of one hybrid request."""

    @abstractmethod
    def _reading(self, collection: str | None) -> AbstractContextManager[object]:
        """A scroll target for ``collection`` (None: the open one); ``NotFoundError`` if missing."""

    @abstractmethod
    def _scroll_page(
        self, target: object, selector: Conditions, limit: int, offset: object, *, with_vectors: bool = False
    ) -> tuple[list, object]:
        """One page of records and the offset of the next page (None after the last); ``with_vectors`` adds
        ``.vector``, a dict of the dense values (a list) and the BM25 vector (``.indices``, ``.values``)."""

    @abstractmethod
    def _source_counts(self) -> Iterable[tuple[object, int]]:
        """(source, chunk count) of the open collection, from the keyword index."""

    @abstractmethod
    def _release(self) -> None:
        """Free the backend's handles; called under the lock, idempotent."""
