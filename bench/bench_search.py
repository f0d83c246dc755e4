"""Hybrid search latency of the vector stores against brute-force numpy, measured in the same run.

For each size: random unit 384-d vectors and synthetic chunk text drawn from a Zipf vocabulary with
code-like identifiers, BM25-encoded by tools.sparse. The vectors are random points of a 48-d latent
space mapped into 384-d plus noise, like real sentence embeddings (which have a low intrinsic
dimension); ``--uniform`` uses uniform random 384-d vectors instead, a worst case for HNSW that no
embedding model produces (recall@10 ~0.9 at hnsw_ef=128 there, vs 0.99). Measured:

* ingest: sparse encoding + upsert, then ``optimize()`` (HNSW + sparse index build), reported apart;
* hybrid query (excluding the query embedding, which is the same for every store):
  what the service runs (``evorag.tools.search``): BM25 query encoding + id-only ``dense_candidates`` and
  ``sparse_candidates`` (``--candidates`` each) + RRF in Python + the payloads of the fused top only;
  and ``hybrid_search``, the same RRF done by the engine in one request;
* the baseline: ``X @ q`` + ``argpartition`` + sort of the top candidates over the same vectors,
  with OpenBLAS' default threads and with one thread; the faster p95 of the two is the baseline.

Engines are timed round-robin, query by query, so background load hits them alike.

Target: EdgeStore hybrid p95 <= 2x the numpy dense p95 at 100k chunks.

    python bench/bench_search.py --sizes 10000,100000 [--queries 300] [--client-reference 10000]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evorag.tools.search import HybridSearcher, SearchOptions
from evorag.tools.sparse import encode_document, encode_query
from evorag.tools.stores import EdgeStore, QdrantServerStore, SearchFilter, VectorStore
from evorag.tools.types import Chunk

DIM = 384
WORDS_PER_CHUNK = 180
VOCABULARY = 30_000
SOURCES = ("python", "numpy", "httpx", "qdrant")


def make_vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set()
    while len(words) < VOCABULARY:
        length = int(rng.integers(3, 11))
        words.add("".join(rng.choice(letters, length)))
    vocabulary = sorted(words)
    rng.shuffle(vocabulary)
    # Every 50th word is an identifier, as in API documentation.
    for i in range(0, VOCABULARY, 50):
        vocabulary[i] = f"{vocabulary[i]}.{vocabulary[i + 1]}_{vocabulary[i + 2]}"
    return vocabulary


def zipf_words(rng: np.random.Generator, vocabulary: list[str], count: int) -> list[str]:
    ranks = rng.zipf(1.1, count) - 1
    return [vocabulary[rank % VOCABULARY] for rank in ranks]


def make_chunks(rng: np.random.Generator, vocabulary: list[str], size: int) -> list[Chunk]:
    chunks = []
    for i in range(size):
        page, position = divmod(i, 8)
        chunks.append(
            Chunk(
                id=str(uuid.UUID(int=i + 1)),
                url=f"https://docs.test/page/{page}",
                source=SOURCES[page % len(SOURCES)],
                title=f"Page {page}",
                heading_path=["Guide", f"Section {position}"],
                text=" ".join(zipf_words(rng, vocabulary, WORDS_PER_CHUNK)),
                kind="code" if i % 5 == 0 else "text",
                position=position,
                content_hash=f"{page:08x}",
                crawled_at=1_700_000_000.0,
                language="python" if i % 5 == 0 else None,
            )
        )
    return chunks


LATENT = 48
_MIXING = np.random.default_rng(7).standard_normal((LATENT, DIM), dtype=np.float32) / np.sqrt(LATENT)


def unit_vectors(rng: np.random.Generator, count: int, uniform: bool = False) -> np.ndarray:
    if uniform:
        matrix = rng.standard_normal((count, DIM), dtype=np.float32)
    else:
        matrix = rng.standard_normal((count, LATENT), dtype=np.float32) @ _MIXING
        matrix += 0.3 * rng.standard_normal((count, DIM), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return p50 * 1000, p95 * 1000


def timed_round_robin(
    runs: dict[str, Callable[[int], object]], count: int, warmup: int = 10
) -> dict[str, list[float]]:
    """Seconds per call of each run, alternating runs on every query index."""
    for i in range(min(warmup, count)):
        for run in runs.values():
            run(i)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    gc.collect()
    gc.disable()
    try:
        for i in range(count):
            for name, run in runs.items():
                start = time.perf_counter()
                run(i)
                samples[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return samples


def ingest(
    store: VectorStore, chunks: list[Chunk], dense: np.ndarray, batch: int = 1024
) -> tuple[float, float]:
    """(encode + upsert seconds, optimize seconds)."""
    start = time.perf_counter()
    for begin in range(0, len(chunks), batch):
        part = chunks[begin : begin + batch]
        store.upsert(part, dense[begin : begin + batch], [encode_document(chunk.text) for chunk in part])
    upserted = time.perf_counter()
    store.optimize()
    store.flush()
    return upserted - start, time.perf_counter() - upserted


def hybrid(store: VectorStore, candidates: int, limit: int, where: SearchFilter | None = None):
    """The search the service runs (``evorag.tools.search.HybridSearcher``), minus the query embedding: id-only
    dense and BM25 candidates, RRF in Python, then the payloads of the fused top ``limit``."""
    searcher = HybridSearcher(store, embedder=None)  # type: ignore[arg-type] - the vector is given
    options = SearchOptions(limit=limit, candidates=candidates, fusion="rrf", rrf_k=60,
                            source=where.source if where else None, kind=where.kind if where else None)

    def run(vector: np.ndarray, text: str):
        return searcher.search_vector(text, vector, options)

    return run


def numpy_dense(matrix: np.ndarray, candidates: int):
    def run(vector: np.ndarray) -> np.ndarray:
        scores = matrix @ vector
        top = np.argpartition(-scores, candidates)[:candidates]
        return top[np.argsort(-scores[top])]

    return run


def recall_at(store: VectorStore, matrix: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k (numpy) that the store's dense search returns: HNSW accuracy."""
    exact = numpy_dense(matrix, k)
    found = 0
    for vector in queries[:100]:
        truth = {str(uuid.UUID(int=int(i) + 1)) for i in exact(vector)}
        found += len(truth & {hit.chunk.id for hit in store.dense_search(vector, k)})
    return found / (k * min(100, len(queries)))


