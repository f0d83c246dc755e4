"""Crawl throughput: evorag's crawler against Crawl4AI's default deep crawl, on the same site, same run.

Serves the Python 3.11 HTML documentation (Debian package python3-doc, 530 pages) from
``python -m http.server`` on 127.0.0.1 in a separate process, then:

1. crawls it with ``evorag.tools.crawling.crawl_site`` (fetch + main-content extraction, default options);
2. crawls it with Crawl4AI's default deep-crawl configuration: ``AsyncWebCrawler`` with
   ``AsyncHTTPCrawlerStrategy`` and ``CrawlerRunConfig(deep_crawl_strategy=BFSDeepCrawlStrategy(...))``
   and the default Markdown generator (the baseline);
3. re-crawls with ours, passing the pages of run 1 as ``known`` (conditional requests: 304s).

Targets: ours >= 4x the baseline's pages/s; the re-crawl >= 10x faster than our first crawl. The first
crawl is fetch + extract only (the indexer adds chunking and embedding on top).

    python bench/bench_crawl.py [--pages N] [--docs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCS = Path("/usr/share/doc/python3.11/html")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# http.server's defaults (HTTP/1.0, a listen backlog of 5) drop connections under 8 concurrent clients and
# add 1 s SYN retransmits to random requests; keep-alive and a deeper backlog measure the crawlers instead.
SERVER = """
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

Server(("127.0.0.1", int(sys.argv[1])), functools.partial(Handler, directory=sys.argv[2])).serve_forever()
"""


def start_server(directory: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    origin = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(origin + "/index.html", timeout=1).read()
            return process, origin
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the documentation server did not start")


async def crawl_ours(start: str, pages: int, depth: int, rate: float, known=None):
    from evorag.tools.crawling import CrawlFinished, CrawlOptions, KnownPage, PageFetched, crawl_site

    options = CrawlOptions(allow_private=True, max_pages=pages, max_depth=depth, rate_per_host=rate)
    recorded: dict[str, KnownPage] = {}
    summary = None
    chars = 0
    started = time.perf_counter()
    async for event in crawl_site(start, options, known=known):
        if isinstance(event, PageFetched):
            recorded[event.page.url] = KnownPage(
                event.page.etag, event.page.last_modified, event.page.content_hash
            )
            chars += len(event.page.markdown)
        elif isinstance(event, CrawlFinished):
            summary = event.summary
    elapsed = time.perf_counter() - started
    return elapsed, summary, recorded, chars


async def crawl_crawl4ai(start: str, pages: int, depth: int, base_dir: str):
    os.environ["CRAWL4_AI_BASE_DIRECTORY"] = base_dir  # before the first crawl4ai import
    os.environ.setdefault("CRAWL4AI_NO_CLOUD_NOTICE", "1")
    from crawl4ai import AsyncWebCrawler, BrowserConfig, CrawlerRunConfig, HTTPCrawlerConfig
    from crawl4ai.async_crawler_strategy import AsyncHTTPCrawlerStrategy
    from crawl4ai.deep_crawling import BFSDeepCrawlStrategy

    config = CrawlerRunConfig(
        deep_crawl_strategy=BFSDeepCrawlStrategy(max_depth=depth, include_external=False, max_pages=pages),
        verbose=False,
    )
    started = time.perf_counter()
    async with AsyncWebCrawler(
        # Its non-HTML downloads go to ~/.crawl4ai/downloads whatever CRAWL4_AI_BASE_DIRECTORY says.
        crawler_strategy=AsyncHTTPCrawlerStrategy(
            browser_config=HTTPCrawlerConfig(downloads_path=os.path.join(base_dir, "downloads"))
        ),
        config=BrowserConfig(verbose=False),
        base_directory=base_dir,
    ) as crawler:
        results = await crawler.arun(start, config=config)
    elapsed = time.perf_counter() - started
    ok = [result for result in results if result.success]
    chars = sum(len(str(result.markdown or "")) for result in ok)
    return elapsed, len(ok), len(results), chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=530, help="page limit for every crawl (default: 530)")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--docs", type=Path, default=DOCS, help="static HTML site to serve")
    parser.add_argument(
        "--rate",
        type=float,
        default=10_000.0,
        help="our per-host request rate limit (default: effectively off, like the baseline, which has none; "
        "the production default is 50/s)",
    )
    parser.add_argument("--skip-crawl4ai", action="store_true", help="only run evorag's crawler")
    args = parser.parse_args()
    if not (args.docs / "index.html").is_file():
        raise SystemExit(f"{args.docs}/index.html not found: apt-get install python3-doc")

    process, origin = start_server(args.docs)
    start = origin + "/index.html"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-crawl4ai-") as base_dir:
            ours_time, summary, known, ours_chars = asyncio.run(
                crawl_ours(start, args.pages, args.depth, args.rate)
            )
            ours_rate = summary.fetched / ours_time
            print(
                f"evorag crawler   : {summary.fetched} pages fetched ({summary.failed} failed, "
                f"{summary.discovered} discovered) in {ours_time:.2f} s = {ours_rate:.1f} pages/s, "
                f"{ours_chars / max(1, summary.fetched):.0f} chars of Markdown per page"
            )
            if not args.skip_crawl4ai:
                c4_time, c4_ok, c4_total, c4_chars = asyncio.run(
                    crawl_crawl4ai(start, args.pages, args.depth, base_dir)
                )
                c4_rate = c4_ok / c4_time
                print(
                    f"Crawl4AI default : {c4_ok} pages ({c4_total - c4_ok} failed) in {c4_time:.2f} s = "
                    f"{c4_rate:.1f} pages/s, {c4_chars / max(1, c4_ok):.0f} chars of Markdown per page"
                )
                print(f"speed-up         : {ours_rate / c4_rate:.1f}x pages/s (target >= 4x)")

            again_time, again, _, _ = asyncio.run(
                crawl_ours(start, args.pages, args.depth, args.rate, known=known)
            )
            print(
                f"re-crawl (known) : {again.unchanged} unchanged, {again.fetched} fetched, {again.failed} failed "
                f"in {again_time:.2f} s = {ours_time / again_time:.1f}x faster than the first crawl (target >= 10x)"
            )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
