"""Request queue throughput: requests per second through submit + claim + finish with no-op work, against a raw
SQLite baseline doing the same three writes in the same process, on the same disk, with the same pragmas.

Three measurements, each on a fresh database in a temporary directory:

* raw SQLite (the floor of what any SQLite queue can do here): per request, an INSERT, then a
  ``BEGIN IMMEDIATE`` transaction that selects the highest-priority queued row and marks it running, then an
  UPDATE that marks it done; WAL, synchronous=NORMAL, one connection.
* the queue's store (``RequestQueue``): ``submit``, ``claim`` (which also checks expired leases and the
  one-writer rule, and returns the row with its place in line) and ``finish``, one request at a time.
* the service end to end: ``Evorag.submit_request`` of a no-op request kind (role check, payload preparation)
  for every request, then the server's scheduler and queue workers (``aserve``) running them all, until
  the queue is empty. Workers take requests one claim at a time and keep a lease with heartbeats, as they do
  for crawls.

The first two submit all requests first, then claim and finish them all: the claim then picks among a full
queue, its worst case (the ordering index does the work).

    python bench/bench_queue.py [--requests 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evorag.service import Evorag, RequestKind, TaskContext, register_request_kind
from evorag.service._queue import RequestQueue

ASKER = {"name": "bench", "role": "operator", "via": "python"}


def raw_sqlite(path: Path, count: int) -> float:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
               "priority INTEGER NOT NULL, status TEXT NOT NULL, payload TEXT NOT NULL, owner TEXT)")
    db.execute("CREATE INDEX by_status ON requests(status, priority DESC, seq)")
    started = time.perf_counter()
    for n in range(count):
        db.execute("INSERT INTO requests (id, priority, status, payload) VALUES (?, ?, 'queued', ?)",
                   (uuid.uuid4().hex[:12], 2100, f'{{"n": {n}}}'))
    for _ in range(count):
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT id FROM requests WHERE status = 'queued' ORDER BY priority DESC, seq LIMIT 1"
                         ).fetchone()
        db.execute("UPDATE requests SET status = 'running', owner = 'w0' WHERE id = ?", (row[0],))
        db.execute("COMMIT")
        db.execute("UPDATE requests SET status = 'done' WHERE id = ? AND owner = 'w0'", (row[0],))
    elapsed = time.perf_counter() - started
    assert db.execute("SELECT COUNT(*) FROM requests WHERE status = 'done'").fetchone()[0] == count
    db.close()
    return elapsed


def queue_store(path: Path, count: int) -> float:
    queue = RequestQueue(path)
    started = time.perf_counter()
    for n in range(count):
        queue.submit(kind="noop", payload={"n": n}, principal=ASKER, priority=2100, origin="user",
                     now=time.time())
    for _ in range(count):
        request = queue.claim("bench/w0", kinds=["noop"], now=time.time(), lease_s=30, max_attempts=3)
        queue.finish(request, "done", now=time.time(), result={})
    elapsed = time.perf_counter() - started
    assert {r.status for r in queue.requests(limit=count)} == {"done"}
    queue.close()
    return elapsed


async def _noop(task: TaskContext) -> None:
    return None


def service(home: Path, count: int, workers: int) -> tuple[float, float]:
    """Seconds to submit every request, and seconds for the workers to run them all."""
    register_request_kind(RequestKind("bench-noop", _noop, "metrics"))
    with Evorag(home=home, llm_provider="none", queue_poll_seconds=0.05, queue_keep_finished=count) as rag:
        started = time.perf_counter()
        for n in range(count):
            rag.submit_request("bench-noop", {"n": n})
        submitted = time.perf_counter() - started

        async def drain() -> float:
            stop = asyncio.Event()
            begun = time.perf_counter()
            server = asyncio.create_task(rag.aserve(stop, workers=workers))
            # Watched through a connection of its own (WAL: readers never block the workers' writes).
            watch = sqlite3.connect(str(home / "queue.sqlite3"))
            while watch.execute("SELECT COUNT(*) FROM requests WHERE status IN ('queued', 'running')").fetchone()[0]:
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - begun
            watch.close()
            stop.set()
            await server
            return elapsed

        ran = asyncio.run(drain())
        done = [r for r in rag.queue_requests(limit=count) if r.status == "done"]
        assert len(done) == count, f"{len(done)} of {count} done"
    return submitted, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    count = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        raw = raw_sqlite(base / "raw.sqlite3", count)
        store = queue_store(base / "queue.sqlite3", count)
        submitted, ran = service(base / "home", count, args.workers)
    rows = [("raw SQLite: insert + claim txn + update", raw),
            ("RequestQueue: submit + claim + finish", store),
            (f"service: submit_request + {args.workers} workers (aserve)", submitted + ran)]
    print(f"{count} requests, no-op work, one process ({sys.platform}, SQLite {sqlite3.sqlite_version})")
    print(f"{'path':<52} {'seconds':>8} {'requests/s':>11} {'vs raw':>7}")
    for name, seconds in rows:
        print(f"{name:<52} {seconds:>8.2f} {count / seconds:>11.0f} {raw / seconds:>7.2f}")
    print(f"  service split: submit {count / submitted:.0f}/s, workers run {count / ran:.0f}/s")


if __name__ == "__main__":
    main()
