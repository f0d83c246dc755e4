"""The store behind ``qdrant-client``: a Qdrant server or cluster (``EVORAG_QDRANT_URL``).

``location=":memory:"`` or ``path=`` run qdrant-client's local mode instead: the same code path,
testable without a server, but brute force (about 350 ms per hybrid query at 10k points) and not
meant past about 20k points. Use ``EdgeStore`` for an embedded index.

Durability: writes are sent with ``wait=True``, so when ``upsert`` returns the server has applied
them through its WAL. In local mode with ``path=`` qdrant-client persists each write before
returning; ``":memory:"`` keeps nothing.

The model name, dimension and BM25 encoder are recorded in the collection's metadata (Qdrant >=
1.16). On an older server the metadata is absent: the dimension is read from the vector config
instead, and the BM25 encoder cannot be checked.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Self, TypeVar

import numpy as np
from evorag.tools.resilience import CircuitBreaker, retry_call
from evorag.tools.sparse import DEFAULT_ENCODER, Bm25Encoder, SparseVector
from evorag.tools.stores._common import (
    DENSE,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SPARSE,
    UPSERT_BATCH,
    canonical_id,
    check_alias,
    check_dim,
    check_dim_arg,
    check_upsert,
    chunk_from_payload,
    chunks_by_id,
    collection_name,
    delete_conditions,
    hits_from_points,
    new_metadata,
    query_vector,
    scored_from_points,
    sparse_signature_to_record,
)
from evorag.tools.stores._protocol import SearchFilter
from evorag.tools.types import Chunk, Hit, Scored
from qdrant_client import QdrantClient, models

from evorag.errors import EvoragError, InternalError, NotFoundError, StoreError, UserError

try:  # qdrant-client wraps connection failures in ResponseHandlingException
    from qdrant_client.http.exceptions import ResponseHandlingException as _HandlingError
except ImportError:  # pragma: no cover
    _HandlingError = ConnectionError
import httpx

_TRANSIENT = (httpx.TransportError, _HandlingError, ConnectionError, TimeoutError)

T = TypeVar("T")
_SCROLL_PAGE = 512
_FACET_LIMIT = 100_000


def _matches(fields: dict[str, str]) -> list[models.FieldCondition]:
    return [models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in fields.items()]


def _match_filter(must: dict[str, str], must_not: dict[str, str] | None = None) -> models.Filter | None:
    if not must and not must_not:
        return None
    return models.Filter(must=_matches(must) or None, must_not=_matches(must_not or {}) or None)


def _search_filter(where: SearchFilter | None) -> models.Filter | None:
    if where is None:
        return None
    must: list = _matches(where.conditions())
    if where.positions_between is not None:
        low, high = where.positions_between
        must.append(models.FieldCondition(key="position", range=models.Range(gt=low, lt=high)))
    return models.Filter(must=must) if must else None


class QdrantServerStore:
    """``VectorStore`` through qdrant-client: give ``url`` (+ ``api_key``), or ``location``/``path``.

    ``sparse_encoder`` is the BM25 encoder callers encode documents and queries with; a collection
    built by another one refuses writes and BM25 queries (see ``check_sparse``).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        location: str | None = None,
        path: str | None = None,
        alias: str = "evorag",
        timeout: float = 30.0,
        replication_factor: int = 1,
        sparse_encoder: Bm25Encoder = DEFAULT_ENCODER,
    ) -> None:
        if sum(option is not None for option in (url, location, path)) != 1:
            raise InternalError("QdrantServerStore needs exactly one of url, location or path")
        self.alias = check_alias(alias)
        self.sparse_signature = sparse_encoder.signature
        self.replication_factor = replication_factor
        self._breaker = CircuitBreaker("qdrant", failure_threshold=3, reset_after=15.0)
        self.local = url is None
        self.backend = "qdrant-local" if self.local else "qdrant-server"
        self._where = url or location or str(path)
        self._name: str | None = None
        self._meta: dict = {}
        try:
            if url is not None:
                # No version check: it is a network call at construction; failures surface on open().
                self._client = QdrantClient(
                    url=url, api_key=api_key, timeout=int(timeout), check_compatibility=False
                )
            else:
                self._client = QdrantClient(location=location, path=path)
        except Exception as exc:  # noqa: BLE001 - qdrant-client raises many unrelated types
            raise StoreError(
                f"cannot open Qdrant at {self._where}: {exc}",
                hint="check EVORAG_QDRANT_URL, or unset it to use the embedded index",
            ) from None

    # -- collections and the alias --------------------------------------------------------------
    def open(self, model_name: str, dim: int, *, activate: bool = True) -> None:
        dim = check_dim_arg(dim)
        name = collection_name(self.alias, model_name)
        if self._call(lambda: self._client.collection_exists(name), "collection lookup"):
            meta = self._recorded_meta(name)
            check_dim(name, meta, model_name, dim)
            meta.setdefault("model", model_name)
        else:
            meta = self._create_collection(name, model_name, dim)
        self._name, self._meta = name, meta
        if meta.get("sparse") is None:
            # Unsigned: a server older than 1.16 (no metadata), or a collection made by other tooling.
            # evorag has only ever had one BM25 encoder, so refusing would lock a sound index; recording
            # makes any later change detectable. Best effort: an old server has nowhere to keep it.
            with contextlib.suppress(StoreError):
                self._record_sparse()
            self._meta["sparse"] = self.sparse_signature
        if activate:
            self.activate()

    def _create_collection(self, name: str, model_name: str, dim: int) -> dict:
        meta = new_metadata(model_name, dim, self.sparse_signature)
        try:
            self._call(
                lambda: self._client.create_collection(
                    name,
                    vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    metadata=meta,
                    # On a cluster each shard lives on this many nodes; local mode ignores it.
                    **({} if self.local else {"replication_factor": self.replication_factor}),
                ),
                "create collection",
            )
        except StoreError:
            # Another process sharing the server may have created it first: use theirs.
            if not self._call(lambda: self._client.collection_exists(name), "collection lookup"):
                raise
            meta = self._recorded_meta(name)
            check_dim(name, meta, model_name, dim)
            return meta
        if not self.local:  # local mode ignores payload indexes and warns about them
            wanted = {**dict.fromkeys(KEYWORD_FIELDS, models.PayloadSchemaType.KEYWORD),
                      **dict.fromkeys(INTEGER_FIELDS, models.PayloadSchemaType.INTEGER)}
            for field, schema in wanted.items():
                self._call(
                    lambda field=field, schema=schema: self._client.create_payload_index(name, field, schema),
                    "create payload index",
                )
        return meta

    def _recorded_meta(self, name: str) -> dict:
        config = self._call(lambda: self._client.get_collection(name), "collection info").config
        meta = dict(config.metadata or {})
        if "dim" not in meta:
            vectors = config.params.vectors
            params = vectors.get(DENSE) if isinstance(vectors, dict) else None
            if params is None:
                raise StoreError(
                    f"collection {name} has no {DENSE!r} vector: it was not created by evorag",
                    hint=f"use another alias than {self.alias!r}",
                )
            meta["dim"] = params.size
        return meta

    def _alias_target(self) -> str | None:
        aliases = self._call(lambda: self._client.get_aliases(), "alias lookup").aliases
        return next((entry.collection_name for entry in aliases if entry.alias_name == self.alias), None)

    def open_current(self) -> None:
        target = self._alias_target()
        if target is None:
            raise NotFoundError(
                f"no index yet at {self._where} (alias {self.alias!r})", hint="index a source first"
            )
        meta = self._recorded_meta(target)
        if "model" not in meta:
            raise StoreError(
                f"collection {target} does not record its embedding model",
                hint="open it with the model name instead",
            )
        self.open(meta["model"], meta["dim"])

    def activate(self) -> None:
        name = self._require_name()
        operations: list = []
        if self._alias_target() is not None:
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=name, alias_name=self.alias)
            )
        )
        # One request: the server swaps the alias atomically, searches never see it missing.
        self._call(
            lambda: self._client.update_collection_aliases(change_aliases_operations=operations), "alias swap"
        )

    def check_sparse(self) -> None:
        name = self._require_name()
        recorded = self._meta.get("sparse")
        if sparse_signature_to_record(name, recorded, self.sparse_signature, lambda: self.count() == 0):
            self._record_sparse()

    def _record_sparse(self) -> None:
        name, signature = self._require_name(), self.sparse_signature
        # The server merges metadata keys: model, dim and created_at stay as they are.
        self._call(
            lambda: self._client.update_collection(name, metadata={"sparse": signature}), "metadata update"
        )
        self._meta = {**self._meta, "sparse": signature}

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
            "location": self._where,
        }

    def collections(self) -> list[dict]:
        listed = self._call(lambda: self._client.get_collections(), "collection list").collections
        active = self._alias_target()
        found = []
        for description in sorted(listed, key=lambda item: item.name):
            name = description.name
            if not name.startswith(f"{self.alias}-"):
                continue
            meta = self._recorded_meta(name)
            points = self._call(lambda name=name: self._client.count(name, exact=True).count, "count")
            found.append(
                {
                    "collection": name,
                    "model": meta.get("model"),
                    "dim": meta.get("dim"),
                    "points": points,
                    "active": name == active,
                }
            )
        return found

    def drop_collection(self, name: str) -> None:
        if name in (self._name, self._alias_target()):
            raise UserError(
                f"collection {name} is in use", hint="open or activate another model's collection first"
            )
        if not name.startswith(f"{self.alias}-") or not self._call(
            lambda: self._client.collection_exists(name), "collection lookup"
        ):
            raise NotFoundError(f"no collection {name} at {self._where}")
        self._call(lambda: self._client.delete_collection(name), "drop collection")

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector]) -> None:
        name = self._require_name()
        matrix = check_upsert(chunks, dense, sparse, int(self._meta["dim"]))
        ids = [canonical_id(chunk.id) for chunk in chunks]
        self.check_sparse()
        for start in range(0, len(chunks), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            points = [
                models.PointStruct(
                    id=point_id,
                    vector={
                        DENSE: row,
                        SPARSE: models.SparseVector(indices=list(vector.indices), values=list(vector.values)),
                    },
                    payload=chunk.payload(),
                )
                for point_id, chunk, row, vector in zip(
                    ids[start:end],
                    chunks[start:end],
                    matrix[start:end].tolist(),
                    sparse[start:end],
                    strict=True,
                )
            ]
            self._call(lambda points=points: self._client.upsert(name, points=points, wait=True), "upsert")

    def delete(self, ids: Sequence[str]) -> None:
        name = self._require_name()
        if not ids:
            return
        point_ids = [canonical_id(chunk_id) for chunk_id in ids]
        self._call(
            lambda: self._client.delete(
                name, points_selector=models.PointIdsList(points=point_ids), wait=True
            ),
            "delete",
        )

    def delete_where(
        self, *, url: str | None = None, source: str | None = None, content_hash_not: str | None = None
    ) -> int:
        name = self._require_name()
        selector = _match_filter(*delete_conditions(url, source, content_hash_not))
        doomed = self._call(
            lambda: self._client.count(name, count_filter=selector, exact=True).count, "count"
        )
        if doomed:
            self._call(
                lambda: self._client.delete(
                    name, points_selector=models.FilterSelector(filter=selector), wait=True
                ),
                "delete",
            )
        return doomed

    # -- reads ----------------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(self._nearest(self._dense_query(vector), DENSE, limit, where, with_payload=True))

    def sparse_search(self, vector: SparseVector, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(self._nearest(self._sparse_query(vector), SPARSE, limit, where, with_payload=True))

    def dense_candidates(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Scored]:
        return scored_from_points(
            self._nearest(self._dense_query(vector), DENSE, limit, where, with_payload=False)
        )

    def sparse_candidates(
        self, vector: SparseVector, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        return scored_from_points(
            self._nearest(self._sparse_query(vector), SPARSE, limit, where, with_payload=False)
        )

    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        name = self._require_name()
        if not ids:
            return {}
        point_ids = [canonical_id(chunk_id) for chunk_id in ids]
        records = self._call(
            lambda: self._client.retrieve(name, ids=point_ids, with_payload=True, with_vectors=False), "retrieve"
        )
        return chunks_by_id(records)

    def _dense_query(self, vector: np.ndarray) -> list[float]:
        self._require_name()
        return query_vector(vector, int(self._meta["dim"]))

    def _sparse_query(self, vector: SparseVector) -> models.SparseVector | None:
        if not vector.indices:
            return None  # no known term: nothing can match
        self.check_sparse()
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))

    def _nearest(
        self, query: object, using: str, limit: int, where: SearchFilter | None, *, with_payload: bool
    ) -> list:
        name = self._require_name()
        if query is None or limit <= 0:
            return []
        response = self._call(
            lambda: self._client.query_points(
                name,
                query=query,
                using=using,
                limit=limit,
                query_filter=_search_filter(where),
                with_payload=with_payload,
            ),
            "search",
        )
        return response.points

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
        name = self._require_name()
        selector = _search_filter(where)
        prefetches, fused_weights = [], []
        if weights[0] > 0:
            prefetches.append(
                models.Prefetch(query=self._dense_query(dense), using=DENSE, limit=candidates, filter=selector)
            )
            fused_weights.append(float(weights[0]))
        sparse_query = self._sparse_query(sparse) if weights[1] > 0 else None
        if sparse_query is not None:
            prefetches.append(
                models.Prefetch(query=sparse_query, using=SPARSE, limit=candidates, filter=selector)
            )
            fused_weights.append(float(weights[1]))
        if limit <= 0 or candidates <= 0 or not prefetches:
            return []
        # Weighted RRF needs Qdrant >= 1.17 on a server.
        fusion = models.RrfQuery(rrf=models.Rrf(k=k, weights=fused_weights))
        response = self._call(
            lambda: self._client.query_points(
                name, prefetch=prefetches, query=fusion, limit=limit, query_filter=selector, with_payload=True
            ),
            "hybrid search",
        )
        return hits_from_points(response.points)

    def _scroll(self, name: str, selector: models.Filter | None, page: int) -> Iterator[Chunk]:
        offset = None
        while True:
            records, offset = self._call(
                lambda offset=offset: self._client.scroll(
                    name,
                    scroll_filter=selector,
                    limit=page,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                ),
                "scroll",
            )
            for record in records:
                yield chunk_from_payload(record.id, record.payload or {})
            if offset is None:
                return

    def get_page_chunks(self, url: str) -> list[Chunk]:
        name = self._require_name()
        chunks = list(self._scroll(name, _match_filter({"url": url}), _SCROLL_PAGE))
        return sorted(chunks, key=lambda chunk: chunk.position)

    def iter_chunks(self, collection: str | None = None, batch_size: int = 256) -> Iterator[Chunk]:
        name = collection or self._require_name()
        if not self._call(lambda: self._client.collection_exists(name), "collection lookup"):
            raise NotFoundError(f"no collection {name} at {self._where}")
        yield from self._scroll(name, None, batch_size)

    def count(self, where: SearchFilter | None = None) -> int:
        name = self._require_name()
        return self._call(
            lambda: self._client.count(name, count_filter=_search_filter(where), exact=True).count, "count"
        )

    def sources(self) -> dict[str, int]:
        name = self._require_name()
        response = self._call(
            lambda: self._client.facet(name, "source", limit=_FACET_LIMIT, exact=True), "facet"
        )
        return {str(hit.value): int(hit.count) for hit in response.hits if hit.count > 0}

    # -- maintenance ----------------------------------------------------------------------------
    def optimize(self) -> None:
        """Nothing to do: a server builds its indexes in the background; local mode has none."""
        self._require_name()

    def flush(self) -> None:
        """Nothing to do: every write already waited for the server (or local file) to apply it."""
        self._require_name()

    def close(self) -> None:
        self._name, self._meta = None, {}
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------------
    def _require_name(self) -> str:
        if self._name is None or self._client is None:
            raise InternalError("the vector store is not open: call open(model_name, dim) first")
        return self._name

    def _call(self, operation: Callable[[], T], what: str) -> T:
        if self._client is None:
            raise InternalError("the vector store is closed")
        try:
            if self.local:
                return operation()
            # A server can blip (restart, leader change): retry transport errors with backoff first.
            return retry_call(operation, retry_on=_TRANSIENT, attempts=3, breaker=self._breaker)
        except EvoragError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx, grpc, UnexpectedResponse, ValueError (local mode)
            raise StoreError(
                f"Qdrant {what} failed at {self._where}: {exc}",
                hint="check that the Qdrant server is up and EVORAG_QDRANT_URL / EVORAG_QDRANT_API_KEY are right",
            ) from None
