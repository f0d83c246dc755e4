"""Retrieval evaluation: BEIR folders (indexed directly, no crawl) and golden sets over crawled sources."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from evorag.tools.datasets import BeirDataset, GoldenItem, load_beir, load_golden
from evorag.tools.evaluation import evaluate_run
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


def index_beir(service, dataset: BeirDataset, *, advance: Callable[[int], None] | None = None) -> float:
    """Index a BEIR corpus as a source of its own; skipped when the same corpus is already indexed."""
    source = beir_source_name(dataset)
    fingerprint = _fingerprint(dataset)
    existing = service.catalog.get_source(source)
    if existing and existing.options.get("fingerprint") == fingerprint and existing.last_crawl_at:
        return 0.0
    started = time.monotonic()
    indexer = service._indexer()
    if existing:
        indexer.remove_source(source)
    service.catalog.upsert_source(source, None, {"kind": "beir", "fingerprint": fingerprint})
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
    service.catalog.finish_crawl(source, {"documents": len(pages)})
    service.store.optimize()  # one index build after the bulk ingest
    return time.monotonic() - started


def _ranked_unique(urls: list[str], strip: str = "") -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(url[len(strip):] if strip and url.startswith(strip) else url, None)
    return list(seen)


def search_options(service, *, source: str | None, limit: int = 100) -> SearchOptions:
    s = service.settings
    return SearchOptions(limit=limit, source=source, candidates=s.candidates, rrf_k=s.rrf_k,
                         dense_weight=s.dense_weight, sparse_weight=s.sparse_weight,
                         fusion=s.fusion)


def evaluate_beir(
    service,
    folder: Path,
    *,
    max_queries: int | None = None,
    advance_index: Callable[[int], None] | None = None,
    options: SearchOptions | None = None,
) -> RetrievalEvalResult:
    dataset = load_beir(folder)
    index_seconds = index_beir(service, dataset, advance=advance_index)
    source = beir_source_name(dataset)
    query_ids = sorted(dataset.queries)[: max_queries or None]
    options = options or search_options(service, source=source)
    options.source = source
    searcher = HybridSearcher(service.store, service.embedder)
    started = time.monotonic()
    vectors = service.embedder.embed_documents([dataset.queries[qid] for qid in query_ids])
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
        config={"embedder": service.embedder.name, "fusion": options.fusion, "rrf_k": options.rrf_k,
                "dense_weight": options.dense_weight,
                "sparse_weight": options.sparse_weight, "candidates": options.candidates},
    )


def _golden_key(url: str, keys_are_paths: bool) -> str:
    return urlsplit(url).path or "/" if keys_are_paths else url


def evaluate_golden(
    service,
    path: Path,
    *,
    source: str | None = None,
    answers: bool = False,
) -> tuple[RetrievalEvalResult, list[GoldenItem]]:
    """Golden set ``{query, relevant: {url: grade}, answer?}`` against already crawled sources.

    Relevance keys may be full URLs or URL paths (``/guide/install.html``), which makes a golden set
    portable across hosts. With ``answers=True``, items with a reference answer are also answered and
    scored; their means are reported as ``answer_*`` metrics.
    """
    items = load_golden(path)
    if source:
        service.require_source(source)
    keys_are_paths = all(key.startswith("/") for item in items for key in item.relevant)
    options = search_options(service, source=source, limit=20)
    options.kind = "text"
    searcher = HybridSearcher(service.store, service.embedder)
    started = time.monotonic()
    run, qrels = {}, {}
    for number, item in enumerate(items):
        hits = searcher.search(item.query, options)
        run[str(number)] = _ranked_unique([_golden_key(hit.chunk.url, keys_are_paths) for hit in hits])
        qrels[str(number)] = item.relevant
    metrics = evaluate_run(run, qrels, (1, 3, 5, 10))
    answered = [item for item in items if item.answer] if answers else []
    totals: dict[str, list[float]] = {}
    for item in answered:
        answer = service.ask(item.query, source=source, reference=item.answer)
        for name in ("overall", "grounding", "rougeL", "ndcg", "code_quality"):
            value = (answer.metrics or {}).get(name)
            if isinstance(value, (int, float)):
                totals.setdefault(f"answer_{name}", []).append(float(value))
        totals.setdefault("answer_fallback_rate", []).append(1.0 if answer.fallback else 0.0)
    metrics.update({name: sum(values) / len(values) for name, values in totals.items()})
    return (
        RetrievalEvalResult(
            dataset=path.name,
            kind="golden",
            metrics=metrics,
            queries=len(items),
            search_seconds=round(time.monotonic() - started, 2),
            config={"embedder": service.embedder.name, "source": source, "answered": len(answered)},
        ),
        items,
    )


def evaluate_path(service, path: Path, **kwargs) -> RetrievalEvalResult:
    """A folder is a BEIR data set; a file is a golden set."""
    if path.is_dir():
        return evaluate_beir(service, path, **{k: v for k, v in kwargs.items() if k != "source"})
    return evaluate_golden(service, path, source=kwargs.get("source"), answers=kwargs.get("answers", False))[0]
