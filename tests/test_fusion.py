"""Rank fusion on hand-computed rankings."""

from __future__ import annotations

import pytest
from evorag.tools.fusion import convex, fuse, qdrant_rrf, rrf
from evorag.tools.types import Chunk, Hit


def hit(name: str, score: float = 0.0) -> Hit:
    chunk = Chunk(
        id=name,
        url=f"https://d.test/{name}",
        source="docs",
        title=name,
        heading_path=[],
        text=name,
        kind="text",
        position=0,
        content_hash="h",
        crawled_at=0.0,
    )
    return Hit(chunk=chunk, score=score)


def ids(hits: list[Hit]) -> list[str]:
    return [h.chunk.id for h in hits]


def test_rrf_scores_are_the_sum_of_reciprocal_ranks() -> None:
    dense = [hit("a"), hit("b"), hit("c")]
    sparse = [hit("c"), hit("a"), hit("d")]

    fused = rrf([dense, sparse], k=60, limit=10)

    expected = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    assert ids(fused) == ["a", "c", "b", "d"]
    assert [h.score for h in fused] == pytest.approx([expected[name] for name in ids(fused)])


def test_rrf_weights_shift_the_balance() -> None:
    dense = [hit("a"), hit("b")]
    sparse = [hit("b"), hit("a")]
    assert ids(rrf([dense, sparse], [1.0, 1.0], k=1))[0] == "a"  # tie: earlier list wins
    assert ids(rrf([dense, sparse], [1.0, 2.0], k=1)) == ["b", "a"]
    assert ids(rrf([dense, sparse], [0.0, 1.0], k=1)) == ["b", "a"]


def test_rrf_ties_break_by_best_rank_then_list_then_id() -> None:
    fused = rrf([[hit("x"), hit("y")], [hit("z"), hit("w")]], k=60, limit=10)
    # x and z share score 1/61 (rank 1); y and w share 1/62 (rank 2): list order decides.
    assert ids(fused) == ["x", "z", "y", "w"]
    # The same fusion twice gives the same order: no dependence on set or dict iteration.
    assert ids(rrf([[hit("x"), hit("y")], [hit("z"), hit("w")]], k=60, limit=10)) == ids(fused)


def test_rrf_limit_duplicates_and_empty_input() -> None:
    fused = rrf([[hit("a"), hit("a"), hit("b")], []], k=60, limit=1)
    assert ids(fused) == ["a"]
    assert fused[0].score == pytest.approx(1 / 61)  # the duplicate did not count twice
    assert rrf([], limit=5) == []
    assert rrf([[], []], limit=5) == []


def test_rrf_returns_new_hits_and_keeps_the_chunk() -> None:
    original = hit("a", score=0.9)
    fused = rrf([[original]], limit=1)
    assert fused[0].chunk is original.chunk
    assert original.score == 0.9


def test_qdrant_rrf_stretches_ranks_by_weight() -> None:
    dense = [hit("1"), hit("2"), hit("3")]
    sparse = [hit("3"), hit("1")]
    # Qdrant: 1 / (rank / w + k - 1); values checked against qdrant-edge's own fusion.
    fused = qdrant_rrf([dense, sparse], [1.0, 2.0], k=60)
    assert ids(fused) == ["1", "3", "2"]
    assert [h.score for h in fused] == pytest.approx([1 / 60 + 1 / 60, 1 / 62 + 1 / 59.5, 1 / 61])
    # Unweighted, Qdrant's k is the textbook k plus one.
    assert [h.score for h in qdrant_rrf([dense, sparse], k=61)] == pytest.approx(
        [h.score for h in rrf([dense, sparse], k=60)]
    )
    assert ids(qdrant_rrf([dense, sparse], [0.0, 1.0], k=2)) == ["3", "1", "2"]


def test_bad_fusion_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        rrf([[hit("a")]], [1.0, 1.0])
    with pytest.raises(ValueError):
        rrf([[hit("a")]], [-1.0])
    with pytest.raises(ValueError):
        rrf([[hit("a")]], k=0)
    with pytest.raises(ValueError):
        fuse([[hit("a")]], method="borda")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        convex([[hit("a")]], normalization="zscore")  # type: ignore[arg-type]


def test_convex_minmax_keeps_score_gaps_that_rrf_ignores() -> None:
    # Dense is nearly flat; BM25 has a clear winner "c". RRF sees only ranks, so "a" (first in
    # dense, second in BM25) wins; min-max keeps BM25's large margin, so "c" does.
    dense = [hit("a", 0.80), hit("c", 0.79), hit("b", 0.70)]
    sparse = [hit("c", 20.0), hit("a", 2.0), hit("b", 1.0)]

    assert ids(rrf([dense, sparse], k=60))[0] == "a"
    fused = convex([dense, sparse], normalization="minmax")
    assert ids(fused) == ["c", "a", "b"]
    assert [h.score for h in fused] == pytest.approx([0.9 + 1.0, 1.0 + 1 / 19, 0.0])


def test_convex_missing_hits_count_zero_and_flat_lists_count_one() -> None:
    fused = convex([[hit("a", 5.0), hit("b", 5.0)], [hit("c", 3.0)]], [1.0, 0.5])
    assert [(h.chunk.id, h.score) for h in fused] == [("a", 1.0), ("b", 1.0), ("c", 0.5)]


def test_dbsf_clips_to_three_standard_deviations() -> None:
    scores = [10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    fused = convex([[hit(f"d{i}", s) for i, s in enumerate(scores)]], normalization="dbsf", limit=10)
    assert fused[0].chunk.id == "d0"
    assert 0.5 < fused[0].score <= 1.0
    assert all(0.0 <= h.score < 0.5 for h in fused[1:])


def test_fuse_dispatches_by_method() -> None:
    lists = [[hit("a", 1.0), hit("b", 0.5)], [hit("b", 9.0)]]
    assert ids(fuse(lists, method="rrf", k=60)) == ids(rrf(lists, k=60))
    assert ids(fuse(lists, method="qdrant_rrf", k=2)) == ids(qdrant_rrf(lists, k=2))
    assert ids(fuse(lists, method="minmax")) == ids(convex(lists))
    assert ids(fuse(lists, method="dbsf")) == ids(convex(lists, normalization="dbsf"))
