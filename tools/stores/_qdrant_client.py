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

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from evorag.tools.resilience import CircuitBreaker, retry_call
from evorag.tools.sparse import DEFAULT_ENCODER, Bm25Encoder, SparseVector
from evorag.tools.stores._base import QdrantStoreBase
from evorag.tools.stores._common import (
    DENSE,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SPARSE,
    Conditions,
    FusedQuery,
    QueryVector,
    check_dim,
    new_metadata,
)
from evorag.tools.types import Chunk
from qdrant_client import QdrantClient, models

from evorag.errors import EvoragError, InternalError, NotFoundError, StoreError

try:  # qdrant-client wraps connection failures in ResponseHandlingException
    from qdrant_client.http.exceptions import ResponseHandlingException as _HandlingError
except ImportError:  # pragma: no cover
    _HandlingError = ConnectionError
import httpx

_TRANSIENT = (httpx.TransportError, _HandlingError, ConnectionError, TimeoutError)

T = TypeVar("T")
_FACET_LIMIT = 100_000


def _matches(fields: dict[str, str]) -> list[models.FieldCondition]:
    return [
        models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in fields.items()
    ]


def _filter(selector: Conditions) -> models.Filter | None:
    if not selector:
        return None
    must: list = _matches(selector.must)
    if selector.positions_between is not None:
        low, high = selector.positions_between
        must.append(models.FieldCondition(key="position", range=models.Range(gt=low, lt=high)))
    return models.Filter(must=must or None, must_not=_matches(selector.must_not) or None)


def _vector(query: QueryVector) -> list[float] | models.SparseVector:
    if isinstance(query, SparseVector):
        return models.SparseVector(indices=list(query.indices), values=list(query.values))
    return query


