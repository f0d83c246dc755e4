"""Ranked-retrieval metrics with the trec_eval / pytrec_eval definitions that BEIR reports.

Conventions shared by every function here:

* ``ranked_ids`` is the system's ranking, best first. A document id that appears twice counts only at
  its first position (a run is a set of scored documents; a repeat must not earn gain twice).
* ``relevance`` maps judged document ids to grades. A grade > 0 is relevant (trec_eval's default
  relevance level 1); grades <= 0 and unjudged documents are non-relevant and earn no gain.
* A query with no relevant document scores 0 for every metric (trec_eval does the same);
  :func:`evaluate_run` leaves such queries out of the averages instead, because they carry no signal.
* ``k`` must be a positive integer; anything else raises :class:`~evorag.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from evorag.errors import UserError

Grade = int | float

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = ("ndcg", "recall", "precision", "mrr", "hit")


def _check_k(k: int | None, *, allow_none: bool = False) -> None:
    if k is None and allow_none:
        return
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UserError(f"cutoff k must be a positive integer, got {k!r}", hint="use e.g. k=10")


def _top_k(ranked_ids: Iterable[str], k: int | None) -> list[str]:
    """The first ``k`` distinct ids, in order."""
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked_ids:
        if doc_id in seen:
            continue
        seen.add(doc_id)
        top.append(doc_id)
        if k is not None and len(top) == k:
            break
    return top


def _is_relevant(relevance: Mapping[str, Grade], doc_id: str) -> bool:
    return relevance.get(doc_id, 0) > 0


def _num_relevant(relevance: Mapping[str, Grade]) -> int:
    return sum(1 for grade in relevance.values() if grade > 0)


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain with linear gain and a log2(rank + 1) discount (rank from 1)."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1) if gain > 0)


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, Grade], k: int = 10) -> float:
    """nDCG@k as pytrec_eval's ``ndcg_cut_k``: gain = grade, discount = log2(rank + 1).

    The ideal ranking is built from *all* judged relevant documents (not just the retrieved ones), so a
    system that misses relevant documents is penalised. Returns 0.0 when nothing is relevant.
    """
    _check_k(k)
    gains = [max(float(relevance.get(doc_id, 0)), 0.0) for doc_id in _top_k(ranked_ids, k)]
    ideal = sorted((float(g) for g in relevance.values() if g > 0), reverse=True)[:k]
    ideal_dcg = dcg(ideal)
    return dcg(gains) / ideal_dcg if ideal_dcg > 0 else 0.0


def recall_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, Grade], k: int = 10) -> float:
    """Share of the relevant documents found in the top k (pytrec_eval ``recall_k``)."""
    _check_k(k)
    total = _num_relevant(relevance)
    if total == 0:
        return 0.0
    found = sum(1 for doc_id in _top_k(ranked_ids, k) if _is_relevant(relevance, doc_id))
    return found / total


def precision_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, Grade], k: int = 10) -> float:
    """Relevant documents in the top k divided by k, even when fewer than k were retrieved (``P_k``)."""
    _check_k(k)
    found = sum(1 for doc_id in _top_k(ranked_ids, k) if _is_relevant(relevance, doc_id))
    return found / k


def mrr(ranked_ids: Sequence[str], relevance: Mapping[str, Grade], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant document within the top k (all ranks when k is None)."""
    _check_k(k, allow_none=True)
    for rank, doc_id in enumerate(_top_k(ranked_ids, k), start=1):
        if _is_relevant(relevance, doc_id):
            return 1.0 / rank
    return 0.0


def hit_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, Grade], k: int = 10) -> float:
    """1.0 when at least one relevant document is in the top k, else 0.0."""
    _check_k(k)
    return 1.0 if any(_is_relevant(relevance, doc_id) for doc_id in _top_k(ranked_ids, k)) else 0.0


def query_metrics(
    ranked_ids: Sequence[str], relevance: Mapping[str, Grade], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """All metrics at every cutoff for one query, keyed like ``"ndcg@10"``."""
    for k in ks:
        _check_k(k)
    return {
        f"{name}@{k}": value
        for k in ks
        for name, value in (
            ("ndcg", ndcg_at_k(ranked_ids, relevance, k)),
            ("recall", recall_at_k(ranked_ids, relevance, k)),
            ("precision", precision_at_k(ranked_ids, relevance, k)),
            ("mrr", mrr(ranked_ids, relevance, k)),
            ("hit", hit_at_k(ranked_ids, relevance, k)),
        )
    }


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, Grade]],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean of :func:`query_metrics` over the queries that have at least one relevant document.

    Keys: ``ndcg@k``, ``recall@k``, ``precision@k``, ``mrr@k``, ``hit@k`` for each k in ``ks``, plus
    ``queries`` (how many queries were averaged, as a float so the dict stays homogeneous).

    A judged query missing from ``run`` counts as an empty ranking (all zeros) rather than being skipped:
    BEIR silently drops such queries, which would hide a retriever that failed on them. Queries in
    ``run`` without qrels are ignored. Raises UserError when no query has a relevant document.
    """
    ks = tuple(ks)
    if not ks:
        raise UserError("no cutoffs given", hint="pass ks such as (1, 3, 5, 10, 100)")
    judged = [qid for qid, rels in qrels.items() if _num_relevant(rels) > 0]
    if not judged:
        raise UserError("the qrels contain no query with a relevant document", hint="check the qrels file")
    totals: dict[str, float] = {}
    for qid in judged:
        for key, value in query_metrics(run.get(qid, ()), qrels[qid], ks).items():
            totals[key] = totals.get(key, 0.0) + value
    averages = {key: total / len(judged) for key, total in totals.items()}
    averages["queries"] = float(len(judged))
    return averages
