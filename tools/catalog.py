"""The catalog: which sources exist and which page versions are fully indexed (SQLite, WAL).

It is the ledger that makes indexing crash-safe. A page's chunks are written to the vector store
only between ``begin_page`` (records the version being written as pending) and ``commit_pages``
(records it as indexed). ``pending_pages`` lists what a killed process left half-done so the indexer
can remove those chunks before anything else happens.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    start_url TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    last_crawl_at REAL,
    last_summary TEXT
);
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    title TEXT NOT NULL DEFAULT '',
    indexed_hash TEXT,
    pending_hash TEXT,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL,
    chunk_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pages_by_source ON pages(source);
CREATE TABLE IF NOT EXISTS external_links (
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (source, url)
);
"""


@dataclass(slots=True)
class PageRecord:
    url: str
    source: str
    title: str
    indexed_hash: str | None
    pending_hash: str | None
    etag: str | None
    last_modified: str | None
    fetched_at: float | None
    chunk_count: int


@dataclass(slots=True)
class SourceRecord:
    name: str
    start_url: str | None
    options: dict
    created_at: float
    last_crawl_at: float | None
    last_summary: dict | None
    pages: int = 0
    chunks: int = 0


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Sources
    def upsert_source(self, name: str, start_url: str | None, options: dict) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sources(name, start_url, options, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET start_url=excluded.start_url, options=excluded.options",
                (name, start_url, json.dumps(options), time.time()),
            )

    def finish_crawl(self, name: str, summary: dict, external_links: Iterable[str] = ()) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE sources SET last_crawl_at=?, last_summary=? WHERE name=?",
                (time.time(), json.dumps(summary), name),
            )
            db.executemany(
                "INSERT OR IGNORE INTO external_links(source, url) VALUES (?, ?)",
                [(name, link) for link in external_links],
            )

    def get_source(self, name: str) -> SourceRecord | None:
        return next((s for s in self.sources() if s.name == name), None)

    def sources(self) -> list[SourceRecord]:
        rows = self._db.execute(
            "SELECT s.*, COUNT(p.url) AS pages, COALESCE(SUM(p.chunk_count), 0) AS chunks "
            "FROM sources s LEFT JOIN pages p ON p.source = s.name AND p.indexed_hash IS NOT NULL "
            "GROUP BY s.name ORDER BY s.name"
        ).fetchall()
        return [
            SourceRecord(
                name=row["name"],
                start_url=row["start_url"],
                options=json.loads(row["options"]),
                created_at=row["created_at"],
                last_crawl_at=row["last_crawl_at"],
                last_summary=json.loads(row["last_summary"]) if row["last_summary"] else None,
                pages=row["pages"],
                chunks=row["chunks"],
            )
            for row in rows
        ]

    def delete_source(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM pages WHERE source=?", (name,))
            db.execute("DELETE FROM external_links WHERE source=?", (name,))
            db.execute("DELETE FROM sources WHERE name=?", (name,))

    def external_links(self, source: str | None = None) -> list[tuple[str, str]]:
        query = "SELECT source, url FROM external_links"
        args: tuple = ()
        if source:
            query, args = query + " WHERE source=?", (source,)
        return [(row[0], row[1]) for row in self._db.execute(query + " ORDER BY source, url", args)]

    # Pages
    def pages(self, source: str) -> dict[str, PageRecord]:
        rows = self._db.execute("SELECT * FROM pages WHERE source=?", (source,)).fetchall()
        return {row["url"]: PageRecord(**dict(row)) for row in rows}

    def page(self, url: str) -> PageRecord | None:
        row = self._db.execute("SELECT * FROM pages WHERE url=?", (url,)).fetchone()
        return PageRecord(**dict(row)) if row else None

    def begin_pages(self, source: str, versions: Iterable[tuple[str, str | None]]) -> None:
        """Record that these (url, new hash) versions are about to be written; None means removal."""
        with self._transaction() as db:
            for url, new_hash in versions:
                db.execute(
                    "INSERT INTO pages(url, source, pending_hash) VALUES (?, ?, ?) "
                    "ON CONFLICT(url) DO UPDATE SET pending_hash=excluded.pending_hash, source=excluded.source",
                    (url, source, new_hash or ""),
                )

    def commit_pages(self, records: Iterable[PageRecord]) -> None:
        with self._transaction() as db:
            for rec in records:
                db.execute(
                    "UPDATE pages SET title=?, indexed_hash=?, pending_hash=NULL, etag=?, last_modified=?, "
                    "fetched_at=?, chunk_count=? WHERE url=?",
                    (rec.title, rec.indexed_hash, rec.etag, rec.last_modified, rec.fetched_at,
                     rec.chunk_count, rec.url),
                )

    def commit_removals(self, urls: Iterable[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM pages WHERE url=?", [(url,) for url in urls])

    def pending_pages(self) -> list[PageRecord]:
        rows = self._db.execute("SELECT * FROM pages WHERE pending_hash IS NOT NULL").fetchall()
        return [PageRecord(**dict(row)) for row in rows]

    def clear_pending(self, url: str) -> None:
        with self._transaction() as db:
            # A page that never got indexed disappears; an older indexed version stays.
            db.execute("DELETE FROM pages WHERE url=? AND indexed_hash IS NULL", (url,))
            db.execute("UPDATE pages SET pending_hash=NULL WHERE url=?", (url,))
