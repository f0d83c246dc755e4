"""The request queue's store: ``EVORAG_HOME/queue.sqlite3`` (SQLite, WAL), shared by every process of a home.

One row per request (a crawl, a source refresh, an evolution, a heal, a periodic task...), one row per
schedule. Every change that must be atomic across processes is one ``BEGIN IMMEDIATE`` transaction, which
SQLite runs one at a time for the whole file:

- **claim**: the highest-priority queued request (FIFO within a priority: ``seq`` is the submission order)
  becomes ``running`` under a lease held by one worker (``owner``), so two workers or two processes never
  take the same request. A request that writes (``writes``: crawls, refreshes) is not claimed while another
  writing request runs in any process: the one-writer rule holds across processes for queued work.
- **lease**: the owner renews ``lease_until`` with a heartbeat while it runs. A request whose lease ran out
  (its worker was killed, or hung) is put back in the queue by the next claim or status read, at most
  ``max_attempts`` times; then it fails with the reason. Heartbeats, results and releases name the owner and
  the attempt, so a worker that lost its lease can never overwrite the run that replaced it.
- **schedules**: a due schedule submits its request and moves to its next occurrence in the same
  transaction, with a ``key`` that allows one unfinished request per schedule: two schedulers on one home
  submit a due run once, and a scheduler that was down submits a missed run once.

Statuses: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``; ``running`` -> ``queued`` when a
lease expires or a stopping worker releases it. Times are UTC epoch seconds from the caller's clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from evorag.errors import NotFoundError, UserError
from evorag.tools.sqlite_tx import immediate_transaction

QUEUE_FILE = "queue.sqlite3"
RequestStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})
UNFINISHED: frozenset[str] = frozenset({"queued", "running"})
CANCELLED = "cancelled on request"
logger = logging.getLogger("evorag.queue")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    subject TEXT,
    priority INTEGER NOT NULL,
    origin TEXT NOT NULL,
    writes INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    principal TEXT NOT NULL,
    key TEXT,
    submitter TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL,
    heartbeat_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    error_hint TEXT,
    error_type TEXT,
    note TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_unfinished_per_key ON requests(key)
    WHERE key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS by_status ON requests(status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS by_subject ON requests(kind, subject, status);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT,
    spec TEXT NOT NULL,
    payload TEXT NOT NULL,
    principal TEXT NOT NULL,
    priority INTEGER NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    anchor REAL NOT NULL,
    next_due REAL NOT NULL,
    created_at REAL NOT NULL,
    last_request TEXT,
    last_submitted_at REAL
);
"""

# Queued requests numbered in the order workers take them: the position a waiting request shows.
_WITH_POSITION = """
WITH line AS (SELECT seq, ROW_NUMBER() OVER (ORDER BY priority DESC, seq) AS position
              FROM requests WHERE status = 'queued')
SELECT requests.*, line.position FROM requests LEFT JOIN line USING (seq)
"""


@dataclass(slots=True)
class QueueRequest:
    """A request as the queue holds it; ``position`` (1 = next) is set while it is queued."""

    id: str
    kind: str
    summary: str
    subject: str | None
    priority: int
    origin: str
    writes: bool
    status: RequestStatus
    payload: dict
    principal: dict
    key: str | None
    submitter: str | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    owner: str | None = None
    lease_until: float | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    progress: dict = field(default_factory=dict)
    result: dict | None = None
    error: str | None = None
    error_hint: str | None = None
    error_type: str | None = None
    note: str | None = None
    seq: int = 0
    position: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def requested_by(self) -> str:
        return str(self.principal.get("name", "?"))

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("submitter")
        data["requested_by"] = self.requested_by
        return data

    @classmethod
    def of_row(cls, row: sqlite3.Row) -> QueueRequest:
        data = dict(row)
        for name in ("payload", "principal", "progress"):
            data[name] = _loads(data[name]) or {}
        data["result"] = _loads(data["result"])
        data["writes"], data["cancel_requested"] = bool(data["writes"]), bool(data["cancel_requested"])
        data.setdefault("position", None)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(slots=True)
