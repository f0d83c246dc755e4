"""Merging the ranked lists of several retrievers (dense, BM25) into one.

Two families, both weighted per list so the balance can be tuned on evaluation data:

* ``rrf``: reciprocal-rank fusion, ``sum(w_i / (k + rank_i))``. Uses ranks only, so it needs no
  calibration between cosine similarities and BM25 scores; the robust default.
* ``qdrant_rrf``: Qdrant's variant, ``sum(1 / (rank_i / w_i + k - 1))``: the weight stretches the
  rank instead of scaling the contribution (and ``k`` is off by one). It is what the stores'
  in-engine ``hybrid_search`` computes, so tune with it to get the same ranking there.
* ``convex``: a weighted sum of per-list normalised scores. Keeps how *much* better the top hit is
  than the rest, which RRF throws away; normalisation ``"minmax"`` (to [0, 1]) or ``"dbsf"``
  (Qdrant's distribution-based score fusion: mean +- 3 standard deviations mapped to [0, 1]).

Every function returns new ``Hit`` objects carrying the fused score, best first, with a stable
order for equal scores: the better best rank first, then the earlier list, then the chunk id.
A chunk listed twice in one list counts once, at its better rank.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Literal

from evorag.tools.types import Hit, Scored

__all__ = ["FusionMethod", "convex", "fuse", "fuse_scored", "qdrant_rrf", "rrf"]

FusionMethod = Literal["rrf", "qdrant_rrf", "minmax", "dbsf"]

# Every method works on ranked lists of (id, score) pairs; the ``Hit`` entry points wrap them. Ids are
# enough to fuse, so a search can rank candidates without loading their payloads (``fuse_scored``).
_RankedIds = Sequence[Sequence[Scored]]


def _check_weights(result_lists: Sequence[Sequence[object]], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(result_lists)
    if len(weights) != len(result_lists):
        raise ValueError(f"{len(weights)} weights for {len(result_lists)} result lists")
    if any(weight < 0 or not math.isfinite(weight) for weight in weights):
        raise ValueError(f"weights must be finite and non-negative, got {list(weights)}")
    return [float(weight) for weight in weights]


def _accumulate(result_lists: _RankedIds, contributions: Sequence[Sequence[float]]) -> dict[str, list]:
    """Sum each list's per-rank contribution per id: ``id -> [score, best rank, list of the best rank]``.

    Plain lists rather than objects: this runs for every candidate of every search, under the GIL.
    """
    candidates: dict[str, list] = {}
    for list_index, (items, scores) in enumerate(zip(result_lists, contributions, strict=True)):
        seen: set[str] = set()
        for rank, (item, contribution) in enumerate(zip(items, scores, strict=True), start=1):
            item_id = item.id
            if item_id in seen:
                continue  # duplicates within one list: the first (better) rank already counted
            seen.add(item_id)
            candidate = candidates.get(item_id)
            if candidate is None:
                candidates[item_id] = [contribution, rank, list_index]
            else:
                candidate[0] += contribution
                if rank < candidate[1]:
                    candidate[1], candidate[2] = rank, list_index
    return candidates


def _ranked(candidates: dict[str, list], limit: int) -> list[Scored]:
    best = heapq.nsmallest(
        max(limit, 0), candidates.items(), key=lambda entry: (-entry[1][0], entry[1][1], entry[1][2], entry[0])
    )
    return [Scored(item_id, values[0]) for item_id, values in best]


def _rrf(result_lists: _RankedIds, weights: Sequence[float] | None, k: int, limit: int) -> list[Scored]:
    if k < 1:
        raise ValueError(f"RRF k must be >= 1, got {k}")
    weight_list = _check_weights(result_lists, weights)
    contributions = [
        [weight / (k + rank) for rank in range(1, len(items) + 1)]
        for items, weight in zip(result_lists, weight_list, strict=True)
    ]
    return _ranked(_accumulate(result_lists, contributions), limit)


def _qdrant_rrf(result_lists: _RankedIds, weights: Sequence[float] | None, k: int, limit: int) -> list[Scored]:
    if k < 1:
        raise ValueError(f"RRF k must be >= 1, got {k}")
    weight_list = _check_weights(result_lists, weights)
    contributions = [
        [1.0 / (rank / weight + k - 1) if weight > 0 else 0.0 for rank in range(1, len(items) + 1)]
        for items, weight in zip(result_lists, weight_list, strict=True)
    ]
    return _ranked(_accumulate(result_lists, contributions), limit)


def _convex(
    result_lists: _RankedIds, weights: Sequence[float] | None, normalization: str, limit: int
) -> list[Scored]:
    weight_list = _check_weights(result_lists, weights)
    normalise = {"minmax": _minmax, "dbsf": _dbsf}.get(normalization)
    if normalise is None:
        raise ValueError(f"unknown normalization {normalization!r}: use 'minmax' or 'dbsf'")
    contributions = [
        [weight * value for value in normalise([float(item.score) for item in items])]
        for items, weight in zip(result_lists, weight_list, strict=True)
    ]
    return _ranked(_accumulate(result_lists, contributions), limit)


def _on_hits(result_lists: Sequence[Sequence[Hit]], fused: Callable[[_RankedIds], list[Scored]]) -> list[Hit]:
    """Run an id-level fusion over ``Hit`` lists and give back hits carrying the fused scores."""
    chunks = {hit.chunk.id: hit.chunk for hits in result_lists for hit in hits}
    id_lists = [[Scored(hit.chunk.id, hit.score) for hit in hits] for hits in result_lists]
    return [Hit(chunk=chunks[item.id], score=item.score) for item in fused(id_lists)]


def rrf(
    result_lists: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    k: int = 60,
    limit: int = 10,
) -> list[Hit]:
    """Weighted reciprocal-rank fusion: ``score = sum_i weights[i] / (k + rank_i)``, ranks from 1.

    ``weights`` defaults to 1 per list. Raises ``ValueError`` for a weight count that does not
    match the lists, a negative or infinite weight, or ``k < 1``.
    """
    return _on_hits(result_lists, lambda lists: _rrf(lists, weights, k, limit))


def qdrant_rrf(
    result_lists: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    k: int = 60,
    limit: int = 10,
) -> list[Hit]:
    """Qdrant's weighted RRF: ``score = sum_i 1 / (rank_i / weights[i] + k - 1)``, ranks from 1.

    Same ranking as ``VectorStore.hybrid_search(..., k=k, weights=weights)`` over the same
    candidate lists; a zero weight drops a list. Raises ``ValueError`` like ``rrf``.
    """
    return _on_hits(result_lists, lambda lists: _qdrant_rrf(lists, weights, k, limit))


def _minmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def _dbsf(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((score - mean) ** 2 for score in scores) / len(scores))
    if std <= 1e-12:
        return [1.0] * len(scores)
    low, high = mean - 3 * std, mean + 3 * std
    return [min(1.0, max(0.0, (score - low) / (high - low))) for score in scores]


def convex(
    result_lists: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    normalization: Literal["minmax", "dbsf"] = "minmax",
    limit: int = 10,
) -> list[Hit]:
    """Weighted sum of per-list normalised scores; a chunk missing from a list gets 0 there.

    Each list is normalised on its own hits only (scores of different retrievers live on
    different scales). A list whose scores are all equal maps them all to 1.
    """
    return _on_hits(result_lists, lambda lists: _convex(lists, weights, normalization, limit))


def fuse_scored(
    result_lists: Sequence[Sequence[Scored]],
    weights: Sequence[float] | None = None,
    *,
    method: FusionMethod = "rrf",
    k: int = 60,
    limit: int = 10,
) -> list[Scored]:
    """``fuse`` over ranked (id, score) lists: the fused ids, best first, with their fused scores."""
    if method == "rrf":
        return _rrf(result_lists, weights, k, limit)
    if method == "qdrant_rrf":
        return _qdrant_rrf(result_lists, weights, k, limit)
    if method in ("minmax", "dbsf"):
        return _convex(result_lists, weights, method, limit)
    raise ValueError(f"unknown fusion method {method!r}: use 'rrf', 'qdrant_rrf', 'minmax' or 'dbsf'")


def fuse(
    result_lists: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    method: FusionMethod = "rrf",
    k: int = 60,
    limit: int = 10,
) -> list[Hit]:
    """One entry point for configuration: ``"rrf"``/``"qdrant_rrf"`` (use ``k``), ``"minmax"``, ``"dbsf"``."""
    return _on_hits(result_lists, lambda lists: fuse_scored(lists, weights, method=method, k=k, limit=limit))
