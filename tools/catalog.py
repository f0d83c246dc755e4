"""The catalog: which sources and versions exist, which page versions are fully indexed, and what changed
(SQLite, WAL).

It is the ledger that makes indexing crash-safe. A page's chunks are written to the vector store
only between ``begin_pages`` (records the version being written as pending) and ``commit_pages``
(records it as indexed). ``pending_pages`` lists what a killed process left half-done so the indexer
can remove those chunks before anything else happens.

Documentation versions (``evorag.tools.versions``): a page is keyed by (source, version, url), so the versions
of a source live side by side, even when one URL served both. An unversioned source has version None, stored
as '' (SQLite keys cannot hold NULL). Catalogs written before versions existed (schema 1) are migrated in
place when opened: their pages and sources become unversioned.

Change reports: every page a commit adds, changes or removes is merged, in the same transaction, into the
open change report of its source and version (``evorag.tools.changes``); ``finish_crawl`` closes it. A crawl
killed before it finished leaves its report open and the next crawl of that version continues it, so no
change is lost and none is counted twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from evorag.tools import changes as change_log
from evorag.tools import versions
from evorag.tools.sqlite_tx import immediate_transaction

from evorag.errors import NotFoundError

SCHEMA_VERSION = 2
_NO_VERSION = ""  # how None (an unversioned source) is stored
# Oldest change reports beyond this many per source and version are dropped when a crawl finishes.
MAX_CHANGE_REPORTS = 100

_VERSIONS_TABLE = """CREATE TABLE IF NOT EXISTS source_versions (
    source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    version TEXT NOT NULL DEFAULT '',
    start_url TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    last_crawl_at REAL,
    last_summary TEXT,
    PRIMARY KEY (source, version)
)"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    start_url TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    last_crawl_at REAL,
    last_summary TEXT,
    latest TEXT
);
{versions_table};
CREATE TABLE IF NOT EXISTS pages (
    url TEXT NOT NULL,
    source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    version TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    indexed_hash TEXT,
    pending_hash TEXT,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, version, url)
);
CREATE INDEX IF NOT EXISTS pages_by_url ON pages(url);
CREATE INDEX IF NOT EXISTS pages_pending ON pages(pending_hash) WHERE pending_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS external_links (
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (source, url)
);
CREATE TABLE IF NOT EXISTS unvisited_pages (
    source TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    reason TEXT NOT NULL,
    via TEXT NOT NULL,
    PRIMARY KEY (source, version, url)
);
CREATE TABLE IF NOT EXISTS change_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS change_reports_by_version ON change_reports(source, version, started_at);
""".replace("{versions_table}", _VERSIONS_TABLE)

# Schema 1 -> 2: pages keyed by (source, version, url); versions; the latest marker. Existing pages and sources
# become unversioned. Runs inside one transaction.
_MIGRATE_1_TO_2 = """
CREATE TABLE pages_v2 (
    url TEXT NOT NULL,
    source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    version TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    indexed_hash TEXT,
    pending_hash TEXT,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, version, url)
);
INSERT INTO pages_v2 (url, source, version, title, indexed_hash, pending_hash, etag, last_modified, fetched_at,
                      chunk_count)
    SELECT url, source, '', title, indexed_hash, pending_hash, etag, last_modified, fetched_at, chunk_count
    FROM pages;
