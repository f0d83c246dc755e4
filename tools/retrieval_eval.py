"""Retrieval evaluation: BEIR data sets (indexed directly, no crawl) and golden sets over crawled sources.

The caller hands in the index parts and the search options (the service builds them from the settings)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from evorag.tools.answering import Answer
from evorag.tools.datasets import BeirDataset, GoldenItem
from evorag.tools.evaluation import evaluate_run
from evorag.tools.indexer import Indexer
from evorag.tools.search import HybridSearcher, SearchOptions
from evorag.tools.types import Page

BEIR_SCHEME = "beir://"
HEADLINE_KS = (1, 3, 5, 10, 100)


@dataclass(slots=True)
class RetrievalEvalResult:
    dataset: str
    kind: str  # "beir" | "golden"
    metrics: dict[str, float]
    queries: int
    index_seconds: float = 0.0
    search_seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def beir_source_name(dataset: BeirDataset) -> str:
    return f"beir-{dataset.name}"[:64]


def _fingerprint(dataset: BeirDataset) -> str:
    digest = hashlib.sha256()
    for doc_id in sorted(dataset.corpus):
        doc = dataset.corpus[doc_id]
        digest.update(f"{doc_id}\0{doc.get('title', '')}\0{doc.get('text', '')}\0".encode())
    return digest.hexdigest()[:16]


def index_beir(dataset: BeirDataset, indexer: Indexer, *, advance: Callable[[int], None] | None = None) -> float:
    """Index a BEIR corpus as a source of its own; skipped when the same corpus is already indexed."""
    catalog = indexer.catalog
    source = beir_source_name(dataset)
    fingerprint = _fingerprint(dataset)
    existing = catalog.get_source(source)
    if existing and existing.options.get("fingerprint") == fingerprint and existing.last_crawl_at:
        return 0.0
    started = time.monotonic()
    if existing:
        indexer.remove_source(source)
    catalog.upsert_source(source, None, {"kind": "beir", "fingerprint": fingerprint})
    pages = []
    now = time.time()
    for doc_id, doc in dataset.corpus.items():
        text = doc.get("text", "")
        pages.append(
            Page(
                url=f"{BEIR_SCHEME}{dataset.name}/{doc_id}",
                title=doc.get("title", ""),
                markdown=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                fetched_at=now,
            )
        )
    batch = 128
    for start in range(0, len(pages), batch):
        indexer.index_pages(source, pages[start : start + batch])
        if advance:
            advance(len(pages[start : start + batch]))
    catalog.finish_crawl(source, {"documents": len(pages)})
    indexer.store.optimize()  # one index build after the bulk ingest
    return time.monotonic() - started


def _ranked_unique(urls: list[str], strip: str = "") -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(url[len(strip):] if strip and url.startswith(strip) else url, None)
    return list(seen)


def evaluate_beir(
    dataset: BeirDataset,
    indexer: Indexer,
    options: SearchOptions,
    *,
    max_queries: int | None = None,
    advance_index: Callable[[int], None] | None = None,
) -> RetrievalEvalResult:
    """Index ``dataset`` (unless already indexed) and measure retrieval on its queries with ``options``."""
    index_seconds = index_beir(dataset, indexer, advance=advance_index)
    source = beir_source_name(dataset)
    query_ids = sorted(dataset.queries)[: max_queries or None]
    options.source = source
    searcher = HybridSearcher(indexer.store, indexer.embedder)
    started = time.monotonic()
    vectors = indexer.embedder.embed_documents([dataset.queries[qid] for qid in query_ids])
    prefix = f"{BEIR_SCHEME}{dataset.name}/"
    run = {}
    for qid, vector in zip(query_ids, vectors, strict=True):
        hits = searcher.search_vector(dataset.queries[qid], vector, options)
        run[qid] = _ranked_unique([hit.chunk.url for hit in hits], prefix)
    search_seconds = time.monotonic() - started
    qrels = {qid: dataset.qrels[qid] for qid in query_ids if qid in dataset.qrels}
    return RetrievalEvalResult(
        dataset=dataset.name,
        kind="beir",
        metrics=evaluate_run(run, qrels, HEADLINE_KS),
        queries=len(qrels),
        index_seconds=round(index_seconds, 2),
        search_seconds=round(search_seconds, 2),
        config={"embedder": indexer.embedder.name, "fusion": options.fusion, "rrf_k": options.rrf_k,
                "dense_weight": options.dense_weight,
                "sparse_weight": options.sparse_weight, "candidates": options.candidates},
    )


def _golden_key(url: str, keys_are_paths: bool) -> str:
    return urlsplit(url).path or "/" if keys_are_paths else url


def evaluate_golden(
    items: list[GoldenItem],
    searcher: HybridSearcher,
    options: SearchOptions,
    *,
    name: str,
    ask: Callable[[str, str], Answer] | None = None,
) -> RetrievalEvalResult:
    """Golden set ``{query, relevant: {url: grade}, answer?}`` against already crawled sources.

    Relevance keys may be full URLs or URL paths (``/guide/install.html``), which makes a golden set portable
    across hosts. With ``ask(query, reference)``, items with a reference answer are also answered and scored;
    their means are reported as ``answer_*`` metrics.
    """
    keys_are_paths = all(key.startswith("/") for item in items for key in item.relevant)
    options.kind = "text"
    started = time.monotonic()
    run, qrels = {}, {}
    for number, item in enumerate(items):
        hits = searcher.search(item.query, options)
        run[str(number)] = _ranked_unique([_golden_key(hit.chunk.url, keys_are_paths) for hit in hits])
        qrels[str(number)] = item.relevant
    metrics = evaluate_run(run, qrels, (1, 3, 5, 10))
    answered = [item for item in items if item.answer] if ask is not None else []
    totals: dict[str, list[float]] = {}
    for item in answered:
        answer = ask(item.query, item.answer)
        for metric in ("overall", "grounding", "rougeL", "ndcg", "code_quality"):
            value = (answer.metrics or {}).get(metric)
            if isinstance(value, (int, float)):
                totals.setdefault(f"answer_{metric}", []).append(float(value))
        totals.setdefault("answer_fallback_rate", []).append(1.0 if answer.fallback else 0.0)
    metrics.update({metric: sum(values) / len(values) for metric, values in totals.items()})
    return RetrievalEvalResult(
        dataset=name,
        kind="golden",
        metrics=metrics,
        queries=len(items),
        search_seconds=round(time.monotonic() - started, 2),
        config={"embedder": searcher.embedder.name, "source": options.source, "answered": len(answered)},
    )
