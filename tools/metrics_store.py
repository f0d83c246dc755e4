"""Durable history of correctness reports and evaluation runs, in SQLite under ``settings.home``.

Safety: the database runs in WAL mode and every write is one ``BEGIN IMMEDIATE`` transaction, so a
process killed mid-write leaves either the whole record or none of it, and readers never block writers.
Each call opens its own connection with a busy timeout, so one ``MetricsStore`` may be shared by threads
and several processes may write at once.

Schema changes go in ``MIGRATIONS`` as (version, SQL) pairs, applied in order inside a transaction;
``schema_version`` records the version reached. A database from a newer evorag is refused, not altered.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from evorag.tools.evaluation import Trend, compute_trend
from evorag.tools.sqlite_tx import immediate_transaction

from evorag.errors import UserError

Kind = Literal["answer", "eval"]
METRIC_COLUMNS = ("grounding", "rouge1", "rouge2", "rougeL", "ndcg", "code_quality", "overall")
FILENAME = "metrics.sqlite3"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE reports (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at REAL NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('answer', 'eval')),
            query TEXT NOT NULL,
            source_filter TEXT,
            model TEXT,
            grounding REAL,
            rouge1 REAL,
            rouge2 REAL,
            rougeL REAL,
            ndcg REAL,
            code_quality REAL,
            overall REAL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            timings TEXT NOT NULL DEFAULT '{}',
            report TEXT NOT NULL
        );
        CREATE INDEX reports_by_kind ON reports (kind, id);
        """,
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]


def default_metrics_path(home: Path) -> Path:
    """Where the metrics database lives: ``<settings.home>/metrics.sqlite3``."""
    return Path(home) / FILENAME


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _report_parts(report: Any) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any] | None]:
    """(metric columns, JSON body, evaluation timings) of a CorrectnessReport or a plain mapping."""
    if hasattr(report, "metrics") and hasattr(report, "to_dict"):
        body = report.to_dict()
        metrics = dict(report.metrics())
        timings = getattr(report, "timings_ms", None)
    elif isinstance(report, Mapping):
        body = dict(report)
        metrics = {name: body.get(name) for name in METRIC_COLUMNS}
        if metrics["ndcg"] is None:
            metrics["ndcg"] = body.get("ndcg@10")  # an evaluate_run() result
        timings = None
    else:
        raise UserError(f"cannot record a {type(report).__name__}", hint="pass a CorrectnessReport or a dict")
    return {name: _number(metrics.get(name)) for name in METRIC_COLUMNS}, body, timings


class MetricsStore:
    """Append-only store of reports. Failure modes: an unreadable file or one written by a newer
    evorag raises UserError naming the file; a lock held longer than ``busy_timeout`` seconds raises
    UserError too (another process is stuck holding the database)."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the metrics database {self.path}: {exc}") from exc
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
            yield connection
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise UserError(
                    f"the metrics database {self.path} stayed locked for {self.busy_timeout:.0f} s",
                    hint="another evorag process is holding it; retry when it is done",
                ) from exc
            raise UserError(f"the metrics database {self.path} failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"{self.path} is not a readable metrics database: {exc}",
                hint="move the file aside; a new one is created on the next run",
            ) from exc
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection, immediate_transaction(connection) as db:
            yield db

    def _migrate(self) -> None:
        with self._connect() as connection:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise UserError(
                    f"cannot switch {self.path} to WAL mode (got {mode})", hint="use a local disk"
                )
        with self._transaction() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > LATEST_VERSION:
                raise UserError(
                    f"the metrics database {self.path} has schema version {current}, newer than this evorag "
                    f"understands ({LATEST_VERSION})",
                    hint="upgrade evorag or point EVORAG_HOME elsewhere",
                )
            for version, script in MIGRATIONS:
                if version > current:
                    for statement in (s.strip() for s in script.split(";")):
                        if statement:
                            connection.execute(statement)
                    connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        with self._connect() as connection:
            return int(connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def record(
        self,
        report: Any,
        *,
        query: str,
        source_filter: str | None = None,
        model: str | None = None,
        timings: Mapping[str, float] | None = None,
        tokens: Mapping[str, int] | None = None,
        kind: Kind = "answer",
        created_at: float | None = None,
    ) -> int:
        """Store one report (a CorrectnessReport, or a dict such as an evaluate_run() result for
        ``kind="eval"``) and return its id. ``tokens`` takes "prompt"/"completion" (or the same with a
        "_tokens" suffix). The report's own evaluation timings are kept under ``timings["evaluation"]``."""
        if kind not in ("answer", "eval"):
            raise UserError(f"kind must be 'answer' or 'eval', got {kind!r}")
        metrics, body, evaluation_timings = _report_parts(report)
        all_timings: dict[str, Any] = dict(timings or {})
        if evaluation_timings:
            all_timings.setdefault("evaluation", evaluation_timings)
        tokens = tokens or {}
        prompt = tokens.get("prompt", tokens.get("prompt_tokens"))
        completion = tokens.get("completion", tokens.get("completion_tokens"))
        columns = ["created_at", "kind", "query", "source_filter", "model", *METRIC_COLUMNS]
        columns += ["prompt_tokens", "completion_tokens", "timings", "report"]
        values = [
            time.time() if created_at is None else float(created_at),
            kind,
            query,
            source_filter,
            model,
            *(metrics[name] for name in METRIC_COLUMNS),
            int(prompt) if prompt is not None else None,
            int(completion) if completion is not None else None,
            json.dumps(all_timings, default=str),
            json.dumps(body, default=str),
        ]
        sql = f"INSERT INTO reports ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with self._transaction() as connection:
            cursor = connection.execute(sql, values)
            return int(cursor.lastrowid)

    def history(self, last: int | None = None, *, kind: Kind | None = None) -> list[dict[str, Any]]:
        """Stored records as dicts, oldest first (newest last); ``last`` keeps only the newest N."""
        if last is not None and last < 0:
            raise UserError(f"last must be >= 0, got {last}")
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        sql = f"SELECT * FROM reports {where} ORDER BY id DESC"
        if last is not None:
            sql += " LIMIT ?"
            params.append(last)
        with self._connect() as connection:
            rows = connection.execute(sql, params).fetchall()
        records = []
        for row in reversed(rows):
            record = dict(row)
            record["timings"] = json.loads(record["timings"])
            record["report"] = json.loads(record["report"])
            records.append(record)
        return records

    def trend(self, window: int = 10, *, metric: str = "overall", kind: Kind = "answer") -> Trend:
        """Trend of ``metric`` over the newest ``window`` records of ``kind`` (see compute_trend)."""
        if metric not in METRIC_COLUMNS:
            raise UserError(f"unknown metric {metric!r}", hint=f"use one of {', '.join(METRIC_COLUMNS)}")
        if not isinstance(window, int) or window < 2:
            raise UserError(f"trend window must be an integer >= 2, got {window!r}")
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {metric} FROM reports WHERE kind = ? AND {metric} IS NOT NULL ORDER BY id DESC LIMIT ?",
                (kind, window),
            ).fetchall()
        return compute_trend([row[0] for row in reversed(rows)], window=window)

    def count(self) -> int:
        with self._connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
