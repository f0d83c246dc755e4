"""The embedded store: one Qdrant Edge shard per collection, in-process, under a root directory.

Layout::

    <root>/aliases.json                    {"evorag": "evorag-all-minilm-l6-v2-1a2b3c4d"}
    <root>/collections/<name>/meta.json    model, dim, sparse encoder signature
    <root>/collections/<name>/shard/       the Qdrant Edge shard (segments + WAL)

Durability: every write goes through the shard's write-ahead log before ``update`` returns, so
once ``upsert``/``delete`` return the change survives the process being killed (``kill -9``): the
WAL is replayed on the next open (tested). ``flush()`` also writes the segments themselves, which
keeps replay short; it is what to call before a backup or a planned shutdown.

Indexing: new points land in a plain (brute-force) segment, exact and fast up to tens of thousands
of chunks. ``optimize()`` builds HNSW and the sparse inverted index over them; it blocks the whole
process while it runs (the extension holds the GIL; about 45 s per 100k 384-d chunks on 2 cores),
so call it after a bulk ingest, not per page.

One process at a time: the shard's WAL is locked, so a second process opening the same collection
gets a ``StoreError`` telling it so. Share one index between processes through a Qdrant server
(``EVORAG_QDRANT_URL``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import qdrant_edge as qe
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

from evorag.errors import InternalError, NotFoundError, StoreError, UserError

T = TypeVar("T")
_FACET_LIMIT = 100_000


def _write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"cannot read {path}: {exc}", hint="restore it from a snapshot or delete it"
        ) from None


def _matches(fields: dict[str, str]) -> list[qe.FieldCondition]:
    return [qe.FieldCondition(key, match=qe.MatchValue(value)) for key, value in fields.items()]


def _filter(selector: Conditions) -> qe.Filter | None:
    if not selector:
        return None
    must = _matches(selector.must)
    if selector.positions_between is not None:
        low, high = selector.positions_between
        must.append(qe.FieldCondition("position", range=qe.RangeFloat(gt=float(low), lt=float(high))))
    return qe.Filter(must=must or None, must_not=_matches(selector.must_not) or None)


def _vector(query: QueryVector) -> list[float] | qe.SparseVector:
    if isinstance(query, SparseVector):
        return qe.SparseVector(list(query.indices), list(query.values))
    return query


class EdgeStore(QdrantStoreBase):
    """``VectorStore`` on Qdrant Edge shards under ``root`` (``settings.qdrant_path``).

    ``hnsw_ef`` is the HNSW search breadth once ``optimize()`` has built the graph (Qdrant uses at
    least the requested limit). On 100k embedding-like vectors, recall@10 against exact search was
    0.93 / 0.98 / 0.99 at ef 128 / 256 / 400, for 0.8 / 1.2 / 1.7 ms per 100-candidate query (p50). ``search_threads`` sizes the
    shard's search pool: 1 keeps a query on one core, which cut the hybrid p95 at 100k chunks by a
    quarter on a loaded 2-core machine (no pool hand-offs); more only helps with many segments.

    ``sparse_encoder`` is the BM25 encoder callers encode documents and queries with; a collection
    built by another one refuses writes and BM25 queries (see ``check_sparse``).
    """

    backend = "qdrant-edge"

    def __init__(
        self,
        root: str | Path,
        alias: str = "evorag",
        *,
        hnsw_ef: int = 256,
        search_threads: int = 1,
        sparse_encoder: Bm25Encoder = DEFAULT_ENCODER,
    ) -> None:
        self.root = Path(root)
        super().__init__(alias, sparse_encoder, place=f"under {self.root}", serialize_writes=True)
        self._search_params = qe.SearchParams(hnsw_ef=hnsw_ef)
        self._search_threads = search_threads
        self._shard: qe.EdgeShard | None = None

    # -- collections and the alias --------------------------------------------------------------
    @property
    def _collections_dir(self) -> Path:
        return self.root / "collections"

    def _collection_dir(self, name: str) -> Path:
        return self._collections_dir / name

    @contextmanager
    def _aliases(self) -> Iterator[dict]:
        """Read-modify-write of aliases.json under an exclusive file lock (shared by all aliases)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".aliases.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            aliases = _read_json(self.root / "aliases.json")
            before = dict(aliases)
            yield aliases
            if aliases != before:
                _write_json_atomically(self.root / "aliases.json", aliases)

    def _alias_target(self) -> str | None:
        return _read_json(self.root / "aliases.json").get(self.alias)

    def _point_alias(self, name: str) -> None:
        with self._aliases() as aliases:
            aliases[self.alias] = name

    def _open_collection(self, name: str, model_name: str, dim: int) -> dict:
        # The shard in use is released first: only one handle per collection can hold its WAL.
        self._release()
        self._name, self._meta = None, {}
        directory = self._collection_dir(name)
        meta_path = directory / "meta.json"
        meta = _read_json(meta_path)
        if meta:
            check_dim(name, meta, model_name, dim)
        else:
            # Metadata first: a crash before the shard exists leaves a collection that opens fine.
            meta = new_metadata(model_name, dim, self.sparse_signature)
            directory.mkdir(parents=True, exist_ok=True)
            _write_json_atomically(meta_path, meta)
        self._shard = self._load_or_create(directory / "shard", dim)
        return meta

    def _write_sparse_signature(self, name: str, signature: str) -> None:
        _write_json_atomically(self._collection_dir(name) / "meta.json", {**self._meta, "sparse": signature})

    def _load_or_create(self, shard_dir: Path, dim: int) -> qe.EdgeShard:
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # Payload in the page cache: fetching 2x100 candidates' text from cold mmap
            # doubled the p95 of a hybrid query at 100k chunks.
            payload_memory=qe.Memory.Cached,
            max_search_threads=self._search_threads,
        )
        try:
            if (shard_dir / "edge_config.json").exists():
                # The config is checked against the shard (same vectors) and updates its settings.
                shard = qe.EdgeShard.load(str(shard_dir), config)
            else:
                shard = qe.EdgeShard.create(str(shard_dir), config)
        except Exception as exc:  # noqa: BLE001 - the extension raises bare Exception
            if "WouldBlock" in str(exc):
                raise StoreError(
                    f"the index at {shard_dir} is in use by another process",
                    hint="stop the other evorag process, or share a Qdrant server via EVORAG_QDRANT_URL",
                ) from None
            raise StoreError(f"cannot open the index at {shard_dir}: {exc}") from None
        try:
            indexed = set(shard.info().payload_schema)
            wanted = {
                **dict.fromkeys(KEYWORD_FIELDS, qe.PayloadSchemaType.Keyword),
                **dict.fromkeys(INTEGER_FIELDS, qe.PayloadSchemaType.Integer),
            }
            for field, schema in wanted.items():
                if field not in indexed:
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
        except Exception as exc:  # noqa: BLE001 - the extension raises bare Exception
            shard.close()
            raise StoreError(f"cannot create payload indexes in {shard_dir}: {exc}") from None
        return shard

    def _where_it_lives(self, name: str) -> dict:
        return {"path": str(self._collection_dir(name))}

    def _collection_names(self) -> list[str]:
        if not self._collections_dir.is_dir():
            return []
        return [directory.name for directory in self._collections_dir.iterdir()]

    def _collection_meta(self, name: str) -> dict:
        return _read_json(self._collection_dir(name) / "meta.json")

    def _collection_exists(self, name: str) -> bool:
        return self._collection_dir(name).is_dir()

    def _count_collection(self, name: str) -> int | None:
        if name == self._name:
            return self.count()
        # Not open here: read its shard briefly, unless another process holds it (unknown, None).
        shard_dir = self._collection_dir(name) / "shard"
        if not (shard_dir / "edge_config.json").exists():
            return 0
        try:
            shard = qe.EdgeShard.load(str(shard_dir))
        except Exception:  # noqa: BLE001 - held by another process, or unreadable: unknown
            return None
        try:
            return shard.count(qe.CountRequest(exact=True))
        finally:
            shard.close()

    def _drop(self, name: str) -> None:
        shutil.rmtree(self._collection_dir(name))

    # -- writes ---------------------------------------------------------------------------------
    def _upsert_points(
        self, ids: list[str], chunks: Sequence[Chunk], rows: list[list[float]], sparse: Sequence[SparseVector]
    ) -> None:
        shard = self._require()
        points = [
            qe.Point(point_id, {DENSE: row, SPARSE: _vector(vector)}, chunk.payload())
            for point_id, chunk, row, vector in zip(ids, chunks, rows, sparse, strict=True)
        ]
        self._call(lambda: shard.update(qe.UpdateOperation.upsert_points(points)), "upsert")

    def _delete_points(self, point_ids: list[str]) -> None:
        shard = self._require()
        self._call(lambda: shard.update(qe.UpdateOperation.delete_points(point_ids)), "delete")

    def _delete_matching(self, selector: Conditions) -> None:
        shard = self._require()
        operation = qe.UpdateOperation.delete_points_by_filter(_filter(selector))
        self._call(lambda: shard.update(operation), "delete")

    # -- reads ----------------------------------------------------------------------------------
    def _count(self, selector: Conditions) -> int:
        shard = self._require()
        return self._call(lambda: shard.count(qe.CountRequest(exact=True, filter=_filter(selector))), "count")

    def _retrieve(
        self, point_ids: list[str], fields: list[str] | None = None, vectors: list[str] | None = None
    ) -> list:
        shard = self._require()
        return self._call(lambda: shard.retrieve(point_ids, fields or True, vectors or False), "retrieve")

    def _nearest(
        self, using: str, query: QueryVector, limit: int, selector: Conditions, *, with_payload: bool
    ) -> list:
        shard = self._require()
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(_vector(query), using=using),
            filter=_filter(selector),
            params=self._search_params,
            with_payload=with_payload,
        )
        return self._call(lambda: shard.query(request), "search")

    def _fused(self, fused: FusedQuery) -> list:
        shard = self._require()
        native = _filter(fused.selector)
        request = qe.QueryRequest(
            limit=fused.limit,
            prefetches=[
                qe.Prefetch(
                    limit=fused.candidates,
                    query=qe.Query.Nearest(_vector(query), using=using),
                    # hnsw_ef only means something to the dense HNSW graph.
                    params=self._search_params if using == DENSE else None,
                    filter=native,
                )
                for using, query in fused.prefetches
            ],
            query=qe.Fusion.Rrf(k=fused.k, weights=fused.weights),
            filter=native,
            with_payload=True,
        )
        return self._call(lambda: shard.query(request), "hybrid search")

    @contextmanager
    def _reading(self, collection: str | None) -> Iterator[qe.EdgeShard]:
        if collection is None or collection == self._name:
            yield self._require()
            return
        shard_dir = self._collection_dir(collection) / "shard"
        if not (shard_dir / "edge_config.json").exists():
            raise NotFoundError(f"no collection {collection} {self.place}")
        shard = self._call(lambda: qe.EdgeShard.load(str(shard_dir)), f"opening {collection}")
        try:
            yield shard
        finally:
            shard.close()

    def _scroll_page(
        self, target: object, selector: Conditions, limit: int, offset: object, *, with_vectors: bool = False
    ) -> tuple[list, object]:
        assert isinstance(target, qe.EdgeShard)
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(selector), with_payload=True, with_vector=with_vectors
        )
        return self._call(lambda: target.scroll(request), "scroll")

    def _source_counts(self) -> Iterable[tuple[object, int]]:
        shard = self._require()
        response = self._call(
            lambda: shard.facet(qe.FacetRequest("source", limit=_FACET_LIMIT, exact=True)), "facet"
        )
        return [(hit.value, hit.count) for hit in response]

    # -- maintenance ----------------------------------------------------------------------------
    def optimize(self) -> None:
        with self._lock:
            shard = self._require()
            self._call(shard.optimize, "optimize")

    def flush(self) -> None:
        with self._lock:
            shard = self._require()
            self._call(shard.flush, "flush")

    def snapshot(self, dest_dir: str | Path) -> Path:
        """Copy the open collection (flushed, writes paused) and an alias file into ``dest_dir``.

        Restore by copying ``dest_dir``'s ``collections/`` and ``aliases.json`` into a root.
        Raises ``UserError`` if ``dest_dir`` already holds that collection.
        """
        dest = Path(dest_dir)
        with self._lock:
            name = self._require_name()
            target = dest / "collections" / name
            if target.exists():
                raise UserError(f"{target} already exists", hint="choose an empty snapshot directory")
            self.flush()
            shutil.copytree(self._collection_dir(name), target)
            _write_json_atomically(dest / "aliases.json", {self.alias: name})
        return dest

    def _release(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            try:
                shard.flush()
            finally:
                shard.close()

    # -- helpers --------------------------------------------------------------------------------
    def _require(self) -> qe.EdgeShard:
        """The open shard, taken once per operation: ``open``/``close`` may swap it meanwhile."""
        shard = self._shard
        if shard is None:
            raise InternalError("the vector store is not open: call open(model_name, dim) first")
        return shard

    def _call(self, operation: Callable[[], T], what: str) -> T:
        try:
            return operation()
        except Exception as exc:  # noqa: BLE001 - the extension raises bare Exception with Qdrant's message
            raise StoreError(f"qdrant-edge {what} failed in {self._name}: {exc}") from None