def single_threaded_samples(run: Callable[[int], object], count: int) -> list[float]:
    """Timings of ``run`` with BLAS limited to one thread (set once: toggling costs ~2 ms)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return timed_round_robin({"run": run}, count)["run"]


Row = tuple[str, int, str, float, float]


def measure_size(
    size: int,
    args: argparse.Namespace,
    vocabulary: list[str],
    query_texts: list[str],
    query_vectors: np.ndarray,
) -> tuple[list[Row], list[str]]:
    """Table rows and notes for one collection size."""
    chunks = make_chunks(np.random.default_rng(size), vocabulary, size)
    matrix = unit_vectors(np.random.default_rng(size + 1), size, args.uniform)
    baseline = numpy_dense(matrix, args.candidates)
    notes: list[str] = []

    root = Path(tempfile.mkdtemp(prefix="evorag-bench-"))
    store = EdgeStore(root)
    try:
        store.open("bench-model", DIM)
        upsert_s, optimize_s = ingest(store, chunks, matrix)
        recall = recall_at(store, matrix, query_vectors)
        notes.append(
            f"EdgeStore {size:,}: encode+upsert {upsert_s:.1f} s ({size / upsert_s:,.0f} chunks/s), "
            f"optimize {optimize_s:.1f} s, dense recall@10 vs exact {recall:.3f}"
        )
        search = hybrid(store, args.candidates, args.limit)
        filtered = hybrid(store, args.candidates, args.limit, SearchFilter(source="numpy"))
        runs: dict[str, Callable[[int], object]] = {
            "numpy brute-force dense": lambda i: baseline(query_vectors[i]),
            "EdgeStore hybrid": lambda i: search(query_vectors[i], query_texts[i]),
            "EdgeStore hybrid, source filter": lambda i: filtered(query_vectors[i], query_texts[i]),
            "EdgeStore hybrid_search (in-engine)": lambda i: store.hybrid_search(
                query_vectors[i], encode_query(query_texts[i]), args.limit, candidates=args.candidates, k=61
            ),
        }
        samples = timed_round_robin(runs, args.queries)
        samples["numpy brute-force dense, 1 thread"] = single_threaded_samples(
            lambda i: baseline(query_vectors[i]), args.queries
        )
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)

    base_p95 = min(percentiles(values)[1] for name, values in samples.items() if name.startswith("numpy"))
    rows: list[Row] = []
    for name, values in sorted(samples.items(), key=lambda item: not item[0].startswith("numpy")):
        p50, p95 = percentiles(values)
        if name.startswith("EdgeStore"):
            ratio = f"{p95 / base_p95:.2f}x"
        else:
            ratio = "baseline" if p95 == base_p95 else ""
        rows.append((name, size, ratio, p50, p95))

    if size == args.client_reference:
        client = QdrantServerStore(location=":memory:")
        client.open("bench-model", DIM)
        upsert_s, _ = ingest(client, chunks, matrix)
        notes.append(f"qdrant-client local {size:,}: encode+upsert {upsert_s:.1f} s")
        local = hybrid(client, args.candidates, args.limit)
        count = min(args.client_queries, args.queries)
        values = timed_round_robin({"local": lambda i: local(query_vectors[i], query_texts[i])}, count, 2)
        p50, p95 = percentiles(values["local"])
        rows.append((f"qdrant-client local hybrid ({count} q)", size, f"{p95 / base_p95:.2f}x", p50, p95))
        client.close()
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--candidates", type=int, default=100, help="hits per retriever before fusion")
    parser.add_argument("--limit", type=int, default=10, help="fused hits returned")
    parser.add_argument("--uniform", action="store_true", help="uniform random vectors (HNSW worst case)")
    parser.add_argument(
        "--client-reference",
        type=int,
        default=10000,
        help="also time qdrant-client local mode at this size (0 to skip; it is slow)",
    )
    parser.add_argument("--client-queries", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]

    rng = np.random.default_rng(42)
    vocabulary = make_vocabulary(rng)
    query_texts = [
        " ".join(zipf_words(rng, vocabulary, int(rng.integers(2, 7)))) for _ in range(args.queries)
    ]
    query_vectors = unit_vectors(rng, args.queries, args.uniform)

    rows: list[Row] = []
    notes: list[str] = []
    for size in sizes:
        size_rows, size_notes = measure_size(size, args, vocabulary, query_texts, query_vectors)
        rows += size_rows
        notes += size_notes
        gc.collect()

    print(
        f"\nhybrid = encode_query + id-only dense and BM25 candidates ({args.candidates} each) + "
        f"rrf(limit={args.limit}) + the top {args.limit} payloads (tools.search); hybrid_search = the same candidates fused by Qdrant (k=61, the textbook 60); "
        f"{args.queries} queries; payloads of the results included; query embedding excluded; "
        f"{'uniform' if args.uniform else 'embedding-like'} vectors"
    )
    print(f"{'engine':<40}{'chunks':>9}{'p50 ms':>10}{'p95 ms':>10}{'p95 / baseline p95':>20}")
    for name, size, ratio, p50, p95 in rows:
        print(f"{name:<40}{size:>9,}{p50:>10.2f}{p95:>10.2f}{ratio:>20}")
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
