"""Retrieval metrics against values computed by pytrec_eval (trec_eval) on the same run."""

from __future__ import annotations

import math

import pytest
from evorag.tools.evaluation import (
    evaluate_run,
    hit_at_k,
    mrr,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
    recall_at_k,
)

from evorag.errors import UserError

QRELS = {"q1": {"a": 2, "b": 1, "c": 0, "x": 3}, "q2": {"d": 1, "e": 1}, "q3": {"f": 1}}
RUN = {"q1": ["b", "c", "a", "d", "x"], "q2": ["z", "y", "e", "w", "d"], "q3": ["g", "h"]}

# pytrec_eval 0.5 output for QRELS/RUN (ndcg_cut, recall, P, recip_rank), copied verbatim.
PYTREC = {
    "q1": {"ndcg@1": 0.3333333333333333, "ndcg@3": 0.42000399150792816, "ndcg@5": 0.6637235762547601,
           "ndcg@10": 0.6637235762547601, "recall@1": 0.3333333333333333, "recall@3": 0.6666666666666666,
           "recall@5": 1.0, "recall@10": 1.0, "precision@1": 1.0, "precision@3": 0.6666666666666666,
           "precision@5": 0.6, "precision@10": 0.3, "mrr@10": 1.0},
    "q2": {"ndcg@1": 0.0, "ndcg@3": 0.3065735963827292, "ndcg@5": 0.5437713091520254,
           "ndcg@10": 0.5437713091520254, "recall@1": 0.0, "recall@3": 0.5, "recall@5": 1.0, "recall@10": 1.0,
           "precision@1": 0.0, "precision@3": 0.3333333333333333, "precision@5": 0.4, "precision@10": 0.2,
           "mrr@10": 0.3333333333333333},
    "q3": {"ndcg@10": 0.0, "recall@10": 0.0, "precision@10": 0.0, "mrr@10": 0.0},
}  # fmt: skip


@pytest.mark.parametrize("qid", sorted(PYTREC))
def test_query_metrics_match_pytrec_eval(qid: str) -> None:
    mine = query_metrics(RUN[qid], QRELS[qid], ks=(1, 3, 5, 10))
    for key, expected in PYTREC[qid].items():
        assert mine[key] == pytest.approx(expected, abs=1e-12), key


def test_ndcg_by_hand_uses_linear_gain_and_ideal_from_all_judged_documents() -> None:
    # b (1) at rank 1, a (2) at rank 3; x (3) is judged but not retrieved and still shapes the ideal.
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(["b", "c", "a"], QRELS["q1"], k=3) == pytest.approx(dcg / ideal)


def test_perfect_ranking_scores_one_and_reversed_scores_less() -> None:
    relevance = {"a": 3, "b": 2, "c": 1}
    assert ndcg_at_k(["a", "b", "c"], relevance, k=3) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "b", "a"], relevance, k=3) < 1.0


def test_repeated_document_counts_once() -> None:
    assert ndcg_at_k(["a", "a", "a"], {"a": 1, "b": 1}, k=3) == ndcg_at_k(["a"], {"a": 1, "b": 1}, k=3)
    assert recall_at_k(["a", "a"], {"a": 1, "b": 1}, k=2) == 0.5


def test_no_relevant_documents_scores_zero() -> None:
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, hit_at_k):
        assert metric(["a", "b"], {"a": 0}, k=2) == 0.0
    assert mrr(["a"], {}) == 0.0


def test_mrr_and_hit_respect_the_cutoff() -> None:
    relevance = {"c": 1}
    assert mrr(["a", "b", "c"], relevance) == pytest.approx(1 / 3)
    assert mrr(["a", "b", "c"], relevance, k=2) == 0.0
    assert hit_at_k(["a", "b", "c"], relevance, k=2) == 0.0
    assert hit_at_k(["a", "b", "c"], relevance, k=3) == 1.0


def test_precision_divides_by_k_even_when_fewer_were_retrieved() -> None:
    assert precision_at_k(["a"], {"a": 1}, k=10) == pytest.approx(0.1)


@pytest.mark.parametrize("bad_k", [0, -1, 2.5, True, None])
def test_bad_cutoff_is_a_user_error(bad_k: object) -> None:
    with pytest.raises(UserError, match="cutoff"):
        ndcg_at_k(["a"], {"a": 1}, k=bad_k)  # type: ignore[arg-type]


def test_evaluate_run_averages_over_judged_queries() -> None:
    result = evaluate_run(RUN, QRELS, ks=(1, 10))
    assert result["queries"] == 3
    expected_ndcg10 = (PYTREC["q1"]["ndcg@10"] + PYTREC["q2"]["ndcg@10"] + 0.0) / 3
    assert result["ndcg@10"] == pytest.approx(expected_ndcg10)
    assert result["mrr@10"] == pytest.approx((1.0 + 1 / 3 + 0.0) / 3)
    assert result["hit@1"] == pytest.approx(1 / 3)
    assert set(result) == {"queries"} | {
        f"{m}@{k}" for m in ("ndcg", "recall", "precision", "mrr", "hit") for k in (1, 10)
    }


def test_judged_query_missing_from_run_counts_as_zero_and_unjudged_run_entries_are_ignored() -> None:
    partial = {"q1": RUN["q1"], "unjudged": ["a", "b"]}
    result = evaluate_run(partial, QRELS, ks=(10,))
    assert result["queries"] == 3
    assert result["ndcg@10"] == pytest.approx(PYTREC["q1"]["ndcg@10"] / 3)


def test_queries_without_relevant_documents_are_left_out() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    result = evaluate_run({"q1": ["a"], "q2": ["b"]}, qrels, ks=(1,))
    assert result["queries"] == 1
    assert result["ndcg@1"] == 1.0


def test_qrels_without_any_relevant_document_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no query with a relevant document"):
        evaluate_run({"q": ["a"]}, {"q": {"a": 0}})
