"""What a scheduled refresh costs the people searching meanwhile: search latency with and without a refresh
running in the same server process.

A long-running server (`evorag serve`, `evorag mcp --http`, `evorag ui`) answers searches while its scheduler and
queue workers re-crawl sources in the background. This bench measures that overlap on a real documentation
site (Debian's Flask docs, copied to a temporary folder and served on 127.0.0.1):

1. the site is crawled once through the queue (as a scheduled refresh would be);
2. **idle**: searches arrive at ``--rate`` per second (paced, as users' searches arrive, not back to back) with
   nothing else running: the baseline, same process, same index;
3. **during refresh**: a share of the pages is edited (one new paragraph each, so the refresh has pages to fetch,
   chunk, embed and write), a ``refresh`` request is queued, the server's background workers run it, and the same
   searches arrive at the same rate until it finishes; repeated for ``--refreshes`` rounds. ``--rate 0`` sends
   them back to back instead (a worst case: the search loop then competes with the refresh for the CPU).

Printed: p50 / p95 / p99 / mean search latency in both phases, their ratio, and each refresh's duration and
change report. Numbers depend on the machine's load: the load average is printed with them.

    python bench/bench_scheduler.py [--site /usr/share/doc/python-flask-doc/html] [--searches 200]
                                    [--refreshes 3] [--changed 0.3] [--rate 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_docs_dev import serve

QUERIES = (
    "how do I register a blueprint", "configure the secret key", "testing the application with a client",
    "application context and request context", "url_for with query arguments", "handle 404 errors",
    "deploy with a WSGI server", "load configuration from environment variables", "signals when a request starts",
    "upload files", "sessions and cookies", "template inheritance", "json responses", "logging setup",
    "class based views", "command line interface custom commands", "before_request hook", "static files",
    "streaming responses", "async views",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {"searches": len(latencies_ms), "p50_ms": round(percentile(latencies_ms, 0.50), 1),
            "p95_ms": round(percentile(latencies_ms, 0.95), 1), "p99_ms": round(percentile(latencies_ms, 0.99), 1),
            "mean_ms": round(statistics.fmean(latencies_ms), 1)}


def timed_search(rag, query: str, source: str, rate: float) -> float:
    started = time.perf_counter()
    rag.search(query, source=source, limit=5)
    elapsed = time.perf_counter() - started
    if rate > 0:
        time.sleep(max(0.0, 1 / rate - elapsed))
    return elapsed * 1000


def edit_pages(root: Path, share: float, round_no: int, rng: random.Random) -> int:
    """Add one paragraph to the main content of ``share`` of the HTML pages, so a refresh re-embeds them
    (text outside the main content would not count as a change: the extractor drops navigation and footers)."""
    pages = sorted(root.rglob("*.html"))
    chosen = rng.sample(pages, max(1, round(share * len(pages))))
    for page in chosen:
        text = page.read_text(encoding="utf-8", errors="replace")
        note = f"<p>Refresh round {round_no}: this page gained a paragraph about {rng.choice(QUERIES)}.</p>"
        marker = 'role="main">' if 'role="main">' in text else "<body>"
        page.write_text(text.replace(marker, marker + note, 1), encoding="utf-8")
    return len(chosen)


def run(args: argparse.Namespace) -> dict:
    from evorag.service import Evorag

    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="evorag-bench-scheduler-"))
    site = work / "site"
    shutil.copytree(args.site, site, symlinks=False, ignore_dangling_symlinks=True)
    port = free_port()
    server = serve(site, port)
    result: dict = {"site": str(args.site), "rate_per_s": args.rate, "load_average": os.getloadavg()}
    try:
        with Evorag(home=work / "home", allow_private=True) as rag:
            started = time.monotonic()
            crawl = rag.submit_request("crawl", {"url": f"http://127.0.0.1:{port}/index.html", "source": "docs",
                                                 "allow_private": True, "max_pages": 1000})
            with rag.serve_in_background(workers=1):
                wait_done(rag, crawl.id, timeout=3600)
            result["initial_crawl_s"] = round(time.monotonic() - started, 1)
            for query in QUERIES:  # warm the query encoder and caches before either phase
                rag.search(query, source="docs", limit=5)

            idle = [timed_search(rag, QUERIES[n % len(QUERIES)], "docs", args.rate) for n in range(args.searches)]
            during: list[float] = []
            refreshes = []
            with rag.serve_in_background(workers=1):
                for round_no in range(1, args.refreshes + 1):
                    edited = edit_pages(site, args.changed, round_no, rng)
                    started = time.monotonic()
                    request = rag.submit_request("refresh", {"source": "docs"})
                    n = 0
                    while rag.queue_request(request.id).status in ("queued", "running"):
                        if rag.queue_request(request.id).status == "running":
                            during.append(timed_search(rag, QUERIES[n % len(QUERIES)], "docs", args.rate))
                            n += 1
                        else:
                            time.sleep(0.01)
                    finished = rag.queue_request(request.id)
                    if finished.status != "done":
                        raise SystemExit(f"refresh {round_no} ended {finished.status}: {finished.error}")
                    outcome = finished.result or {}
                    refreshes.append({"round": round_no, "pages_edited": edited,
                                      "seconds": round(time.monotonic() - started, 1),
                                      "pages_changed": sum(change.get("changed", 0)
                                                           for change in outcome.get("change_reports", [])),
                                      "pages_indexed": outcome.get("pages_indexed"),
                                      "searches_meanwhile": n})
            result["idle"] = summary(idle)
            result["during_refresh"] = summary(during) if during else {}
            result["refreshes"] = refreshes
            result["load_average_after"] = os.getloadavg()
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return result


def wait_done(rag, request_id: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (request := rag.queue_request(request_id)).status in ("queued", "running"):
        if time.monotonic() > deadline:
            raise SystemExit(f"request {request_id} did not finish in {timeout:g} s")
        time.sleep(0.2)
    if request.status != "done":
        raise SystemExit(f"the initial crawl ended {request.status}: {request.error}")


def print_table(result: dict) -> None:
    idle, during = result["idle"], result["during_refresh"]
    print(f"site {result['site']}  initial crawl {result['initial_crawl_s']} s  searches/s {result['rate_per_s'] or 'max'}  "
          f"load average {tuple(round(x, 1) for x in result['load_average'])}")
    print(f"{'phase':<18}{'searches':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for label, row in (("idle (baseline)", idle), ("during refresh", during)):
        if row:
            print(f"{label:<18}{row['searches']:>9}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}"
                  f"{row['mean_ms']:>9}")
    if during:
        print(f"p95 ratio during/idle: {during['p95_ms'] / idle['p95_ms']:.2f}x, "
              f"p50 ratio: {during['p50_ms'] / idle['p50_ms']:.2f}x")
    for row in result["refreshes"]:
        print(f"refresh {row['round']}: {row['pages_edited']} pages edited, {row['pages_changed']} reported changed "
              f"({row['pages_indexed']} re-indexed), "
              f"{row['seconds']} s, {row['searches_meanwhile']} searches meanwhile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("/usr/share/doc/python-flask-doc/html"))
    parser.add_argument("--searches", type=int, default=200, help="idle-phase searches (default 200)")
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="searches per second in both phases (0: back to back)")
    parser.add_argument("--changed", type=float, default=0.3, help="share of pages edited before each refresh")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.site.is_dir():
        raise SystemExit(f"no documentation site at {args.site} (apt-get install python-flask-doc)")
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else "", end="")
    if not args.json:
        print_table(result)


if __name__ == "__main__":
    main()
