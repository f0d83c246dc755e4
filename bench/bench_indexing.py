"""Indexing throughput: chunks/s through the whole pipeline (crawl -> extract -> chunk -> embed -> BM25 ->
upsert -> commit) against the raw embedding throughput of the same model on the same chunk texts, in the
same run. Target (issue 2): pipeline >= 0.8x raw. Also: re-crawl of the unchanged site (0 re-embeds).

    python bench/bench_indexing.py [--pages 150] [--embedder local]

Serves the Python 3.11 docs (Debian python3-doc) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_crawl import DOCS, start_server
from evorag.tools.chunking import embedding_text

from evorag.service import CrawlRequest, Evorag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=150)
    parser.add_argument("--embedder", default="local", choices=["local", "onnx"])
    args = parser.parse_args()
    if not DOCS.exists():
        raise SystemExit("install the docs first: apt-get install python3-doc")
    server, origin = start_server(DOCS)
    try:
        with tempfile.TemporaryDirectory() as home, Evorag(home=Path(home), embedder=args.embedder,
                                                          allow_private=True, crawl_rate_per_host=1000) as rag:
            rag.embedder.embed_documents(["warm up the model"])
            request = CrawlRequest(url=f"{origin}/index.html", source="pydocs", max_pages=args.pages)
            report = rag.crawl(request)
            texts = [embedding_text(chunk) for chunk in rag.store.iter_chunks()]
            started = time.perf_counter()
            rag.embedder.embed_documents(texts)
            raw_seconds = time.perf_counter() - started
            again = rag.crawl(request)
    finally:
        server.kill()
    pipeline_rate = report.chunks_indexed / report.elapsed_s
    raw_rate = len(texts) / raw_seconds
    print(f"embedder {args.embedder}: {report.pages_indexed} pages, {report.chunks_indexed} chunks")
    print(f"pipeline (crawl+extract+chunk+embed+index): {report.elapsed_s:6.1f} s  {pipeline_rate:7.1f} chunks/s")
    print(f"raw embedding of the same texts (baseline): {raw_seconds:6.1f} s  {raw_rate:7.1f} chunks/s")
    print(f"ratio pipeline / raw: {pipeline_rate / raw_rate:.2f}x (target >= 0.8x)")
    print(f"re-crawl unchanged: {again.elapsed_s:.2f} s, {again.reembedded_pages} re-embedded pages, "
          f"{report.elapsed_s / max(again.elapsed_s, 1e-9):.1f}x faster than the first crawl (target >= 10x)")


if __name__ == "__main__":
    main()
