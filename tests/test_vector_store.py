"""The VectorStore contract, run on real Qdrant Edge shards and real qdrant-client local mode."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from evorag.tools.fusion import qdrant_rrf
from evorag.tools.sparse import DEFAULT_ENCODER, Bm25Encoder, SparseVector, encode_document, encode_query
from evorag.tools.stores import (
    EdgeStore,
    QdrantServerStore,
    SearchFilter,
    VectorStore,
    collection_name,
    store_from_settings,
)
from evorag.tools.types import Chunk
from qdrant_client import QdrantClient

from evorag.errors import ConfigError, InternalError, NotFoundError, StoreError, UserError
from evorag.settings import Settings

DIM = 8
REPO = Path(__file__).resolve().parents[1]


def make_chunk(
    url: str,
    position: int,
    text: str,
    *,
    source: str = "docs",
    kind: str = "text",
    content_hash: str = "v1",
    language: str | None = None,
) -> Chunk:
    return Chunk(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{position}")),
        url=url,
        source=source,
        title=f"Title of {url}",
        heading_path=["Guide", f"Section {position}"],
        text=text,
        kind=kind,  # type: ignore[arg-type]
        position=position,
        content_hash=content_hash,
        crawled_at=1_700_000_000.5,
        language=language,
    )


def vectors_for(chunks: list[Chunk], dim: int = DIM) -> np.ndarray:
    """Deterministic unit vectors per chunk id, so a chunk's own vector finds it first."""
    rows = []
    for chunk in chunks:
        rng = np.random.default_rng(uuid.UUID(chunk.id).int % (2**32))
        row = rng.standard_normal(dim).astype(np.float32)
        rows.append(row / np.linalg.norm(row))
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def index(store: VectorStore, chunks: list[Chunk]) -> np.ndarray:
    dense = vectors_for(chunks, int(store.info()["dim"]))
    store.upsert(chunks, dense, [encode_document(chunk.text) for chunk in chunks])
    return dense


CORPUS = [
    make_chunk("https://d.test/http", 0, "Call tinyhttp.get(url) to fetch a page and return its body."),
    make_chunk(
        "https://d.test/http",
        1,
        "The tinyhttp library can get pages over HTTP.",
        kind="code",
        language="python",
    ),
    make_chunk("https://d.test/http", 2, "Retries: get a page again after a timeout."),
    make_chunk("https://d.test/cats", 0, "Cats sleep most of the day.", source="pets"),
    make_chunk(
        "https://d.test/cats",
        1,
        "def feed_cat(cat): cat.eat()",
        source="pets",
        kind="code",
        language="python",
    ),
]

Factory = Callable[..., VectorStore]


