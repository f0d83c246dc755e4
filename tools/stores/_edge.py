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
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
import qdrant_edge as qe
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

from evorag.errors import InternalError, NotFoundError, StoreError, UserError

T = TypeVar("T")
_SCROLL_PAGE = 512
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


def _match_filter(must: dict[str, str], must_not: dict[str, str] | None = None) -> qe.Filter | None:
    if not must and not must_not:
        return None
    return qe.Filter(must=_matches(must) or None, must_not=_matches(must_not or {}) or None)


def _search_filter(where: SearchFilter | None) -> qe.Filter | None:
    if where is None:
        return None
    must = _matches(where.conditions())
    if where.positions_between is not None:
        low, high = where.positions_between
        must.append(qe.FieldCondition("position", range=qe.RangeFloat(gt=float(low), lt=float(high))))
    return qe.Filter(must=must) if must else None


class EdgeStore:
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
        self.alias = check_alias(alias)
        self.sparse_signature = sparse_encoder.signature
        self._search_params = qe.SearchParams(hnsw_ef=hnsw_ef)
        self._search_threads = search_threads
        self._lock = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._name: str | None = None
        self._meta: dict = {}

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

    def open(self, model_name: str, dim: int, *, activate: bool = True) -> None:
        dim = check_dim_arg(dim)
        name = collection_name(self.alias, model_name)
        with self._lock:
            self._close_shard()
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
            self._name, self._meta = name, meta
            if meta.get("sparse") is None:
                # Unsigned (made by hand or by other tooling): evorag has only ever had one BM25 encoder,
                # so refusing would lock a sound index; recording makes any later change detectable.
                self._record_sparse()
            if activate:
                self.activate()

    def open_current(self) -> None:
        target = self._alias_target()
        if target is None:
            raise NotFoundError(
                f"no index yet under {self.root} (alias {self.alias!r})", hint="index a source first"
            )
        meta = _read_json(self._collection_dir(target) / "meta.json")
        if not meta:
            raise StoreError(
                f"alias {self.alias!r} points at {target}, which has no metadata under {self.root}",
                hint="re-index, or restore the collection from a snapshot",
            )
        self.open(meta["model"], meta["dim"])

    def activate(self) -> None:
        with self._lock:
            name = self._require_name()
            with self._aliases() as aliases:
                aliases[self.alias] = name

    def check_sparse(self) -> None:
        with self._lock:
            name = self._require_name()
            recorded = self._meta.get("sparse")
            if sparse_signature_to_record(name, recorded, self.sparse_signature, lambda: self.count() == 0):
                self._record_sparse()

    def _record_sparse(self) -> None:
        meta = {**self._meta, "sparse": self.sparse_signature}
        _write_json_atomically(self._collection_dir(self._require_name()) / "meta.json", meta)
        self._meta = meta

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
            wanted = {**dict.fromkeys(KEYWORD_FIELDS, qe.PayloadSchemaType.Keyword),
                      **dict.fromkeys(INTEGER_FIELDS, qe.PayloadSchemaType.Integer)}
            for field, schema in wanted.items():
                if field not in indexed:
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
        except Exception as exc:  # noqa: BLE001 - the extension raises bare Exception
            shard.close()
            raise StoreError(f"cannot create payload indexes in {shard_dir}: {exc}") from None
        return shard

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
            "path": str(self._collection_dir(name)),
        }

    def collections(self) -> list[dict]:
        if not self._collections_dir.is_dir():
            return []
        active = self._alias_target()
        found = []
        for directory in sorted(self._collections_dir.iterdir()):
            if not directory.name.startswith(f"{self.alias}-"):
                continue
            meta = _read_json(directory / "meta.json")
            found.append(
                {
                    "collection": directory.name,
                    "model": meta.get("model"),
                    "dim": meta.get("dim"),
                    "points": self.count() if directory.name == self._name else self._count_closed(directory),
                    "active": directory.name == active,
                }
            )
        return found

    def _count_closed(self, directory: Path) -> int | None:
        """Points of a collection that is not open, or None if another process holds it."""
        if not (directory / "shard" / "edge_config.json").exists():
            return 0
        try:
            shard = qe.EdgeShard.load(str(directory / "shard"))
        except Exception:  # noqa: BLE001 - held by another process, or unreadable: unknown
            return None
        try:
            return shard.count(qe.CountRequest(exact=True))
        finally:
            shard.close()

    def drop_collection(self, name: str) -> None:
        with self._lock:
            if name in (self._name, self._alias_target()):
                raise UserError(
                    f"collection {name} is in use", hint="open or activate another model's collection first"
                )
            directory = self._collection_dir(name)
            if not name.startswith(f"{self.alias}-") or not directory.is_dir():
                raise NotFoundError(f"no collection {name} under {self.root}")
            shutil.rmtree(directory)

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector]) -> None:
        self._require()
        matrix = check_upsert(chunks, dense, sparse, int(self._meta["dim"]))
        ids = [canonical_id(chunk.id) for chunk in chunks]
        with self._lock:
            self.check_sparse()
            shard = self._require()
            for start in range(0, len(chunks), UPSERT_BATCH):
                end = start + UPSERT_BATCH
                # Rows become Python lists one batch at a time: 100k x 384 at once is ~1 GB of floats.
                points = [
                    qe.Point(
                        point_id,
                        {DENSE: row, SPARSE: qe.SparseVector(list(vector.indices), list(vector.values))},
                        chunk.payload(),
                    )
                    for point_id, chunk, row, vector in zip(
                        ids[start:end],
                        chunks[start:end],
                        matrix[start:end].tolist(),
                        sparse[start:end],
                        strict=True,
                    )
                ]
                operation = qe.UpdateOperation.upsert_points(points)
                self._call(lambda op=operation: shard.update(op), "upsert")

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        point_ids = [canonical_id(chunk_id) for chunk_id in ids]
        with self._lock:
            shard = self._require()
            self._call(lambda: shard.update(qe.UpdateOperation.delete_points(point_ids)), "delete")

    def delete_where(
        self, *, url: str | None = None, source: str | None = None, content_hash_not: str | None = None
    ) -> int:
        must, must_not = delete_conditions(url, source, content_hash_not)
        selector = _match_filter(must, must_not)
        with self._lock:
            shard = self._require()
            doomed = self._call(lambda: shard.count(qe.CountRequest(exact=True, filter=selector)), "count")
            if doomed:
                self._call(
                    lambda: shard.update(qe.UpdateOperation.delete_points_by_filter(selector)), "delete"
                )
            return doomed

    # -- reads ----------------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(self._nearest(self._dense_query(vector), limit, where, with_payload=True))

    def sparse_search(self, vector: SparseVector, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        return hits_from_points(self._nearest(self._sparse_query(vector), limit, where, with_payload=True))

    def dense_candidates(self, vector: np.ndarray, limit: int, where: SearchFilter | None = None) -> list[Scored]:
        return scored_from_points(self._nearest(self._dense_query(vector), limit, where, with_payload=False))

    def sparse_candidates(
        self, vector: SparseVector, limit: int, where: SearchFilter | None = None
    ) -> list[Scored]:
        return scored_from_points(self._nearest(self._sparse_query(vector), limit, where, with_payload=False))

    def get_chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        shard = self._require()
        if not ids:
            return {}
        point_ids = [canonical_id(chunk_id) for chunk_id in ids]
        records = self._call(lambda: shard.retrieve(point_ids, True, False), "retrieve")
        return chunks_by_id(records)

    def _dense_query(self, vector: np.ndarray) -> qe.Query:
        self._require()
        return qe.Query.Nearest(query_vector(vector, int(self._meta["dim"])), using=DENSE)

    def _sparse_query(self, vector: SparseVector) -> qe.Query | None:
        if not vector.indices:
            return None  # no known term: nothing can match
        self.check_sparse()
        return qe.Query.Nearest(qe.SparseVector(list(vector.indices), list(vector.values)), using=SPARSE)

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
        shard = self._require()
        selector = _search_filter(where)
        prefetches, fused_weights = [], []
        if weights[0] > 0:
            prefetches.append(qe.Prefetch(
                limit=candidates, query=self._dense_query(dense), params=self._search_params, filter=selector
            ))
            fused_weights.append(float(weights[0]))
        sparse_query = self._sparse_query(sparse) if weights[1] > 0 else None
        if sparse_query is not None:
            prefetches.append(qe.Prefetch(limit=candidates, query=sparse_query, filter=selector))
            fused_weights.append(float(weights[1]))
        if limit <= 0 or candidates <= 0 or not prefetches:
            return []
        request = qe.QueryRequest(
            limit=limit,
            prefetches=prefetches,
            query=qe.Fusion.Rrf(k=k, weights=fused_weights),
            filter=selector,
            with_payload=True,
        )
        return hits_from_points(self._call(lambda: shard.query(request), "hybrid search"))

    def _nearest(
        self, query: qe.Query | None, limit: int, where: SearchFilter | None, *, with_payload: bool
    ) -> list:
        shard = self._require()
        if query is None or limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=query,
            filter=_search_filter(where),
            params=self._search_params,
            with_payload=with_payload,
        )
        return self._call(lambda: shard.query(request), "search")

    def _scroll(self, shard: qe.EdgeShard, selector: qe.Filter | None, page: int) -> Iterator[Chunk]:
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=page, filter=selector, with_payload=True, with_vector=False
            )
            records, offset = self._call(lambda req=request: shard.scroll(req), "scroll")
            for record in records:
                yield chunk_from_payload(record.id, record.payload or {})
            if offset is None:
                return

    def get_page_chunks(self, url: str) -> list[Chunk]:
        shard = self._require()
        chunks = list(self._scroll(shard, _match_filter({"url": url}), _SCROLL_PAGE))
        return sorted(chunks, key=lambda chunk: chunk.position)

    def iter_chunks(self, collection: str | None = None, batch_size: int = 256) -> Iterator[Chunk]:
        if collection is None or collection == self._name:
            yield from self._scroll(self._require(), None, batch_size)
            return
        shard_dir = self._collection_dir(collection) / "shard"
        if not (shard_dir / "edge_config.json").exists():
            raise NotFoundError(f"no collection {collection} under {self.root}")
        shard = self._call(lambda: qe.EdgeShard.load(str(shard_dir)), f"opening {collection}")
        try:
            yield from self._scroll(shard, None, batch_size)
        finally:
            shard.close()

    def count(self, where: SearchFilter | None = None) -> int:
        shard = self._require()
        return self._call(
            lambda: shard.count(qe.CountRequest(exact=True, filter=_search_filter(where))), "count"
        )

    def sources(self) -> dict[str, int]:
        shard = self._require()
        response = self._call(
            lambda: shard.facet(qe.FacetRequest("source", limit=_FACET_LIMIT, exact=True)), "facet"
        )
        # Deleted values linger in the keyword index with a zero count.
        return {str(hit.value): int(hit.count) for hit in response if hit.count > 0}

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

    def close(self) -> None:
        with self._lock:
            self._close_shard()
            self._name, self._meta = None, {}

    def _close_shard(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            try:
                shard.flush()
            finally:
                shard.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------------
    def _require(self) -> qe.EdgeShard:
        shard = self._shard
        if shard is None:
            raise InternalError("the vector store is not open: call open(model_name, dim) first")
        return shard

    def _require_name(self) -> str:
        self._require()
        assert self._name is not None
        return self._name

    def _call(self, operation: Callable[[], T], what: str) -> T:
        try:
            return operation()
        except Exception as exc:  # noqa: BLE001 - the extension raises bare Exception with Qdrant's message
            raise StoreError(f"qdrant-edge {what} failed in {self._name}: {exc}") from None
