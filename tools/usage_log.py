"""The usage log: every search and answer, every call of a deployed tool and every evolution request, with who
asked, through which interface, and how it went. SQLite under ``settings.home`` (``usage.sqlite3``).

What is kept: the query text (the user's own data, capped at ``MAX_TEXT`` characters), the interface (``cli``,
``mcp``, ``ui``, ``python``: the principal's ``via``), the principal's name, the source selector, the top retrieval
score, the grounding and overall scores when the answer was evaluated, whether the answer came from the docs (or
said they do not answer it) and whether it was extractive, and the latency. Secrets never reach the file: every
text goes through the audit log's ``Redactor`` (known secret values, token-shaped strings) first, and tool calls
are logged without their arguments. Feedback (thumbs up/down, ``feedback``) names the logged answer or search
it rates and keeps its principal, interface, comment and the pages that answer cited (``queries.pages``).

Safety: WAL mode, every write one ``BEGIN IMMEDIATE`` transaction (``immediate_transaction``). One connection,
kept open and shared by the threads under a lock (processes share the file through WAL): a search pays well under a
millisecond for its line, where opening and closing a connection per write would checkpoint the WAL every time. Schema changes go in ``MIGRATIONS``; a file from a newer evorag is
refused, not altered. Callers that must never fail because of the log (searching) catch its errors themselves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from evorag.tools.audit import Redactor
from evorag.tools.sqlite_tx import immediate_transaction

from evorag.errors import UserError

FILENAME = "usage.sqlite3"
MAX_TEXT = 1000  # characters of a query or request kept: enough to recognise it, not a dump of a pasted file
MAX_ERROR = 200
MAX_PAGES = 20  # URLs kept per query: what an answer cites or a search's first results
MAX_COMMENT = 500

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE queries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('search', 'ask')),
            interface TEXT NOT NULL,
            principal TEXT NOT NULL,
            query TEXT NOT NULL,
            source TEXT,
            hits INTEGER,
            top_score REAL,
            grounding REAL,
            overall REAL,
            not_found INTEGER NOT NULL DEFAULT 0,
            extractive INTEGER NOT NULL DEFAULT 0,
            latency_ms REAL NOT NULL,
            error TEXT
        );
        CREATE INDEX queries_by_time ON queries (ts);
        CREATE TABLE tool_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            interface TEXT NOT NULL,
            principal TEXT NOT NULL,
            tool TEXT NOT NULL,
            ok INTEGER NOT NULL,
            error TEXT,
            latency_ms REAL NOT NULL
        );
        CREATE INDEX tool_calls_by_time ON tool_calls (ts);
        CREATE TABLE evolutions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            interface TEXT NOT NULL,
            principal TEXT NOT NULL,
            request TEXT NOT NULL,
            outcome TEXT NOT NULL,
            gate TEXT,
            reason TEXT,
            tool TEXT,
            latency_ms REAL NOT NULL
        );
        CREATE INDEX evolutions_by_time ON evolutions (ts);
        """,
    ),
    (
        2,
        # Feedback on an answer or a search (thumbs up/down), per principal; ``pages`` (JSON list of URLs) is what
        # an answer cited or a search returned, so a thumbs-down can name the pages its principal rejected.
        """
        ALTER TABLE queries ADD COLUMN pages TEXT;
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            query_id INTEGER REFERENCES queries (id),
            interface TEXT NOT NULL,
            principal TEXT NOT NULL,
            query TEXT NOT NULL,
            value INTEGER NOT NULL CHECK (value IN (-1, 1)),
            comment TEXT,
            pages TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX feedback_by_time ON feedback (ts);
        CREATE INDEX feedback_by_principal ON feedback (principal, value);
        """,
    ),
    (
        3,
        # A principal's recent queries that named a source: their preferred sources (``named_sources``).
        """
        CREATE INDEX queries_by_principal_source ON queries (principal, id) WHERE source IS NOT NULL;
        """,
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One search or answer. ``not_found``: the docs did not answer it (no hits, or the answer says so)."""

    ts: float
    kind: str
    interface: str
    principal: str
    query: str
    source: str | None = None
    hits: int | None = None
    top_score: float | None = None
    grounding: float | None = None
    overall: float | None = None
    not_found: bool = False
    extractive: bool = False
    latency_ms: float = 0.0
    error: str | None = None
    id: int | None = None
    pages: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A thumbs up (``value`` 1) or down (-1) from ``principal`` on a logged answer or search (``query_id``), or on
    a question given as text (``query_id`` None); ``pages``: what that answer cited or that search returned."""

    ts: float
    interface: str
    principal: str
    query: str
    value: int
    comment: str | None = None
    pages: tuple[str, ...] = ()
    query_id: int | None = None
    id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    ts: float
    interface: str
    principal: str
    tool: str
    ok: bool
    error: str | None = None
    latency_ms: float = 0.0
    id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EvolutionRecord:
    """An evolution request and its outcome (deployed, rejected, pending, model_unavailable, error)."""

    ts: float
    interface: str
    principal: str
    request: str
    outcome: str
    gate: str | None = None
    reason: str | None = None
    tool: str | None = None
    latency_ms: float = 0.0
    id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _interface(via: str | None) -> str:
    # Anything else (policy, system, a future interface) is logged as what it says, kept short.
    return (via or "python")[:32]


class UsageLog:
    """The usage log of one home. An unreadable file or one from a newer evorag raises UserError naming it."""

    def __init__(self, path: Path, *, known_secrets: Iterable[str] = (), busy_timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock  # UTC epoch seconds of each record (the service's clock: tests script it)
        self.busy_timeout = busy_timeout
        self._redact = Redactor(known_secrets)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the usage log {self.path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.DatabaseError as exc:
                raise UserError(f"{self.path} is not a readable usage log: {exc}",
                                hint="move the file aside; a new one is created on the next run") from exc

    def _migrate(self) -> None:
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
            with immediate_transaction(connection) as db:
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
                current = row[0] or 0
                if current > LATEST_VERSION:
                    raise UserError(f"the usage log {self.path} was written by a newer evorag "
                                    f"(schema {current}, this one knows {LATEST_VERSION})",
                                    hint="upgrade evorag, or move the file aside")
                for version, sql in MIGRATIONS:
                    if version > current:
                        for statement in sql.split(";"):
                            if statement.strip():
                                db.execute(statement)
                        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _text(self, value: str | None, limit: int = MAX_TEXT) -> str | None:
        if value is None:
            return None
        # Text that is not valid Unicode (lone surrogates from undecodable command-line bytes) is logged with
        # replacement characters: the request itself is refused with its own message, not the log's.
        text = str(value).encode("utf-8", "replace").decode("utf-8")
        return self._redact.text(text)[:limit]

    def _insert(self, table: str, row: dict) -> int:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._connect() as connection, immediate_transaction(connection) as db:
            return int(db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())).lastrowid)

    # Writing
    def record_query(self, *, kind: str, via: str | None, principal: str, query: str, source: str | None = None,
                     hits: int | None = None, top_score: float | None = None, grounding: float | None = None,
                     overall: float | None = None, not_found: bool = False, extractive: bool = False,
                     latency_ms: float = 0.0, error: str | None = None, ts: float | None = None,
                     pages: Iterable[str] = ()) -> int:
        return self._insert("queries", {
            "ts": self.clock() if ts is None else ts, "kind": kind, "interface": _interface(via),
            "principal": principal[:64], "query": self._text(query) or "", "source": self._text(source, 200),
            "hits": hits, "top_score": top_score, "grounding": grounding, "overall": overall,
            "not_found": int(bool(not_found)), "extractive": int(bool(extractive)), "latency_ms": float(latency_ms),
            "error": self._text(error, MAX_ERROR), "pages": self._pages(pages)})

    def _pages(self, pages: Iterable[str]) -> str:
        unique = list(dict.fromkeys(str(p)[:2048] for p in pages if p))[:MAX_PAGES]
        return json.dumps([self._redact.text(p) for p in unique])

    def record_feedback(self, *, via: str | None, principal: str, query: str, value: int,
                        comment: str | None = None, pages: Iterable[str] = (), query_id: int | None = None,
                        ts: float | None = None) -> int:
        if value not in (-1, 1):
            raise UserError(f"feedback is +1 (up) or -1 (down), got {value!r}")
        return self._insert("feedback", {
            "ts": self.clock() if ts is None else ts, "query_id": query_id, "interface": _interface(via),
            "principal": principal[:64], "query": self._text(query) or "", "value": int(value),
            "comment": self._text(comment, MAX_COMMENT) or None, "pages": self._pages(pages)})

    def record_tool_call(self, *, via: str | None, principal: str, tool: str, ok: bool, latency_ms: float,
                         error: str | None = None, ts: float | None = None) -> int:
        return self._insert("tool_calls", {
            "ts": self.clock() if ts is None else ts, "interface": _interface(via), "principal": principal[:64],
            "tool": tool[:200], "ok": int(bool(ok)), "error": self._text(error, MAX_ERROR),
            "latency_ms": float(latency_ms)})

    def record_evolution(self, *, via: str | None, principal: str, request: str, outcome: str,
                         gate: str | None = None, reason: str | None = None, tool: str | None = None,
                         latency_ms: float = 0.0, ts: float | None = None) -> int:
        return self._insert("evolutions", {
            "ts": self.clock() if ts is None else ts, "interface": _interface(via), "principal": principal[:64],
            "request": self._text(request) or "", "outcome": outcome[:64], "gate": self._text(gate, 64),
            "reason": self._text(reason, MAX_ERROR), "tool": self._text(tool, 200), "latency_ms": float(latency_ms)})

    # Reading
    def _rows(self, table: str, since: float | None, until: float | None) -> list[sqlite3.Row]:
        with self._connect() as connection:
            return connection.execute(
                f"SELECT * FROM {table} WHERE ts >= ? AND ts < ? ORDER BY ts, id",
                (since if since is not None else 0.0, until if until is not None else float("inf"))).fetchall()

    def queries(self, *, since: float | None = None, until: float | None = None) -> list[QueryRecord]:
        """The searches and answers logged in [since, until), oldest first."""
        return [QueryRecord(ts=r["ts"], kind=r["kind"], interface=r["interface"], principal=r["principal"],
                            query=r["query"], source=r["source"], hits=r["hits"], top_score=r["top_score"],
                            grounding=r["grounding"], overall=r["overall"], not_found=bool(r["not_found"]),
                            extractive=bool(r["extractive"]), latency_ms=r["latency_ms"], error=r["error"], id=r["id"],
                            pages=_pages(r["pages"]))
                for r in self._rows("queries", since, until)]

    def query(self, query_id: int) -> QueryRecord | None:
        """The logged search or answer with this id, or None."""
        with self._connect() as connection:
            r = connection.execute("SELECT * FROM queries WHERE id = ?", (int(query_id),)).fetchone()
        if r is None:
            return None
        return QueryRecord(ts=r["ts"], kind=r["kind"], interface=r["interface"], principal=r["principal"],
                           query=r["query"], source=r["source"], hits=r["hits"], top_score=r["top_score"],
                           grounding=r["grounding"], overall=r["overall"], not_found=bool(r["not_found"]),
                           extractive=bool(r["extractive"]), latency_ms=r["latency_ms"], error=r["error"], id=r["id"],
                           pages=_pages(r["pages"]))

    def latest_query(self, principal: str, text: str) -> QueryRecord | None:
        """The principal's newest logged search or answer of exactly ``text`` (case and spacing aside), or None."""
        wanted = " ".join(text.lower().split())
        with self._connect() as connection:
            rows = connection.execute("SELECT id, query FROM queries WHERE principal = ? ORDER BY id DESC LIMIT 500",
                                      (principal[:64],)).fetchall()
        found = next((r["id"] for r in rows if " ".join(r["query"].lower().split()) == wanted), None)
        return self.query(found) if found is not None else None

    def named_sources(self, principal: str, *, last: int = 200) -> dict[str, int]:
        """How often ``principal`` named each source (without its version) in their newest ``last`` searches and
        questions that named one."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT source FROM queries WHERE principal = ? AND source IS NOT NULL ORDER BY id DESC LIMIT ?",
                (principal[:64], int(last))).fetchall()
        counts: dict[str, int] = {}
        for row in rows:
            name = str(row["source"]).split("@", 1)[0]
            counts[name] = counts.get(name, 0) + 1
        return counts

    def feedback(self, *, since: float | None = None, until: float | None = None,
                 principal: str | None = None, value: int | None = None) -> list[FeedbackRecord]:
        """The feedback given in [since, until), oldest first; only ``principal``'s, only ``value``, if given."""
        sql = "SELECT * FROM feedback WHERE ts >= ? AND ts < ?"
        args: list = [since if since is not None else 0.0, until if until is not None else float("inf")]
        if principal is not None:
            sql, args = sql + " AND principal = ?", [*args, principal[:64]]
        if value is not None:
            sql, args = sql + " AND value = ?", [*args, int(value)]
        with self._connect() as connection:
            rows = connection.execute(sql + " ORDER BY ts, id", args).fetchall()
        return [FeedbackRecord(ts=r["ts"], interface=r["interface"], principal=r["principal"], query=r["query"],
                               value=r["value"], comment=r["comment"], pages=_pages(r["pages"]),
                               query_id=r["query_id"], id=r["id"]) for r in rows]

    def tool_calls(self, *, since: float | None = None, until: float | None = None) -> list[ToolCallRecord]:
        return [ToolCallRecord(ts=r["ts"], interface=r["interface"], principal=r["principal"], tool=r["tool"],
                               ok=bool(r["ok"]), error=r["error"], latency_ms=r["latency_ms"], id=r["id"])
                for r in self._rows("tool_calls", since, until)]

    def evolutions(self, *, since: float | None = None, until: float | None = None) -> list[EvolutionRecord]:
        return [EvolutionRecord(ts=r["ts"], interface=r["interface"], principal=r["principal"], request=r["request"],
                                outcome=r["outcome"], gate=r["gate"], reason=r["reason"], tool=r["tool"],
                                latency_ms=r["latency_ms"], id=r["id"])
                for r in self._rows("evolutions", since, until)]


def _pages(text: str | None) -> tuple[str, ...]:
    try:
        pages = json.loads(text) if text else []
    except ValueError:
        return ()
    return tuple(p for p in pages if isinstance(p, str)) if isinstance(pages, list) else ()