@pytest.fixture(params=["edge", "qdrant-client-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "edge":
        opened: VectorStore = EdgeStore(tmp_path / "qdrant")
    else:
        opened = QdrantServerStore(location=":memory:")
    opened.open("test-model", DIM)
    yield opened
    opened.close()


@pytest.fixture(params=["edge", "qdrant-client-path"])
def reopenable(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of stores over the same persistent location; keyword arguments go to the store."""
    if request.param == "edge":
        return lambda **options: EdgeStore(tmp_path / "qdrant", **options)
    return lambda **options: QdrantServerStore(path=str(tmp_path / "local"), **options)


def test_upsert_then_dense_search_returns_the_chunk_unchanged(store: VectorStore) -> None:
    dense = index(store, CORPUS)

    hits = store.dense_search(dense[3], limit=2)

    assert hits[0].chunk == CORPUS[3]  # every payload field round-trips, id included
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score
    assert store.count() == len(CORPUS)


def test_sparse_search_finds_an_exact_identifier_first(store: VectorStore) -> None:
    index(store, CORPUS)

    hits = store.sparse_search(encode_query("tinyhttp.get"), limit=10)

    assert hits[0].chunk.id == CORPUS[0].id
    # Chunks sharing only a part of the identifier rank lower; unrelated chunks don't match at all.
    assert {hit.chunk.id for hit in hits[1:]} == {CORPUS[1].id, CORPUS[2].id}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_sparse_search_with_no_known_term_returns_nothing(store: VectorStore) -> None:
    index(store, CORPUS)
    assert store.sparse_search(encode_query("zeppelin"), limit=10) == []
    assert store.sparse_search(encode_query("the of and"), limit=10) == []  # only stopwords


@pytest.mark.parametrize(
    ("weights", "where"),
    [((1.0, 1.0), None), ((1.0, 3.0), None), ((2.0, 1.0), SearchFilter(source="docs"))],
)
def test_hybrid_search_is_qdrant_rrf_of_the_two_searches(
    store: VectorStore, weights: tuple[float, float], where: SearchFilter | None
) -> None:
    dense = index(store, CORPUS)
    dense_query, sparse_query = dense[4], encode_query("get a page with tinyhttp")

    fused = store.hybrid_search(dense_query, sparse_query, 10, where, candidates=4, k=2, weights=weights)

    expected = qdrant_rrf(
        [store.dense_search(dense_query, 4, where), store.sparse_search(sparse_query, 4, where)],
        weights,
        k=2,
        limit=10,
    )
    assert {hit.chunk.id: hit.score for hit in fused} == pytest.approx(
        {hit.chunk.id: hit.score for hit in expected}
    )
    assert [hit.score for hit in fused] == sorted((hit.score for hit in fused), reverse=True)
    assert all(hit.chunk == next(c for c in CORPUS if c.id == hit.chunk.id) for hit in fused)


def test_hybrid_search_leaves_out_a_zero_weight_or_empty_query(store: VectorStore) -> None:
    dense = index(store, CORPUS)
    sparse_query = encode_query("tinyhttp.get")

    sparse_only = store.hybrid_search(dense[4], sparse_query, 10, weights=(0.0, 1.0))
    assert [hit.chunk.id for hit in sparse_only] == [
        hit.chunk.id for hit in store.sparse_search(sparse_query, 10)
    ]
    dense_only = store.hybrid_search(dense[4], SparseVector([], []), 3)
    assert [hit.chunk.id for hit in dense_only] == [hit.chunk.id for hit in store.dense_search(dense[4], 3)]
    assert store.hybrid_search(dense[4], sparse_query, 10, weights=(0.0, 0.0)) == []


def test_filters_by_source_kind_and_url(store: VectorStore) -> None:
    dense = index(store, CORPUS)

    pets = store.dense_search(dense[0], limit=10, where=SearchFilter(source="pets"))
    assert {hit.chunk.id for hit in pets} == {CORPUS[3].id, CORPUS[4].id}

    code = store.sparse_search(encode_query("tinyhttp get cat"), limit=10, where=SearchFilter(kind="code"))
    assert {hit.chunk.id for hit in code} == {CORPUS[1].id, CORPUS[4].id}

    both = SearchFilter(source="docs", kind="code")
    assert [hit.chunk.id for hit in store.dense_search(dense[0], limit=10, where=both)] == [CORPUS[1].id]
    assert store.count(SearchFilter(url="https://d.test/cats")) == 2
    assert store.count(SearchFilter(source="nowhere")) == 0


def test_upsert_is_idempotent_and_replaces_by_id(store: VectorStore) -> None:
    index(store, CORPUS)
    index(store, CORPUS)
    assert store.count() == len(CORPUS)

    changed = make_chunk(
        "https://d.test/cats", 0, "Cats hunt mice at night.", source="pets", content_hash="v2"
    )
    index(store, [changed])

    assert store.count() == len(CORPUS)
    hits = store.sparse_search(encode_query("mice"), limit=5)
    assert [hit.chunk for hit in hits] == [changed]
    assert store.sparse_search(encode_query("sleep"), limit=5) == []


def test_delete_where_removes_a_pages_old_version_only(store: VectorStore) -> None:
    index(store, CORPUS)
    url = "https://d.test/http"
    new_version = [make_chunk(url, 0, "tinyhttp.get now takes a timeout.", content_hash="v2")]
    index(store, new_version)  # replaces position 0; positions 1 and 2 are left from v1

    removed = store.delete_where(url=url, content_hash_not="v2")

    assert removed == 2
    assert store.get_page_chunks(url) == new_version
    assert store.count() == 3


def test_delete_by_id_and_by_source(store: VectorStore) -> None:
    index(store, CORPUS)
    store.delete([CORPUS[0].id, str(uuid.uuid4())])  # unknown ids are ignored
    assert store.count() == len(CORPUS) - 1
    assert store.delete_where(source="pets") == 2
    assert store.sources() == {"docs": 2}
    assert store.delete_where(source="pets") == 0


def test_delete_where_refuses_to_delete_everything(store: VectorStore) -> None:
    index(store, CORPUS)
    with pytest.raises(InternalError):
        store.delete_where(content_hash_not="v1")
    assert store.count() == len(CORPUS)


def test_page_chunks_come_in_page_order_and_sources_are_counted(store: VectorStore) -> None:
    index(store, list(reversed(CORPUS)))
    assert [chunk.position for chunk in store.get_page_chunks("https://d.test/http")] == [0, 1, 2]
    assert store.get_page_chunks("https://d.test/none") == []
    assert store.sources() == {"docs": 3, "pets": 2}
    assert sorted(chunk.id for chunk in store.iter_chunks(batch_size=2)) == sorted(c.id for c in CORPUS)


def test_model_switch_builds_a_new_collection_and_swaps_the_alias(store: VectorStore) -> None:
    index(store, CORPUS)
    first = store.info()

    store.open("bigger-model", 2 * DIM)
    second = store.info()
    assert second["collection"] != first["collection"]
    assert (second["dim"], second["points"], second["active"]) == (2 * DIM, 0, True)
    index(store, CORPUS[:2])  # 16-d vectors go in next to the 8-d ones without conflict
    assert store.dense_search(vectors_for(CORPUS[:1], 2 * DIM)[0], limit=1)[0].chunk == CORPUS[0]

    listed = {entry["collection"]: entry for entry in store.collections()}
    assert listed[first["collection"]]["points"] == len(CORPUS)
    assert listed[first["collection"]]["active"] is False
    assert (listed[second["collection"]]["dim"], listed[second["collection"]]["active"]) == (2 * DIM, True)

    # Opening without activating leaves the alias where it is, until activate().
    store.open("test-model", DIM, activate=False)
    assert store.info()["points"] == len(CORPUS)
    assert store.info()["active"] is False
    store.activate()
    assert store.info()["active"] is True

    with pytest.raises(UserError):
        store.drop_collection(first["collection"])  # the open one
    store.drop_collection(second["collection"])
    assert [entry["collection"] for entry in store.collections()] == [first["collection"]]


def test_reusing_a_model_name_with_another_dimension_is_a_config_error(store: VectorStore) -> None:
    index(store, CORPUS)
    with pytest.raises(ConfigError, match="8-d vectors"):
        store.open("test-model", DIM + 1)


def test_bad_input_is_rejected_before_anything_is_written(store: VectorStore) -> None:
    chunk = make_chunk("https://d.test/x", 0, "text")
    with pytest.raises(InternalError, match="UUID"):
        store.upsert(
            [dataclasses.replace(chunk, id="not-a-uuid")], vectors_for([chunk]), [encode_document("text")]
        )
    with pytest.raises(InternalError, match="one dense row"):
        store.upsert([chunk], np.zeros((2, DIM), dtype=np.float32), [encode_document("text")])
    with pytest.raises(InternalError, match="4-d"):
        store.upsert([chunk], np.ones((1, 4), dtype=np.float32), [encode_document("text")])
    with pytest.raises(InternalError, match="query vector"):
        store.dense_search(np.ones(3, dtype=np.float32), limit=1)
    assert store.count() == 0


def test_a_store_that_is_not_open_says_so(tmp_path: Path) -> None:
    for unopened in (EdgeStore(tmp_path / "q"), QdrantServerStore(location=":memory:")):
        with pytest.raises(InternalError, match="not open"):
            unopened.count()
        with pytest.raises(NotFoundError):
            unopened.open_current()
        unopened.close()


def test_reopen_after_close_keeps_data_and_alias(reopenable: Factory) -> None:
    first = reopenable()
    first.open("test-model", DIM)
    dense = index(first, CORPUS)
    first.open("other-model", 4, activate=False)  # alias stays on test-model
    first.close()

    second = reopenable()
    second.open_current()
    try:
        assert second.info()["model"] == "test-model"
        assert second.count() == len(CORPUS)
        assert second.dense_search(dense[1], limit=1)[0].chunk == CORPUS[1]
    finally:
        second.close()


def test_both_backends_rank_bm25_with_identical_scores(tmp_path: Path) -> None:
    query = encode_query("get a page with tinyhttp")
    results = []
    for backend in (EdgeStore(tmp_path / "q"), QdrantServerStore(location=":memory:")):
        with backend:
            backend.open("test-model", DIM)
            index(backend, CORPUS)
            results.append([(hit.chunk.id, hit.score) for hit in backend.sparse_search(query, limit=10)])
    edge, client = results
    assert [chunk_id for chunk_id, _ in edge] == [chunk_id for chunk_id, _ in client]
    assert [score for _, score in edge] == pytest.approx([score for _, score in client], rel=1e-5)


# -- The BM25 encoder a collection was built with ----------------------------------------------------

# Any other k1/b/avgdl or tokenizer version has another signature: this stands for a changed encoder.
OTHER_ENCODER = Bm25Encoder(k1=2.0)


def bm25_ranking(store: VectorStore, query: str = "get a page with tinyhttp") -> list[tuple[str, float]]:
    return [(hit.chunk.id, hit.score) for hit in store.sparse_search(encode_query(query), limit=10)]


def build_and_close(reopenable: Factory) -> tuple[np.ndarray, str, list[tuple[str, float]]]:
    """Index CORPUS with the default encoder; returns the dense vectors, the signature and a BM25 ranking."""
    store = reopenable()
    store.open("test-model", DIM)
    try:
        dense = index(store, CORPUS)
        return dense, store.info()["sparse"], bm25_ranking(store)
    finally:
        store.close()


def test_a_collection_of_another_bm25_encoder_refuses_bm25_use_and_keeps_its_data(
    reopenable: Factory,
) -> None:
    dense, built_with, ranking = build_and_close(reopenable)
    assert built_with == DEFAULT_ENCODER.signature

    changed = reopenable(sparse_encoder=OTHER_ENCODER)
    changed.open("test-model", DIM)  # opening works: removing sources and backups must stay possible
    try:
        new = make_chunk("https://d.test/new", 0, "A new page about tinyhttp.")
        new_sparse = [OTHER_ENCODER.encode_document(new.text)]
        query = OTHER_ENCODER.encode_query("tinyhttp")
        refused = {
            "upsert": lambda: changed.upsert([new], vectors_for([new]), new_sparse),
            "sparse search": lambda: changed.sparse_search(query, limit=5),
            "sparse candidates": lambda: changed.sparse_candidates(query, limit=5),
            "hybrid search": lambda: changed.hybrid_search(dense[0], query, 5),
        }
        for what, attempt in refused.items():
            with pytest.raises(ConfigError) as caught:
                attempt()
            error = caught.value
            assert built_with in error.message and OTHER_ENCODER.signature in error.message, what
            assert "`evorag sources remove NAME`" in error.hint and "`evorag crawl URL`" in error.hint, what
        # What does not touch BM25 still works.
        assert changed.dense_search(dense[3], limit=1)[0].chunk == CORPUS[3]
        assert changed.dense_candidates(dense[3], limit=1)[0].id == CORPUS[3].id
        dense_only = changed.hybrid_search(dense[3], query, 1, weights=(1.0, 0.0))
        assert dense_only[0].chunk == CORPUS[3]
        assert changed.count() == len(CORPUS)  # the refused upsert wrote nothing
        assert changed.info()["sparse"] == built_with
    finally:
        changed.close()

    again = reopenable()
    again.open("test-model", DIM)
    try:
        assert again.info()["sparse"] == built_with  # the failing calls recorded nothing
        assert bm25_ranking(again) == ranking
    finally:
        again.close()


def test_an_emptied_collection_takes_the_new_bm25_encoder(reopenable: Factory) -> None:
    build_and_close(reopenable)

    changed = reopenable(sparse_encoder=OTHER_ENCODER)
    changed.open("test-model", DIM)
    try:
        changed.delete_where(source="docs")  # removing sources is allowed: it is the way out
        first = CORPUS[:1]
        with pytest.raises(ConfigError):  # the pets chunks are still the old encoder's
            changed.upsert(first, vectors_for(first), [OTHER_ENCODER.encode_document(first[0].text)])
        changed.delete_where(source="pets")  # the last chunks of the old encoder
        changed.upsert(CORPUS, vectors_for(CORPUS), [OTHER_ENCODER.encode_document(c.text) for c in CORPUS])
        assert changed.info()["sparse"] == OTHER_ENCODER.signature
        hits = changed.sparse_search(OTHER_ENCODER.encode_query("tinyhttp.get"), limit=1)
        assert hits[0].chunk == CORPUS[0]
    finally:
        changed.close()

    previous = reopenable()  # the switch is recorded: now the default encoder is the odd one out
    previous.open("test-model", DIM)
    try:
        with pytest.raises(ConfigError, match=r"k1=2:"):
            previous.sparse_search(encode_query("tinyhttp"), limit=1)
    finally:
        previous.close()


def forget_bm25_signature(store: VectorStore, tmp_path: Path) -> None:
    """Make a closed store's collection look like one that never recorded its encoder."""
    name = collection_name("evorag", "test-model")
    if isinstance(store, EdgeStore):
        meta_path = store.root / "collections" / name / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        del meta["sparse"]
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
        return
    # Metadata updates merge keys: a null one is dropped.
    client = QdrantClient(path=str(tmp_path / "local"))
    try:
        client.update_collection(name, metadata={"sparse": None})
        assert "sparse" not in client.get_collection(name).config.metadata
    finally:
        client.close()


def test_a_collection_that_never_recorded_its_bm25_encoder_is_accepted_and_recorded(
    reopenable: Factory, tmp_path: Path
) -> None:
    _, _, ranking = build_and_close(reopenable)
    backend = reopenable()
    backend.close()  # local mode locks its folder from construction on
    forget_bm25_signature(backend, tmp_path)

    unsigned = reopenable()
    unsigned.open("test-model", DIM)
    try:
        assert unsigned.info()["sparse"] == DEFAULT_ENCODER.signature
        assert bm25_ranking(unsigned) == ranking
    finally:
        unsigned.close()

    changed = reopenable(sparse_encoder=OTHER_ENCODER)  # recorded for good: a later change is caught
    changed.open("test-model", DIM)
    try:
        with pytest.raises(ConfigError):
            changed.sparse_search(OTHER_ENCODER.encode_query("tinyhttp"), limit=1)
    finally:
        changed.close()


# -- Qdrant Edge specifics ---------------------------------------------------------------------


def test_edge_writes_survive_kill_9_once_upsert_returns(tmp_path: Path) -> None:
    writer = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_vector_store import CORPUS, index
        from evorag.tools.stores import EdgeStore
        store = EdgeStore({str(tmp_path / "qdrant")!r})
        store.open("test-model", {DIM})
        index(store, CORPUS)
        store.delete([CORPUS[4].id])
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", writer], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.strip() == "written"

    with EdgeStore(tmp_path / "qdrant") as store:
        store.open_current()
        assert store.count() == len(CORPUS) - 1
        assert store.sparse_search(encode_query("tinyhttp.get"), limit=1)[0].chunk == CORPUS[0]


def test_edge_collection_in_use_is_a_store_error(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "q") as first:
        first.open("test-model", DIM)
        second = EdgeStore(tmp_path / "q")
        with pytest.raises(StoreError, match="in use"):
            second.open("test-model", DIM)


def test_edge_optimize_keeps_results_and_snapshot_restores(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "q") as store:
        store.open("test-model", DIM)
        dense = index(store, CORPUS)
        before = [hit.chunk.id for hit in store.sparse_search(encode_query("tinyhttp get page"), limit=10)]
        store.optimize()
        after = [hit.chunk.id for hit in store.sparse_search(encode_query("tinyhttp get page"), limit=10)]
        assert after == before
        assert store.dense_search(dense[2], limit=1)[0].chunk == CORPUS[2]
        snapshot = store.snapshot(tmp_path / "backup")
        with pytest.raises(UserError):
            store.snapshot(tmp_path / "backup")

    with EdgeStore(snapshot) as restored:
        restored.open_current()
        assert restored.count() == len(CORPUS)
        assert restored.get_page_chunks("https://d.test/cats") == CORPUS[3:]


def test_store_from_settings_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVORAG_QDRANT_URL", raising=False)
    embedded = store_from_settings(Settings(home=tmp_path))
    assert isinstance(embedded, EdgeStore)
    assert embedded.root == tmp_path / "qdrant"

    remote = store_from_settings(Settings(home=tmp_path, qdrant_url="http://127.0.0.1:1"))
    assert isinstance(remote, QdrantServerStore)
    with pytest.raises(StoreError, match="127.0.0.1:1"):
        remote.open("test-model", DIM)  # nothing listens there: a clear error, not a traceback
    remote.close()


def test_invalid_alias_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        EdgeStore(tmp_path, alias="Bad Alias!")