class QdrantServerStore(QdrantStoreBase):
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
        self._where = url or location or str(path)
        self._client: QdrantClient | None = None
        super().__init__(alias, sparse_encoder, place=f"at {self._where}", serialize_writes=False)
        self.replication_factor = replication_factor
        self._breaker = CircuitBreaker("qdrant", failure_threshold=3, reset_after=15.0)
        self.local = url is None
        self.backend = "qdrant-local" if self.local else "qdrant-server"
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
    def _open_collection(self, name: str, model_name: str, dim: int) -> dict:
        if self._collection_exists(name):
            meta = self._collection_meta(name)
            check_dim(name, meta, model_name, dim)
            meta.setdefault("model", model_name)
            self._create_payload_indexes(name, only_missing=True)  # fields added since it was created
            return meta
        return self._create_collection(name, model_name, dim)

    def _create_collection(self, name: str, model_name: str, dim: int) -> dict:
        meta = new_metadata(model_name, dim, self.sparse_signature)
        try:
            self._call(
                lambda client: client.create_collection(
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
            if not self._collection_exists(name):
                raise
            meta = self._collection_meta(name)
            check_dim(name, meta, model_name, dim)
            return meta
        self._create_payload_indexes(name)
        return meta

    def _create_payload_indexes(self, name: str, *, only_missing: bool = False) -> None:
        if self.local:  # local mode ignores payload indexes and warns about them
            return
        wanted = {
            **dict.fromkeys(KEYWORD_FIELDS, models.PayloadSchemaType.KEYWORD),
            **dict.fromkeys(INTEGER_FIELDS, models.PayloadSchemaType.INTEGER),
        }
        if only_missing:
            existing = self._call(lambda client: client.get_collection(name), "collection info").payload_schema
            wanted = {field: schema for field, schema in wanted.items() if field not in (existing or {})}
        for field, schema in wanted.items():
            self._call(
                lambda client, field=field, schema=schema: client.create_payload_index(name, field, schema),
                "create payload index",
            )

    def _collection_meta(self, name: str) -> dict:
        """The recorded metadata; on a server without metadata (< 1.16) the dimension from the config."""
        config = self._call(lambda client: client.get_collection(name), "collection info").config
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

    def _collection_exists(self, name: str) -> bool:
        return self._call(lambda client: client.collection_exists(name), "collection lookup")

    def _collection_names(self) -> list[str]:
        listed = self._call(lambda client: client.get_collections(), "collection list").collections
        return [description.name for description in listed]

    def _count_collection(self, name: str) -> int | None:
        return self._call(lambda client: client.count(name, exact=True).count, "count")

    def _drop(self, name: str) -> None:
        self._call(lambda client: client.delete_collection(name), "drop collection")

    def _alias_target(self) -> str | None:
        aliases = self._call(lambda client: client.get_aliases(), "alias lookup").aliases
        return next((entry.collection_name for entry in aliases if entry.alias_name == self.alias), None)

    def _point_alias(self, name: str) -> None:
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
            lambda client: client.update_collection_aliases(change_aliases_operations=operations),
            "alias swap",
        )

    def _write_sparse_signature(self, name: str, signature: str) -> None:
        # The server merges metadata keys: model, dim and created_at stay as they are.
        self._call(
            lambda client: client.update_collection(name, metadata={"sparse": signature}), "metadata update"
        )

    def _where_it_lives(self, name: str) -> dict:
        return {"location": self._where}

    # -- writes ---------------------------------------------------------------------------------
    def _upsert_points(
        self, ids: list[str], chunks: Sequence[Chunk], rows: list[list[float]], sparse: Sequence[SparseVector]
    ) -> None:
        name = self._require_name()
        points = [
            models.PointStruct(
                id=point_id, vector={DENSE: row, SPARSE: _vector(vector)}, payload=chunk.payload()
            )
            for point_id, chunk, row, vector in zip(ids, chunks, rows, sparse, strict=True)
        ]
        self._call(lambda client: client.upsert(name, points=points, wait=True), "upsert")

    def _delete_points(self, point_ids: list[str]) -> None:
        name = self._require_name()
        selector = models.PointIdsList(points=point_ids)
        self._call(lambda client: client.delete(name, points_selector=selector, wait=True), "delete")

    def _delete_matching(self, selector: Conditions) -> None:
        name = self._require_name()
        points = models.FilterSelector(filter=_filter(selector))
        self._call(lambda client: client.delete(name, points_selector=points, wait=True), "delete")

    # -- reads ----------------------------------------------------------------------------------
    def _count(self, selector: Conditions) -> int:
        name = self._require_name()
        return self._call(
            lambda client: client.count(name, count_filter=_filter(selector), exact=True).count, "count"
        )

    def _retrieve(
        self, point_ids: list[str], fields: list[str] | None = None, vectors: list[str] | None = None
    ) -> list:
        name = self._require_name()
        return self._call(
            lambda client: client.retrieve(name, ids=point_ids, with_payload=fields or True,
                                           with_vectors=vectors or False),
            "retrieve",
        )

    def _nearest(
        self, using: str, query: QueryVector, limit: int, selector: Conditions, *, with_payload: bool
    ) -> list:
        name = self._require_name()
        response = self._call(
            lambda client: client.query_points(
                name,
                query=_vector(query),
                using=using,
                limit=limit,
                query_filter=_filter(selector),
                with_payload=with_payload,
            ),
            "search",
        )
        return response.points

    def _fused(self, fused: FusedQuery) -> list:
        name = self._require_name()
        native = _filter(fused.selector)
        prefetches = [
            models.Prefetch(query=_vector(query), using=using, limit=fused.candidates, filter=native)
            for using, query in fused.prefetches
        ]
        # Weighted RRF needs Qdrant >= 1.17 on a server.
        fusion = models.RrfQuery(rrf=models.Rrf(k=fused.k, weights=fused.weights))
        response = self._call(
            lambda client: client.query_points(
                name,
                prefetch=prefetches,
                query=fusion,
                limit=fused.limit,
                query_filter=native,
                with_payload=True,
            ),
            "hybrid search",
        )
        return response.points

    @contextmanager
    def _reading(self, collection: str | None) -> Iterator[str]:
        name = collection or self._require_name()
        if collection is not None and not self._collection_exists(name):
            raise NotFoundError(f"no collection {name} {self.place}")
        yield name

    def _scroll_page(
        self, target: object, selector: Conditions, limit: int, offset: object, *, with_vectors: bool = False
    ) -> tuple[list, object]:
        native = _filter(selector)
        return self._call(
            lambda client: client.scroll(
                str(target),
                scroll_filter=native,
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            ),
            "scroll",
        )

    def _source_counts(self) -> Iterable[tuple[object, int]]:
        name = self._require_name()
        response = self._call(
            lambda client: client.facet(name, "source", limit=_FACET_LIMIT, exact=True), "facet"
        )
        return [(hit.value, hit.count) for hit in response.hits]

    # -- maintenance ----------------------------------------------------------------------------
    def optimize(self) -> None:
        """Nothing to do: a server builds its indexes in the background; local mode has none."""
        self._require_name()

    def flush(self) -> None:
        """Nothing to do: every write already waited for the server (or local file) to apply it."""
        self._require_name()

    def _release(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client.close()

    # -- helpers --------------------------------------------------------------------------------
    def _call(self, operation: Callable[[QdrantClient], T], what: str) -> T:
        client = self._client
        if client is None:
            raise InternalError("the vector store is closed")
        try:
            if self.local:
                return operation(client)
            # A server can blip (restart, leader change): retry transport errors with backoff first.
            return retry_call(
                lambda: operation(client), retry_on=_TRANSIENT, attempts=3, breaker=self._breaker
            )
        except EvoragError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx, grpc, UnexpectedResponse, ValueError (local mode)
            raise StoreError(
                f"Qdrant {what} failed at {self._where}: {exc}",
                hint="check that the Qdrant server is up and EVORAG_QDRANT_URL / EVORAG_QDRANT_API_KEY are right",
            ) from None
