"""Id-only candidates: the fast first stage of hybrid search must rank exactly as the payload path did."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import qdrant_edge as qe
from evorag.tools.fusion import fuse, fuse_scored
from evorag.tools.search import HybridSearcher, SearchOptions
from evorag.tools.sparse import encode_query
from evorag.tools.stores import EdgeStore, QdrantServerStore, SearchFilter
from evorag.tools.types import Scored
from test_vector_store import CORPUS, DIM, index, make_chunk, vectors_for


@pytest.fixture(params=["edge", "qdrant-client-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    opened = EdgeStore(tmp_path / "qdrant") if request.param == "edge" else QdrantServerStore(location=":memory:")
    opened.open("test-model", DIM)
    yield opened
    opened.close()


class OwnVectors:
    """An embedder that maps each corpus text to the vector the corpus was indexed with."""

    dim = DIM

    def __init__(self, chunks) -> None:
        self._by_text = {chunk.text: vector for chunk, vector in zip(chunks, vectors_for(chunks), strict=True)}

    def embed_query(self, text: str):
        return self._by_text[text]


def test_candidates_are_the_searches_ids_and_scores(store) -> None:
    dense = index(store, CORPUS)
    for vector in dense:
        hits = store.dense_search(vector, 4)
        assert store.dense_candidates(vector, 4) == [Scored(h.chunk.id, pytest.approx(h.score)) for h in hits]
    query = encode_query("get a page")
    where = SearchFilter(source="docs")
    hits = store.sparse_search(query, 10, where)
    assert hits, "the query shares terms with the docs source"
    assert store.sparse_candidates(query, 10, where) == [Scored(h.chunk.id, pytest.approx(h.score)) for h in hits]
    assert store.sparse_candidates(encode_query("zzzqqq"), 10) == []
    assert store.dense_candidates(dense[0], 0) == []


def test_get_chunks_returns_stored_chunks_and_skips_unknown_ids(store) -> None:
    index(store, CORPUS)
    missing = str(uuid.uuid4())
    found = store.get_chunks([CORPUS[1].id, missing, CORPUS[3].id])
    assert found == {CORPUS[1].id: CORPUS[1], CORPUS[3].id: CORPUS[3]}
    assert store.get_chunks([]) == {}


@pytest.mark.parametrize("method", ["rrf", "qdrant_rrf", "minmax", "dbsf"])
def test_hybrid_search_ranks_as_fusing_full_hits(store, method: str) -> None:
    chunks = CORPUS + [make_chunk("https://d.test/more", n, f"get page number {n} over http") for n in range(8)]
    index(store, chunks)
    searcher = HybridSearcher(store, OwnVectors(chunks))
    for chunk in chunks:
        options = SearchOptions(limit=5, candidates=8, fusion=method)
        vector = searcher.embedder.embed_query(chunk.text)
        expected = fuse(
            [store.dense_search(vector, 8), store.sparse_search(encode_query(chunk.text), 8)],
            [1.0, 1.0], method=method, k=60, limit=5,
        )
        got = searcher.search(chunk.text, options)
        assert [h.chunk for h in got] == [h.chunk for h in expected]
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-6)


def test_a_chunk_deleted_between_the_stages_is_left_out(store) -> None:
    index(store, CORPUS)
    searcher = HybridSearcher(store, OwnVectors(CORPUS))
    original = store.get_chunks

    def delete_then_get(ids):
        store.delete([CORPUS[0].id])  # a re-crawl replaces the page between candidates and payloads
        return original(ids)

    store.get_chunks = delete_then_get
    hits = searcher.search(CORPUS[0].text, SearchOptions(limit=5, candidates=8))
    assert hits and CORPUS[0].id not in {hit.chunk.id for hit in hits}


def test_fuse_scored_validates_like_fuse() -> None:
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse_scored([[Scored("a", 1.0)]], method="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 weights for 1 result lists"):
        fuse_scored([[Scored("a", 1.0)]], [1.0, 1.0])
    assert fuse_scored([[Scored("a", 1.0), Scored("b", 0.5)], [Scored("b", 3.0)]], method="rrf", limit=1)[0].id == "b"


def test_positions_between_counts_only_that_page_and_kind(store) -> None:
    page = [make_chunk("https://d.test/p", n, f"part {n}", kind="code" if n % 3 == 1 else "text") for n in range(7)]
    index(store, page + CORPUS)
    # Text chunks at 0, 2, 3, 5, 6 and code at 1, 4.
    assert store.count(SearchFilter(url="https://d.test/p", kind="text", positions_between=(0, 2))) == 0
    assert store.count(SearchFilter(url="https://d.test/p", kind="text", positions_between=(0, 5))) == 2
    assert store.count(SearchFilter(url="https://d.test/p", kind="code", positions_between=(0, 6))) == 2
    assert store.count(SearchFilter(url="https://d.test/p", positions_between=(1, 4))) == 2
    assert store.count(SearchFilter(url="https://d.test/p", kind="text", positions_between=(6, 0))) == 0


def test_context_merges_neighbours_of_one_kind_across_other_kinds(tmp_path) -> None:
    from evorag.tools.answering import assemble_context
    from evorag.tools.types import Hit

    store = EdgeStore(tmp_path / "qdrant")
    store.open("test-model", DIM)
    try:
        page = [make_chunk("https://d.test/p", n, f"part {n}", kind="code" if n == 1 else "text") for n in range(4)]
        index(store, page)

        def between(first, second):
            return store.count(SearchFilter(url=first.url, kind=first.kind,
                                            positions_between=(first.position, second.position)))

        # Text 0 and 2 are neighbours (only code between); text 3 follows 2; the code chunk stands alone.
        passages = assemble_context([Hit(page[2], 0.9), Hit(page[1], 0.8), Hit(page[0], 0.7)], between)
        assert [p.chunk_ids for p in passages] == [[page[0].id, page[2].id], [page[1].id]]
        passages = assemble_context([Hit(page[0], 0.9), Hit(page[3], 0.8)], between)
        assert [p.chunk_ids for p in passages] == [[page[0].id], [page[3].id]]  # text 2 lies between
    finally:
        store.close()


def test_edge_collections_index_the_position_range_filter(tmp_path) -> None:
    store = EdgeStore(tmp_path / "qdrant")
    store.open("test-model", DIM)
    shard_dir = Path(store.info()["path"]) / "shard"
    store.close()
    # The shard as it lies on disk, read without the store: the indexes are part of the collection.
    shard = qe.EdgeShard.load(str(shard_dir))
    try:
        schema = shard.info().payload_schema
        assert {"url", "kind", "position"} <= set(schema)
        assert schema["position"].data_type == qe.PayloadSchemaType.Integer
    finally:
        shard.close()
