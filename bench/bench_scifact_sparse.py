"""nDCG@10 of evorag's BM25 (tools.sparse through a real EdgeStore) on BEIR SciFact, vs bm25s.

No embeddings are involved: documents get a constant 1-d dense vector and only ``sparse_search``
ranks them, so this measures the tokenizer, the BM25 weights and Qdrant's IDF together, exactly as
the search service uses them. The baseline is bm25s (Lucene BM25, Snowball stemmer, its English
stopwords) in the same run. Published BM25 on SciFact: 0.665 (Anserini) to 0.679.

    python bench/bench_scifact_sparse.py [--data /work/shared/data/scifact] [--grid]

``--fusion EMBEDDINGS.npz`` adds the hybrid table: dense (the configured embedder, all-MiniLM-L6-v2 by
default; computed once, about 15 minutes on 2 cores, and cached in that file) and BM25 candidates
(100 each) from one EdgeStore, fused by every method of tools.fusion over a small grid. The grid is
scored on the test queries themselves, so read the best row as optimistic; the untuned rows
(equal weights) are the fair comparison with published figures.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evorag.tools.fusion import fuse
from evorag.tools.sparse import DEFAULT_ENCODER, Bm25Encoder
from evorag.tools.stores import EdgeStore
from evorag.tools.types import Chunk

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def load(data: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {}
    with open(data / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[doc["_id"]] = f"{doc.get('title', '')} {doc['text']}".strip()
    with open(data / "queries.jsonl", encoding="utf-8") as handle:
        queries = {q["_id"]: q["text"] for q in map(json.loads, handle)}
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.strip().split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return corpus, queries, qrels


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    return dcg / sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))


def evaluate_store(encoder: Bm25Encoder, corpus, queries, qrels) -> tuple[float, float, float]:
    """(nDCG@10, recall@100, indexing seconds) of the encoder served by a real EdgeStore."""
    chunks, doc_of = scifact_chunks(corpus)
    root = Path(tempfile.mkdtemp(prefix="evorag-scifact-"))
    try:
        with EdgeStore(root) as store:
            store.open("no-dense", 1)
            start = time.perf_counter()
            for begin in range(0, len(chunks), 1024):
                part = chunks[begin : begin + 1024]
                store.upsert(
                    part, np.ones((len(part), 1), np.float32), [encoder.encode_document(c.text) for c in part]
                )
            seconds = time.perf_counter() - start
            ndcgs, recalls = [], []
            for query_id, relevant in qrels.items():
                hits = store.sparse_search(encoder.encode_query(queries[query_id]), limit=100)
                ranked = [doc_of[hit.chunk.id] for hit in hits]
                ndcgs.append(ndcg_at_10(ranked, relevant))
                recalls.append(len(set(ranked) & set(relevant)) / len(relevant))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return float(np.mean(ndcgs)), float(np.mean(recalls)), seconds


def evaluate_bm25s(corpus, queries, qrels, k1: float, b: float) -> float:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(corpus)
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(
        bm25s.tokenize([corpus[d] for d in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    query_ids = list(qrels)
    tokens = bm25s.tokenize(
        [queries[q] for q in query_ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    results, _ = retriever.retrieve(tokens, k=10, show_progress=False)
    return float(
        np.mean([ndcg_at_10([doc_ids[j] for j in results[i]], qrels[q]) for i, q in enumerate(query_ids)])
    )


def scifact_chunks(corpus: dict[str, str]) -> tuple[list[Chunk], dict[str, str]]:
    doc_of = {str(uuid.uuid5(uuid.NAMESPACE_URL, f"scifact:{doc_id}")): doc_id for doc_id in corpus}
    chunks = [
        Chunk(
            id=chunk_id,
            url=f"scifact://{doc_id}",
            source="scifact",
            title="",
            heading_path=[],
            text=corpus[doc_id],
            kind="text",
            position=0,
            content_hash="",
            crawled_at=0.0,
        )
        for chunk_id, doc_id in doc_of.items()
    ]
    return chunks, doc_of


def load_embeddings(path: Path, corpus, queries) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """(model name, corpus matrix in corpus order, query vectors by id), computed once and cached."""
    if path.exists():
        cached = np.load(path)
        if list(cached["doc_ids"]) == list(corpus) and list(cached["query_ids"]) == list(queries):
            return str(cached["model"]), cached["docs"], dict(zip(queries, cached["queries"], strict=True))
    from evorag.tools.embedding import create_embedder

    from evorag.settings import load_settings

    embedder = create_embedder(load_settings())
    start = time.perf_counter()
    docs = embedder.embed_documents(list(corpus.values()))
    query_matrix = embedder.embed_documents(list(queries.values()))
    print(f"embedded {len(corpus):,} documents with {embedder.name} in {time.perf_counter() - start:.0f} s")
    np.savez(
        path,
        model=embedder.name,
        docs=docs,
        queries=query_matrix,
        doc_ids=np.array(list(corpus)),
        query_ids=np.array(list(queries)),
    )
    return embedder.name, docs, dict(zip(queries, query_matrix, strict=True))


def fusion_table(corpus, queries, qrels, embeddings: Path) -> None:
    model, docs, query_vectors = load_embeddings(embeddings, corpus, queries)
    chunks, doc_of = scifact_chunks(corpus)
    root = Path(tempfile.mkdtemp(prefix="evorag-scifact-"))
    try:
        with EdgeStore(root) as store:
            store.open(model, docs.shape[1])
            store.upsert(chunks, docs, [DEFAULT_ENCODER.encode_document(chunk.text) for chunk in chunks])
            candidates = {
                query_id: (
                    store.dense_search(query_vectors[query_id], 100),
                    store.sparse_search(DEFAULT_ENCODER.encode_query(queries[query_id]), 100),
                )
                for query_id in qrels
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def score(rank) -> float:
        return float(
            np.mean([ndcg_at_10([doc_of[h.chunk.id] for h in rank(*candidates[q])], qrels[q]) for q in qrels])
        )

    rows = [
        (f"dense only ({model})", score(lambda dense, sparse: dense)),
        ("BM25 only", score(lambda d, s: s)),
    ]
    grid = [("rrf", k, w) for k in (60, 20, 10, 5) for w in (1.0, 1.3, 1.6)]
    grid += [("qdrant_rrf", k, w) for k in (61, 10, 2) for w in (1.0, 1.3)]
    grid += [(method, 0, w) for method in ("minmax", "dbsf") for w in (0.7, 1.0, 1.3, 1.6, 2.0)]
    for method, k, weight in grid:
        label = f"{method}{f' k={k}' if k else ''}, weights dense 1 / sparse {weight:g}"
        rows.append(
            (label, score(lambda d, s, m=method, k=k, w=weight: fuse([d, s], [1.0, w], method=m, k=k or 60)))
        )
    print(f"\nhybrid on SciFact test ({len(qrels)} queries, 100 candidates each):")
    print(f"{'fusion':<58}{'nDCG@10':>9}")
    for label, value in rows:
        print(f"{label:<58}{value:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--grid", action="store_true", help="also try other k1 / b / avgdl")
    parser.add_argument("--fusion", type=Path, metavar="EMBEDDINGS.npz", help="add the hybrid fusion table")
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    print(f"SciFact: {len(corpus):,} documents, {len(qrels)} test queries\n")

    configs = [Bm25Encoder()]
    if args.grid:
        configs += [
            Bm25Encoder(k1=k1, b=b, avgdl=avgdl)
            for k1, b, avgdl in [
                (1.5, 0.75, 150),
                (0.9, 0.4, 150),
                (1.2, 0.75, 100),
                (1.2, 0.75, 250),
                (2.0, 0.75, 150),
            ]
        ]
    print(f"{'retriever':<58}{'nDCG@10':>9}{'R@100':>8}{'index s':>9}")
    for k1, b in ((1.2, 0.75), (1.5, 0.75)):
        print(
            f"{f'bm25s lucene k1={k1} b={b} (baseline)':<58}{evaluate_bm25s(corpus, queries, qrels, k1, b):>9.4f}"
        )
    for encoder in configs:
        ndcg, recall, seconds = evaluate_store(encoder, corpus, queries, qrels)
        label = f"evorag EdgeStore k1={encoder.k1:g} b={encoder.b:g} avgdl={encoder.avgdl:g}"
        print(f"{label:<58}{ndcg:>9.4f}{recall:>8.3f}{seconds:>9.1f}")
    if args.fusion:
        fusion_table(corpus, queries, qrels, args.fusion)


if __name__ == "__main__":
    main()
