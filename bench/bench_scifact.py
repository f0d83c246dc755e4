"""Retrieval quality on BEIR SciFact (300 test queries): nDCG@10 of hybrid search as the service runs it
(page-aware ranking, tools/page_ranking.py), with dense-only and BM25-only baselines and a small grid of
fusion settings ranking chunks as before, from the same index and the same run.

    python bench/bench_scifact.py [--data ../shared/data/scifact] [--home /tmp/scifact-home] [--embedder local]

The corpus is indexed once into --home (about 10-20 minutes on 2 cores) and reused by later runs.
Published references (DESIGN.md): dense MiniLM 0.645, BM25 0.665-0.679, RRF k=60 0.697, Qdrant tuned 0.7175.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from evorag.tools.datasets import load_beir
from evorag.tools.retrieval_eval import evaluate_beir
from evorag.tools.search import SearchOptions

from evorag.service import Evorag

# Page-aware ranking off: chunks in fused order, as every search ranked before it (tools/page_ranking.py).
CHUNK_RANKING = {"max_per_page": 0, "page_support": 0.0, "changelog_weight": 1.0, "term_coverage": 0.0}
GRID = [
    ("default (page-aware, min-max)", {}),
    ("page-aware without term coverage", {"term_coverage": 0.0}),
    ("dense only", {"fusion": "rrf", "dense_weight": 1.0, "sparse_weight": 0.0, **CHUNK_RANKING}),
    ("BM25 only", {"fusion": "rrf", "dense_weight": 0.0, "sparse_weight": 1.0, **CHUNK_RANKING}),
    ("RRF k=60", {"fusion": "rrf", "rrf_k": 60, **CHUNK_RANKING}),
    ("RRF k=20", {"fusion": "rrf", "rrf_k": 20, **CHUNK_RANKING}),
    ("RRF k=60, BM25 x1.5", {"fusion": "rrf", "rrf_k": 60, "sparse_weight": 1.5, **CHUNK_RANKING}),
    ("min-max convex (chunk ranking)", {"fusion": "minmax", **CHUNK_RANKING}),
    ("min-max convex, BM25 x1.5", {"fusion": "minmax", "sparse_weight": 1.5, **CHUNK_RANKING}),
    ("DBSF", {"fusion": "dbsf", **CHUNK_RANKING}),
    ("DBSF, page-aware", {"fusion": "dbsf"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).parents[2] / "shared" / "data" / "scifact"))
    parser.add_argument("--home", default="/tmp/scifact-home")
    parser.add_argument("--embedder", default="local", choices=["local", "onnx"])
    args = parser.parse_args()
    with Evorag(home=Path(args.home), embedder=args.embedder) as rag:
        started = time.monotonic()
        dataset = load_beir(Path(args.data))
        indexer = rag.parts.indexer()
        first = evaluate_beir(dataset, indexer, SearchOptions.from_settings(rag.settings, limit=100))
        print(f"index: {first.index_seconds:.0f}s (0 = reused); embedder {rag.embedder.name}")
        print(f"{'configuration':32} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7}")
        for label, overrides in GRID:
            options = SearchOptions.from_settings(rag.settings, limit=100, **overrides)
            result = evaluate_beir(dataset, indexer, options)
            m = result.metrics
            print(f"{label:32} {m['ndcg@10']:8.4f} {m['recall@100']:7.4f} {m['mrr@10']:7.4f}")
        print(f"total {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