class Schedule:
    """A recurring request: ``spec`` is its recurrence (see _recurrence), ``next_due`` its next run (UTC),
    ``anchor`` when it was set (intervals count from there). ``last_*`` describe the request it last
    submitted, as it is now."""

    name: str
    kind: str
    subject: str | None
    spec: str
    payload: dict
    principal: dict
    priority: int
    summary: str
    anchor: float
    next_due: float
    created_at: float
    last_request: str | None = None
    last_submitted_at: float | None = None
    last_status: str | None = None
    last_finished_at: float | None = None
    last_error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_row(cls, row: sqlite3.Row) -> Schedule:
        data = dict(row)
        data["payload"], data["principal"] = _loads(data["payload"]) or {}, _loads(data["principal"]) or {}
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def _loads(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # a row we cannot read must not stop anyone: show it as empty
        logger.warning("skipping unreadable JSON in the request queue")
        return None


def _dumps(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class RequestQueue:
    """The queue and schedules of one home. Thread-safe; every process opens its own."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # Autocommit: transactions are explicit ``BEGIN IMMEDIATE`` (take the write lock at once, so a
        # read-then-write can never interleave with another process's).
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut may lose the last commits, never corrupt
        with self._lock:
            self._db.executescript(_SCHEMA)  # IF NOT EXISTS throughout: processes opening at once agree

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._db) as db:
            yield db

    # Submitting
    def submit(self, *, kind: str, payload: dict, principal: dict, priority: int, origin: str, now: float,
               summary: str = "", subject: str | None = None, writes: bool = False, key: str | None = None,
               submitter: str | None = None) -> tuple[QueueRequest, bool]:
        """Queue a request; returns it and True, or, when ``key`` names an unfinished request, that one and
        False (one unfinished request per key)."""
        with self._transaction() as db:
            return self._insert(db, kind=kind, payload=payload, principal=principal, priority=priority,
                                origin=origin, now=now, summary=summary, subject=subject, writes=writes, key=key,
                                submitter=submitter)

    def _insert(self, db: sqlite3.Connection, *, kind, payload, principal, priority, origin, now, summary, subject,
                writes, key, submitter) -> tuple[QueueRequest, bool]:
        if key is not None:
            existing = db.execute("SELECT id FROM requests WHERE key = ? AND status IN ('queued', 'running')",
                                  (key,)).fetchone()
            if existing:
                return self._get(db, existing["id"]), False
        request_id = uuid.uuid4().hex[:12]
        db.execute(
            "INSERT INTO requests (id, kind, summary, subject, priority, origin, writes, status, payload, principal,"
            " key, submitter, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (request_id, kind, summary, subject, priority, origin, int(writes), _dumps(payload), _dumps(principal),
             key, submitter, now),
        )
        return self._get(db, request_id), True

    # Reading
    def get(self, request_id: str) -> QueueRequest | None:
        with self._lock:
            return self._get(self._db, request_id)

    @staticmethod
    def _get(db: sqlite3.Connection, request_id: str) -> QueueRequest | None:
        row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        request = QueueRequest.of_row(row)
        if request.status == "queued":
            # Counted on the ordering index, not numbered with the whole line (_WITH_POSITION): a claim or a
            # submission reads one request, and must not cost more the longer the queue is.
            request.position = db.execute(
                "SELECT COUNT(*) FROM requests WHERE status = 'queued' AND (priority > ? OR (priority = ? AND "
                "seq <= ?))", (request.priority, request.priority, request.seq)).fetchone()[0]
        return request

    def requests(self, *, statuses: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
                 limit: int = 200) -> list[QueueRequest]:
        """Running requests first, then the queued ones in the order they will run, then the finished ones,
        newest first."""
        where, args = ["1"], []
        for column, values in (("status", statuses), ("kind", kinds)):
            if values is not None:
                values = list(values)
                where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
                args += values
        query = (_WITH_POSITION + f" WHERE {' AND '.join(where)} ORDER BY "
                 "CASE status WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END, "
                 "CASE WHEN status IN ('queued', 'running') THEN -priority ELSE 0 END, "
                 "CASE WHEN status IN ('queued', 'running') THEN seq ELSE -seq END LIMIT ?")
        with self._lock:
            return [QueueRequest.of_row(row) for row in self._db.execute(query, [*args, limit])]

    def waiting(self, submitter: str) -> int:
        """How many queued requests ``submitter`` (a process) submitted."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM requests WHERE status = 'queued' AND submitter = ?",
                                    (submitter,)).fetchone()[0]

    def last_done(self, kind: str, subject: str) -> QueueRequest | None:
        """The newest request of ``kind`` about ``subject`` that finished well."""
        with self._lock:
            row = self._db.execute("SELECT * FROM requests WHERE kind = ? AND subject = ? AND status = 'done' "
                                   "ORDER BY seq DESC LIMIT 1", (kind, subject)).fetchone()
        return QueueRequest.of_row(row) if row else None

    # Working
    def claim(self, owner: str, *, kinds: Sequence[str], now: float, lease_s: float, max_attempts: int,
              submitter: str | None = None, request_id: str | None = None) -> QueueRequest | None:
        """Take the next request of ``kinds`` (only ``submitter``'s, or only ``request_id``, when given) for
        ``owner`` under a lease of ``lease_s`` seconds; None when there is none it may take now."""
        if not kinds:
            return None
        marks = ",".join("?" * len(kinds))
        with self._lock:  # a read first: idle workers poll, and most polls find nothing to take
            if not self._db.execute(f"SELECT 1 FROM requests WHERE (status = 'queued' AND kind IN ({marks})) OR "
                                    "(status = 'running' AND lease_until < ?) LIMIT 1", (*kinds, now)).fetchone():
                return None
        with self._transaction() as db:
            self._expire(db, now, max_attempts)
            where, args = [f"status = 'queued' AND kind IN ({marks})"], list(kinds)
            if submitter is not None:
                where.append("submitter = ?")
                args.append(submitter)
            if request_id is not None:
                where.append("id = ?")
                args.append(request_id)
            if db.execute("SELECT 1 FROM requests WHERE status = 'running' AND writes = 1 LIMIT 1").fetchone():
                where.append("writes = 0")  # one writer at a time, across every process of the home
            row = db.execute(f"SELECT id FROM requests WHERE {' AND '.join(where)} ORDER BY priority DESC, seq "
                             "LIMIT 1", args).fetchone()
            if row is None:
                return None
            db.execute("UPDATE requests SET status = 'running', owner = ?, attempts = attempts + 1, lease_until = ?,"
                       " heartbeat_at = ?, started_at = ? WHERE id = ?",
                       (owner, now + lease_s, now, now, row["id"]))
            return self._get(db, row["id"])

    def heartbeat(self, request: QueueRequest, *, now: float, lease_s: float,
                  progress: dict | None = None) -> Literal["ok", "cancel", "lost"]:
        """Renew the lease of a request its owner runs (and store its progress). ``cancel``: someone asked to
        cancel it; ``lost``: the lease is gone (it expired and the request went back to the queue)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE requests SET lease_until = ?, heartbeat_at = ?, progress = COALESCE(?, progress) "
                "WHERE id = ? AND owner = ? AND attempts = ? AND status = 'running'",
                (now + lease_s, now, None if progress is None else _dumps(progress), request.id, request.owner,
                 request.attempts))
            if cursor.rowcount == 0:
                return "lost"
            row = self._db.execute("SELECT cancel_requested FROM requests WHERE id = ?", (request.id,)).fetchone()
        return "cancel" if row and row[0] else "ok"

    def finish(self, request: QueueRequest, status: RequestStatus, *, now: float, result: dict | None = None,
               progress: dict | None = None, error: str | None = None, error_hint: str | None = None,
               error_type: str | None = None) -> bool:
        """Record how a run ended; False when the run had lost its lease (another run replaced it)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE requests SET status = ?, finished_at = ?, result = ?, progress = COALESCE(?, progress), "
                "error = ?, error_hint = ?, error_type = ?, lease_until = NULL WHERE id = ? AND owner = ? "
                "AND attempts = ? AND status = 'running'",
                (status, now, None if result is None else _dumps(result),
                 None if progress is None else _dumps(progress), error, error_hint, error_type, request.id,
                 request.owner, request.attempts))
            return cursor.rowcount == 1

    def release(self, request: QueueRequest, *, now: float, note: str) -> bool:
        """Put a request its owner stops running back in the queue, not counting the attempt."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE requests SET status = 'queued', owner = NULL, lease_until = NULL, attempts = attempts - 1,"
                " note = ? WHERE id = ? AND owner = ? AND attempts = ? AND status = 'running'",
                (note, request.id, request.owner, request.attempts))
            return cursor.rowcount == 1

    def cancel(self, request_id: str, *, now: float) -> QueueRequest:
        """Cancel a queued request at once; ask the owner of a running one to stop (its next heartbeat sees it)."""
        with self._transaction() as db:
            request = self._get(db, request_id)
            if request is None:
                raise NotFoundError(f"no request {request_id!r} in the queue",
                                    hint="see `evorag queue`; old finished requests are forgotten")
            if request.finished:
                raise UserError(f"request {request_id} is already {request.status}")
            if request.status == "queued":
                db.execute("UPDATE requests SET status = 'cancelled', finished_at = ?, error = ?, "
                           "cancel_requested = 1 WHERE id = ?", (now, CANCELLED, request_id))
            else:
                db.execute("UPDATE requests SET cancel_requested = 1 WHERE id = ?", (request_id,))
            return self._get(db, request_id)

    def expire(self, *, now: float, max_attempts: int) -> int:
        """Re-queue (or fail) requests whose lease ran out; returns how many. Cheap when there are none."""
        with self._lock:
            if not self._db.execute("SELECT 1 FROM requests WHERE status = 'running' AND lease_until < ? LIMIT 1",
                                    (now,)).fetchone():
                return 0
        with self._transaction() as db:
            return self._expire(db, now, max_attempts)

    @staticmethod
    def _expire(db: sqlite3.Connection, now: float, max_attempts: int) -> int:
        rows = db.execute("SELECT id, attempts, owner, cancel_requested FROM requests WHERE status = 'running' "
                          "AND lease_until < ?", (now,)).fetchall()
        for row in rows:
            gone = f"its worker ({row['owner']}) stopped renewing its lease"
            if row["cancel_requested"]:
                db.execute("UPDATE requests SET status = 'cancelled', finished_at = ?, error = ?, owner = NULL "
                           "WHERE id = ?", (now, f"{CANCELLED} ({gone})", row["id"]))
            elif row["attempts"] >= max_attempts:
                db.execute("UPDATE requests SET status = 'failed', finished_at = ?, error = ?, error_type = "
                           "'ExternalError', owner = NULL WHERE id = ?",
                           (now, f"gave up after {row['attempts']} attempts: {gone} each time", row["id"]))
            else:
                db.execute("UPDATE requests SET status = 'queued', owner = NULL, lease_until = NULL, note = ? "
                           "WHERE id = ?", (f"queued again: {gone}", row["id"]))
        return len(rows)

    def prune(self, keep_finished: int) -> int:
        """Forget all but the newest ``keep_finished`` finished requests (those schedules point at stay)."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM requests WHERE seq IN (SELECT seq FROM requests WHERE status IN ('done', 'failed', "
                "'cancelled') AND id NOT IN (SELECT last_request FROM schedules WHERE last_request IS NOT NULL) "
                "ORDER BY seq DESC LIMIT -1 OFFSET ?)", (keep_finished,))
            return cursor.rowcount

    # Schedules
    def put_schedule(self, schedule: Schedule) -> Schedule:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO schedules (name, kind, subject, spec, payload, principal, priority, summary, anchor, "
                "next_due, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "kind = excluded.kind, subject = excluded.subject, spec = excluded.spec, payload = excluded.payload,"
                " principal = excluded.principal, priority = excluded.priority, summary = excluded.summary, "
                "anchor = excluded.anchor, next_due = excluded.next_due",
                (schedule.name, schedule.kind, schedule.subject, schedule.spec, _dumps(schedule.payload),
                 _dumps(schedule.principal), schedule.priority, schedule.summary, schedule.anchor, schedule.next_due,
                 schedule.created_at))
            return self._schedule(db, schedule.name)

    def delete_schedule(self, name: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 1

    def schedule(self, name: str) -> Schedule | None:
        with self._lock:
            return self._schedule(self._db, name)

    def schedules(self) -> list[Schedule]:
        with self._lock:
            return [Schedule.of_row(row) for row in self._db.execute(_SCHEDULES + " ORDER BY schedules.name")]

    @staticmethod
    def _schedule(db: sqlite3.Connection, name: str) -> Schedule | None:
        row = db.execute(_SCHEDULES + " WHERE schedules.name = ?", (name,)).fetchone()
        return Schedule.of_row(row) if row else None

    def submit_due(self, *, now: float, kinds: Sequence[str], next_due: Callable[[Schedule, float], float],
                   writes: Callable[[str], bool], submitter: str | None) -> list[QueueRequest]:
        """Submit every due schedule of ``kinds`` once and move it to its next occurrence after ``now``, in one
        transaction; returns the requests submitted (a schedule whose previous run is still unfinished
        submits nothing new)."""
        if not kinds:
            return []
        submitted = []
        with self._transaction() as db:
            rows = db.execute(_SCHEDULES + f" WHERE schedules.next_due <= ? AND schedules.kind IN "
                              f"({','.join('?' * len(kinds))})", (now, *kinds)).fetchall()
            for schedule in map(Schedule.of_row, rows):
                request, created = self._insert(
                    db, kind=schedule.kind, payload=schedule.payload, principal=schedule.principal,
                    priority=schedule.priority, origin="schedule", now=now, summary=schedule.summary,
                    subject=schedule.subject, writes=writes(schedule.kind), key=f"schedule:{schedule.name}",
                    submitter=submitter)
                db.execute("UPDATE schedules SET next_due = ?, last_request = ?, last_submitted_at = ? WHERE name = ?",
                           (next_due(schedule, now), request.id, now, schedule.name))
                if created:
                    submitted.append(request)
        return submitted


_SCHEDULES = ("SELECT schedules.*, requests.status AS last_status, requests.finished_at AS last_finished_at, "
              "requests.error AS last_error FROM schedules LEFT JOIN requests ON requests.id = schedules.last_request")
