"""A sliding-window limit on evolutions, persisted so separate CLI runs count together."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from evorag.errors import UserError


class RateLimitedError(UserError):
    """Too many evolutions in the window; the message says when the next one is possible."""


class SlidingWindowLimiter:
    def __init__(self, path: Path, *, limit: int, window_seconds: float = 3600.0, clock=time.time) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS events (name TEXT NOT NULL, at REAL NOT NULL)")

    def acquire(self, name: str = "evolution") -> int:
        """Record one use, or raise RateLimitedError if the window is full. Returns the slot, for ``release``."""
        now = self.clock()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(
                "SELECT at FROM events WHERE name=? AND at>? ORDER BY at", (name, now - self.window)
            ).fetchall()
            if len(rows) >= self.limit:
                wait = rows[0][0] + self.window - now
                raise RateLimitedError(
                    f"rate limit reached: {self.limit} {name}s per {self.window / 3600:g} h",
                    hint=f"next one possible in {max(1, round(wait / 60))} min (setting EVORAG_EVOLUTIONS_PER_HOUR)",
                )
            slot = self._db.execute("INSERT INTO events(name, at) VALUES (?, ?)", (name, now)).lastrowid
            self._db.execute("DELETE FROM events WHERE at<?", (now - 10 * self.window,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return slot

    def release(self, slot: int) -> None:
        """Give back a slot ``acquire`` returned: the use it counted did not happen (e.g. a run whose model was
        unreachable did no work). Release each slot once: SQLite may give a released slot's number to a later use."""
        self._db.execute("DELETE FROM events WHERE rowid=?", (slot,))

    def used(self, name: str = "evolution") -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM events WHERE name=? AND at>?", (name, self.clock() - self.window)
        ).fetchone()[0]