DROP TABLE pages;
ALTER TABLE pages_v2 RENAME TO pages;
ALTER TABLE sources ADD COLUMN latest TEXT;
"""


def _stored(version: str | None) -> str:
    return _NO_VERSION if version is None else version


def _loaded(version: str) -> str | None:
    return None if version == _NO_VERSION else version


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
    version: str | None = None

    @classmethod
    def of_row(cls, row: sqlite3.Row) -> PageRecord:
        data = dict(row)
        data["version"] = _loaded(data["version"])
        return cls(**data)


@dataclass(slots=True)
class VersionRecord:
    """One version of a source (version None: the source is unversioned)."""

    source: str
    version: str | None
    start_url: str | None
    options: dict
    created_at: float
    last_crawl_at: float | None
    last_summary: dict | None
    pages: int = 0
    chunks: int = 0

    def to_dict(self) -> dict:
        return {"version": self.version, "start_url": self.start_url, "pages": self.pages, "chunks": self.chunks,
                "last_crawl_at": self.last_crawl_at}


@dataclass(slots=True)
class SourceRecord:
    """A source: totals over its versions, the start URL and options of its most recent crawl, its versions,
    and ``latest``, the version marked latest explicitly (None: the highest version is)."""

    name: str
    start_url: str | None
    options: dict
    created_at: float
    last_crawl_at: float | None
    last_summary: dict | None
    pages: int = 0
    chunks: int = 0
    versions: list[VersionRecord] = field(default_factory=list)
    latest: str | None = None

    @property
    def version_labels(self) -> list[str | None]:
        return [record.version for record in self.versions]

    @property
    def versioned(self) -> bool:
        return any(record.version is not None for record in self.versions)

    @property
    def latest_version(self) -> str | None:
        """The version ``NAME@latest`` means now; None for an unversioned source, or when no version is latest
        (several labels, none a version number, none marked)."""
        try:
            return versions.latest_version(self.version_labels, self.latest)
        except NotFoundError:
            return None

    @property
    def ordered_versions(self) -> list[VersionRecord]:
        """The versions, lowest first (``evorag.tools.versions.sort_key``)."""
        return sorted(self.versions, key=lambda record: versions.sort_key(record.version))


@dataclass(slots=True)
class ChangeReport:
    """What one crawl (or refresh, or import) of a source version added, removed and changed.

    ``finished_at`` None: the crawl is running, or was interrupted and the next one continues this report.
    ``pages`` lists the pages by URL (``evorag.tools.changes``: change, title, changed sections with a diff
    excerpt); ``omitted`` counts pages beyond the listing cap.
    """

    id: int
    source: str
    version: str | None
    started_at: float
    finished_at: float | None
    pages: list[dict]
    omitted: dict

    def count(self, change: str) -> int:
        return sum(1 for page in self.pages if page["change"] == change) + int(self.omitted.get(change, 0))

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "version": self.version, "started_at": self.started_at,
                "finished_at": self.finished_at, "complete": self.finished_at is not None,
                "added": self.count("added"), "removed": self.count("removed"), "changed": self.count("changed"),
                "pages": self.pages, "omitted": self.omitted}


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Bring a schema-1 catalog to schema 2 in one transaction (another process may be doing the same: the
        check is repeated under the write lock)."""
        if not self._needs_migration():
            return
        # Foreign keys are checked per statement: off while the pages table is rebuilt (it cannot change
        # inside a transaction, so it is switched before BEGIN).
        self._db.execute("PRAGMA foreign_keys=OFF")
        try:
            with self._transaction() as db:
                if not self._needs_migration():
                    return
                for statement in _MIGRATE_1_TO_2.split(";"):
                    if statement.strip():
                        db.execute(statement)
                # One statement at a time: executescript would COMMIT the transaction half way.
                db.execute(_VERSIONS_TABLE)
                db.execute(
                    "INSERT OR IGNORE INTO source_versions(source, version, start_url, options, created_at, "
                    "last_crawl_at, last_summary) SELECT name, '', start_url, options, created_at, last_crawl_at, "
                    "last_summary FROM sources")
        finally:
            self._db.execute("PRAGMA foreign_keys=ON")

    def _needs_migration(self) -> bool:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pages)")}
        return bool(columns) and "version" not in columns

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with immediate_transaction(self._db) as db:
            yield db

    # Sources and their versions
    def upsert_source(self, name: str, start_url: str | None, options: dict, *, version: str | None = None) -> None:
        """Record a source (and one of its versions) before it is crawled; keeps what was indexed."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sources(name, start_url, options, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET start_url=excluded.start_url, options=excluded.options",
                (name, start_url, json.dumps(options), now),
            )
            db.execute(
                "INSERT INTO source_versions(source, version, start_url, options, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(source, version) DO UPDATE SET start_url=excluded.start_url, options=excluded.options",
                (name, _stored(version), start_url, json.dumps(options), now),
            )

    def finish_crawl(self, name: str, summary: dict, external_links: Iterable[str] = (), *,
                     version: str | None = None,
                     unvisited: Iterable[tuple[str, str, str]] = ()) -> ChangeReport | None:
        """Record the end of a crawl of ``name`` (``version``) and close its change report (returned).
        ``unvisited``: the (url, reason, via) pages it knew of but did not visit; they replace what the
        previous crawl of this version left unvisited (``unvisited_pages``)."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE sources SET last_crawl_at=?, last_summary=? WHERE name=?",
                       (now, json.dumps(summary), name))
            db.execute("UPDATE source_versions SET last_crawl_at=?, last_summary=? WHERE source=? AND version=?",
                       (now, json.dumps(summary), name, _stored(version)))
            db.executemany(
                "INSERT OR IGNORE INTO external_links(source, url) VALUES (?, ?)",
                [(name, link) for link in external_links],
            )
            db.execute("DELETE FROM unvisited_pages WHERE source=? AND version=?", (name, _stored(version)))
            db.executemany(
                "INSERT OR IGNORE INTO unvisited_pages(source, version, url, reason, via) VALUES (?, ?, ?, ?, ?)",
                [(name, _stored(version), url, reason, via) for url, reason, via in unvisited])
            report_id = self._open_report(db, name, version, now)
            db.execute("UPDATE change_reports SET finished_at=? WHERE id=?", (now, report_id))
            # Keep the newest reports of this version only.
            db.execute(
                "DELETE FROM change_reports WHERE source=? AND version=? AND id NOT IN (SELECT id FROM "
                "change_reports WHERE source=? AND version=? ORDER BY started_at DESC, id DESC LIMIT ?)",
                (name, _stored(version), name, _stored(version), MAX_CHANGE_REPORTS))
        return self.change_report(report_id)

    def get_source(self, name: str) -> SourceRecord | None:
        return next(iter(self._sources(name)), None)

    def sources(self) -> list[SourceRecord]:
        return self._sources(None)

    def _sources(self, name: str | None) -> list[SourceRecord]:
        where, args = ("WHERE s.name=?", (name,)) if name is not None else ("", ())
        rows = self._db.execute(
            "SELECT s.*, COUNT(p.url) AS pages, COALESCE(SUM(p.chunk_count), 0) AS chunks "
            "FROM sources s LEFT JOIN pages p ON p.source = s.name AND p.indexed_hash IS NOT NULL "
            f"{where} GROUP BY s.name ORDER BY s.name", args
        ).fetchall()
        versions: dict[str, list[VersionRecord]] = {}
        for record in self._versions(name):
            versions.setdefault(record.source, []).append(record)
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
                versions=versions.get(row["name"], []),
                latest=row["latest"],
            )
            for row in rows
        ]

    def versions(self, name: str) -> list[VersionRecord]:
        """The versions of source ``name`` in the order they were created."""
        return self._versions(name)

    def _versions(self, name: str | None) -> list[VersionRecord]:
        where, args = ("WHERE v.source=?", (name,)) if name is not None else ("", ())
        rows = self._db.execute(
            "SELECT v.*, COUNT(p.url) AS pages, COALESCE(SUM(p.chunk_count), 0) AS chunks FROM source_versions v "
            "LEFT JOIN pages p ON p.source = v.source AND p.version = v.version AND p.indexed_hash IS NOT NULL "
            f"{where} GROUP BY v.source, v.version ORDER BY v.source, v.created_at, v.version", args
        ).fetchall()
        return [
            VersionRecord(
                source=row["source"],
                version=_loaded(row["version"]),
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

    def import_versions(self, source: dict, versions: Sequence[dict], reports: Sequence[dict] = ()) -> None:
        """Record a source and versions as another home exported them (``evorag.tools.source_archive``), with
        their change reports (``ChangeReport.to_dict`` form). Their pages are committed as the chunks arrive."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sources(name, start_url, options, created_at, last_crawl_at, last_summary, latest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET start_url=excluded.start_url, "
                "options=excluded.options, last_crawl_at=excluded.last_crawl_at, "
                "last_summary=excluded.last_summary, latest=excluded.latest",
                (source["name"], source.get("start_url"), json.dumps(source.get("options") or {}),
                 source.get("created_at") or time.time(), source.get("last_crawl_at"),
                 json.dumps(source["last_summary"]) if source.get("last_summary") is not None else None,
                 source.get("latest")),
            )
            for record in versions:
                db.execute(
                    "INSERT OR REPLACE INTO source_versions(source, version, start_url, options, created_at, "
                    "last_crawl_at, last_summary) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (source["name"], _stored(record.get("version")), record.get("start_url"),
                     json.dumps(record.get("options") or {}), record.get("created_at") or time.time(),
                     record.get("last_crawl_at"),
                     json.dumps(record["last_summary"]) if record.get("last_summary") is not None else None),
                )
            for report in reports:
                db.execute(
                    "INSERT INTO change_reports(source, version, started_at, finished_at, details) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (source["name"], _stored(report.get("version")), report["started_at"],
                     report.get("finished_at") if report.get("finished_at") is not None else report["started_at"],
                     json.dumps(change_log.details_of(report.get("pages") or [], report.get("omitted") or {}))),
                )

    def set_latest(self, name: str, version: str | None) -> None:
        """Mark ``version`` as the one ``name@latest`` means (None: the highest version again)."""
        with self._transaction() as db:
            db.execute("UPDATE sources SET latest=? WHERE name=?", (version, name))

    def delete_source(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM pages WHERE source=?", (name,))
            db.execute("DELETE FROM external_links WHERE source=?", (name,))
            db.execute("DELETE FROM unvisited_pages WHERE source=?", (name,))
            db.execute("DELETE FROM change_reports WHERE source=?", (name,))
            db.execute("DELETE FROM source_versions WHERE source=?", (name,))
            db.execute("DELETE FROM sources WHERE name=?", (name,))

    def delete_version(self, name: str, version: str | None) -> None:
        """Forget one version of a source (and the source, when it was its last version)."""
        with self._transaction() as db:
            db.execute("DELETE FROM pages WHERE source=? AND version=?", (name, _stored(version)))
            db.execute("DELETE FROM change_reports WHERE source=? AND version=?", (name, _stored(version)))
            db.execute("DELETE FROM unvisited_pages WHERE source=? AND version=?", (name, _stored(version)))
            db.execute("DELETE FROM source_versions WHERE source=? AND version=?", (name, _stored(version)))
            db.execute("UPDATE sources SET latest=NULL WHERE name=? AND latest IS ?", (name, version))
            left = db.execute("SELECT COUNT(*) FROM source_versions WHERE source=?", (name,)).fetchone()[0]
            if not left:
                db.execute("DELETE FROM external_links WHERE source=?", (name,))
                db.execute("DELETE FROM sources WHERE name=?", (name,))

    def external_links(self, source: str | None = None) -> list[tuple[str, str]]:
        query = "SELECT source, url FROM external_links"
        args: tuple = ()
        if source:
            query, args = query + " WHERE source=?", (source,)
        return [(row[0], row[1]) for row in self._db.execute(query + " ORDER BY source, url", args)]

    def unvisited_pages(self) -> list[tuple[str, str, str, str]]:
        """(source, url, reason, via) of the pages crawls knew of but did not visit (see ``finish_crawl``),
        leaving out any URL some source has indexed since."""
        rows = self._db.execute(
            "SELECT u.source, u.url, MIN(u.reason), MIN(u.via) FROM unvisited_pages u WHERE NOT EXISTS "
            "(SELECT 1 FROM pages p WHERE p.url = u.url AND p.indexed_hash IS NOT NULL) "
            "GROUP BY u.source, u.url ORDER BY u.source, u.url")
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    # Pages
    def pages(self, source: str, version: str | None = None) -> dict[str, PageRecord]:
        """The pages of one version of a source (None: of the unversioned source), by URL."""
        rows = self._db.execute("SELECT * FROM pages WHERE source=? AND version=?",
                                (source, _stored(version))).fetchall()
        return {row["url"]: PageRecord.of_row(row) for row in rows}

    def page(self, url: str, *, source: str | None = None, version: str | None = None) -> PageRecord | None:
        """The page at ``url`` of ``source`` and ``version``; without ``source``, of whichever source has it."""
        if source is None:
            row = self._db.execute("SELECT * FROM pages WHERE url=? ORDER BY source, version", (url,)).fetchone()
        else:
            row = self._db.execute("SELECT * FROM pages WHERE source=? AND version=? AND url=?",
                                   (source, _stored(version), url)).fetchone()
        return PageRecord.of_row(row) if row else None

    def begin_pages(self, source: str, versions: Iterable[tuple[str, str | None]], *,
                    version: str | None = None) -> None:
        """Record that these (url, new hash) page versions of ``source`` (documentation ``version``) are about to
        be written; a hash of None means removal."""
        with self._transaction() as db:
            for url, new_hash in versions:
                db.execute(
                    "INSERT INTO pages(url, source, version, pending_hash) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(source, version, url) DO UPDATE SET pending_hash=excluded.pending_hash",
                    (url, source, _stored(version), new_hash or ""),
                )

    def commit_pages(self, records: Iterable[PageRecord], *, changes: Sequence[dict] = ()) -> None:
        """Record page versions as indexed, and merge ``changes`` (``evorag.tools.changes`` entries) into the open
        change reports, in one transaction."""
        with self._transaction() as db:
            for rec in records:
                db.execute(
                    "UPDATE pages SET title=?, indexed_hash=?, pending_hash=NULL, etag=?, last_modified=?, "
                    "fetched_at=?, chunk_count=? WHERE source=? AND version=? AND url=?",
                    (rec.title, rec.indexed_hash, rec.etag, rec.last_modified, rec.fetched_at,
                     rec.chunk_count, rec.source, _stored(rec.version), rec.url),
                )
            self._record_changes(db, changes)

    def commit_removals(self, urls: Iterable[str], *, source: str | None = None, version: str | None = None,
                        changes: Sequence[dict] = ()) -> None:
        """Forget removed pages (of ``source`` and ``version``; without ``source``, at these URLs in every
        source) and merge ``changes`` into the open change reports, in one transaction."""
        with self._transaction() as db:
            if source is None:
                db.executemany("DELETE FROM pages WHERE url=?", [(url,) for url in urls])
            else:
                db.executemany("DELETE FROM pages WHERE source=? AND version=? AND url=?",
                               [(source, _stored(version), url) for url in urls])
            self._record_changes(db, changes)

    def pending_pages(self) -> list[PageRecord]:
        rows = self._db.execute("SELECT * FROM pages WHERE pending_hash IS NOT NULL").fetchall()
        return [PageRecord.of_row(row) for row in rows]

    def clear_pending(self, url: str, *, source: str | None = None, version: str | None = None) -> None:
        """Settle a half-written page: a page that never got indexed disappears; an older indexed version
        stays. Without ``source``, at ``url`` in every source."""
        scope, args = ("url=?", (url,)) if source is None else (
            "source=? AND version=? AND url=?", (source, _stored(version), url))
        with self._transaction() as db:
            db.execute(f"DELETE FROM pages WHERE {scope} AND indexed_hash IS NULL", args)
            db.execute(f"UPDATE pages SET pending_hash=NULL WHERE {scope}", args)

    # Change reports
    def _record_changes(self, db: sqlite3.Connection, entries: Sequence[dict]) -> None:
        by_version: dict[tuple[str, str | None], list[dict]] = {}
        for entry in entries:
            by_version.setdefault((entry["source"], entry.get("version")), []).append(entry)
        now = time.time()
        for (source, version), batch in by_version.items():
            report_id = self._open_report(db, source, version, now)
            row = db.execute("SELECT details FROM change_reports WHERE id=?", (report_id,)).fetchone()
            details = change_log.merge(json.loads(row["details"] or "{}"), batch)
            db.execute("UPDATE change_reports SET details=? WHERE id=?", (json.dumps(details), report_id))

    @staticmethod
    def _open_report(db: sqlite3.Connection, source: str, version: str | None, now: float) -> int:
        row = db.execute("SELECT id FROM change_reports WHERE source=? AND version=? AND finished_at IS NULL "
                         "ORDER BY id DESC LIMIT 1", (source, _stored(version))).fetchone()
        if row:
            return int(row["id"])
        cursor = db.execute("INSERT INTO change_reports(source, version, started_at) VALUES (?, ?, ?)",
                            (source, _stored(version), now))
        return int(cursor.lastrowid)

    def change_report(self, report_id: int) -> ChangeReport | None:
        row = self._db.execute("SELECT * FROM change_reports WHERE id=?", (report_id,)).fetchone()
        return self._report(row) if row else None

    def change_reports(self, source: str, *, versions: Sequence[str | None] | None = None,
                       since: float | None = None, limit: int = MAX_CHANGE_REPORTS) -> list[ChangeReport]:
        """Change reports of ``source`` (only these ``versions`` when given) that ended at or after ``since`` (or
        are still open), newest first."""
        query, args = "SELECT * FROM change_reports WHERE source=?", [source]
        if versions is not None:
            query += f" AND version IN ({','.join('?' * len(versions))})"
            args += [_stored(v) for v in versions]
        if since is not None:
            query += " AND (finished_at IS NULL OR finished_at >= ?)"
            args.append(since)
        rows = self._db.execute(query + " ORDER BY started_at DESC, id DESC LIMIT ?", [*args, limit]).fetchall()
        return [self._report(row) for row in rows]

    @staticmethod
    def _report(row: sqlite3.Row) -> ChangeReport:
        details = json.loads(row["details"] or "{}")
        return ChangeReport(id=row["id"], source=row["source"], version=_loaded(row["version"]),
                            started_at=row["started_at"], finished_at=row["finished_at"],
                            pages=change_log.listing(details), omitted=dict(details.get("omitted", {})))
