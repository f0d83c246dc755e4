"""What both backends share: collection naming, metadata, payload <-> Chunk, argument checks."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from evorag.tools.sparse import SparseVector
from evorag.tools.stores._protocol import SearchFilter
from evorag.tools.types import Chunk, Hit, PageRef, Scored

from evorag.errors import ConfigError, InternalError

DENSE = "dense"
SPARSE = "bm25"
# Keyword-indexed payload fields: the ones filters and deletes use.
KEYWORD_FIELDS = ("url", "source", "kind", "content_hash", "version")
# What page-aware ranking reads of every candidate (``page_refs``): a fraction of the whole payload.
PAGE_FIELDS = ["url", "title", "section"]
# Context assembly counts the chunks between two positions of a page (a range filter); a server in
# strict mode refuses to filter on a field without an index.
INTEGER_FIELDS = ("position",)
UPSERT_BATCH = 256
METADATA_SCHEMA = 1


def collection_name(alias: str, model_name: str) -> str:
    """``<alias>-<readable model slug>-<8 hex of the exact name>``: stable, distinct per model."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")[:40] or "model"
    digest = hashlib.sha256(model_name.encode("utf-8")).hexdigest()[:8]
    return f"{alias}-{slug}-{digest}"


def check_alias(alias: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", alias):
        raise ConfigError(
            f"invalid index alias {alias!r}",
            hint="use 1-40 lowercase letters, digits, '-' or '_'",
        )
    return alias


def new_metadata(model_name: str, dim: int, sparse_signature: str) -> dict:
    return {
        "schema": METADATA_SCHEMA,
        "model": model_name,
        "dim": int(dim),
        "sparse": sparse_signature,
        "created_at": time.time(),
    }


def sparse_signature_to_record(
    collection: str, recorded: str | None, current: str, is_empty: Callable[[], bool]
) -> bool:
    """Whether the collection should now record ``current`` as its BM25 encoder.

    Raises ``ConfigError`` when its vectors come from another encoder: BM25 vectors of two encoders
    do not compare (other tokens, other saturation), so new documents or a query would silently mix
    them. An empty collection has nothing to mix with, so it takes the current encoder.
    """
    if recorded == current:
        return False
    if recorded is not None and not is_empty():
        raise sparse_mismatch(collection, recorded, current)
    return True


def sparse_mismatch(collection: str, recorded: str, current: str) -> ConfigError:
    return ConfigError(
        f"collection {collection} holds BM25 vectors of encoder {recorded!r}, but the current BM25 "
        f"encoder is {current!r}; indexing or keyword search would mix the two and rank wrongly",
        hint="restore the BM25 encoder that built it (the evorag version, or k1/b/avgdl, named first), "
        "or re-index: remove every source with `evorag sources remove NAME` (`evorag sources` lists "
        "them), then crawl each again with `evorag crawl URL`",
    )


def check_dim(collection: str, recorded: dict, model_name: str, dim: int) -> None:
    if int(recorded.get("dim", -1)) != int(dim):
        raise ConfigError(
            f"collection {collection} holds {recorded.get('dim')}-d vectors of {recorded.get('model')!r}, "
            f"but {model_name!r} now gives {dim}-d vectors",
            hint=f"drop the collection {collection} and re-index, or give the changed model a new name",
        )


def check_dim_arg(dim: int) -> int:
    if not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise InternalError(f"embedding dimension must be a positive integer, got {dim!r}")
    return int(dim)


def canonical_id(chunk_id: str) -> str:
    """Qdrant stores UUIDs, not strings: only the canonical form round-trips unchanged."""
    try:
        canonical = str(uuid.UUID(chunk_id))
    except (ValueError, TypeError, AttributeError):
        raise InternalError(f"chunk id {chunk_id!r} is not a UUID") from None
    return canonical


def check_upsert(
    chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector], dim: int
) -> np.ndarray:
    """Validate the three parallel inputs and return the dense matrix as float32."""
    matrix = np.asarray(dense, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(chunks) or len(sparse) != len(chunks):
        raise InternalError(
            f"upsert needs one dense row and one sparse vector per chunk: "
            f"{len(chunks)} chunks, dense {matrix.shape}, {len(sparse)} sparse"
        )
    if len(chunks) and matrix.shape[1] != dim:
        raise InternalError(f"dense vectors are {matrix.shape[1]}-d but the collection holds {dim}-d vectors")
    if not np.isfinite(matrix).all():
        raise InternalError("dense vectors contain NaN or infinity")
    return matrix


def query_vector(vector: np.ndarray, dim: int) -> list[float]:
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != dim:
        raise InternalError(f"query vector is {array.shape[0]}-d but the collection holds {dim}-d vectors")
    return array.tolist()


def chunk_from_payload(point_id: object, payload: dict) -> Chunk:
    return Chunk(
        id=str(point_id),
        url=payload["url"],
        source=payload["source"],
        title=payload.get("title", ""),
        heading_path=list(payload.get("heading_path") or []),
        text=payload.get("text", ""),
        kind=payload.get("kind", "text"),
        position=int(payload.get("position", 0)),
        content_hash=payload.get("content_hash", ""),
        crawled_at=float(payload.get("crawled_at", 0.0)),
        language=payload.get("language"),
        version=payload.get("version"),
    )


def hits_from_points(points: Sequence) -> list[Hit]:
    return [
        Hit(chunk=chunk_from_payload(point.id, point.payload or {}), score=float(point.score))
        for point in points
    ]


def scored_from_points(points: Sequence) -> list[Scored]:
    return [Scored(str(point.id), float(point.score)) for point in points]


def chunks_by_id(records: Sequence) -> dict[str, Chunk]:
    return {str(record.id): chunk_from_payload(record.id, record.payload or {}) for record in records}


def page_refs_by_id(records: Sequence) -> dict[str, PageRef]:
    refs = {}
    for record in records:
        payload = record.payload or {}
        refs[str(record.id)] = PageRef(payload["url"], payload.get("title", ""), payload.get("section", ""))
    return refs


def page_terms_by_id(records: Sequence) -> dict[str, tuple[PageRef, frozenset[int]]]:
    refs = page_refs_by_id(records)
    terms = {}
    for record in records:
        bm25 = (record.vector or {}).get(SPARSE)
        terms[str(record.id)] = (refs[str(record.id)], frozenset(bm25.indices) if bm25 else frozenset())
    return terms


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a filter selects, before a backend spells it in its own client's types.

    Every field in ``must`` matches, no field in ``must_not`` does, and the position lies strictly
    between the two bounds of ``positions_between`` when it is set. Empty means everything.
    """

    must: dict[str, str] = field(default_factory=dict)
    must_not: dict[str, str] = field(default_factory=dict)
    positions_between: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not or self.positions_between is not None)

    @classmethod
    def of(cls, where: SearchFilter | None) -> Conditions:
        if where is None:
            return cls()
        return cls(must=where.conditions(), positions_between=where.positions_between)


# A query vector as the base hands it to a backend: dense values, or BM25 term weights.
QueryVector = list[float] | SparseVector


@dataclass(frozen=True, slots=True)
class FusedQuery:
    """One hybrid request: ``candidates`` per prefetch (vector name, query), fused by weighted RRF.

    ``weights`` holds one weight per prefetch; the fused top ``limit`` are returned with payload.
    """

    prefetches: list[tuple[str, QueryVector]]
    weights: list[float]
    selector: Conditions
    candidates: int
    k: int
    limit: int


def delete_conditions(
    url: str | None, source: str | None, content_hash_not: str | None, version: str | None = None
) -> Conditions:
    """The chunks ``delete_where`` removes; refuses an unscoped delete."""
    if url is None and source is None:
        raise InternalError("delete_where needs url or source: refusing to delete every chunk")
    scope = (("url", url), ("source", source), ("version", version))
    must = {key: value for key, value in scope if value is not None}
    must_not = {"content_hash": content_hash_not} if content_hash_not is not None else {}
    return Conditions(must=must, must_not=must_not)
