"""Per-principal sliding-window limits: evolutions per hour and API calls per minute.

* ``SlidingWindowLimiter``: evolutions (and hand-added tools), persisted in SQLite so separate CLI runs and the
  servers of one home count together. Each use is recorded under the principal acting
  (``evorag.principals.acting_principal``), so one user spending their quota does not block another. The limit is
  ``limit`` (EVORAG_EVOLUTIONS_PER_HOUR) unless ``limits_by_role`` names the principal's role. A use recorded with no
  principal (by this limiter before it counted per principal, or by code acting for nobody) is unattributed and
  counts against everyone: an upgrade does not hand out a fresh quota.
* ``CallRateLimiter``: API calls per principal, in this process's memory. Calls are cheap and many (an SQLite write
  each would cost more than a search), and a per-minute limit protects the server process that answers them.

A refusal is ``RateLimitedError``: its message says when the next use is possible and ``retry_after`` holds the
seconds (HTTP ``Retry-After``). ``rejections()`` counts the refusals of this process (Prometheus).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from evorag.errors import ConfigError, ExternalError, UserError
from evorag.principals import Principal, acting_principal

UNATTRIBUTED = ""  # the principal column of uses nobody is named for; they count against every principal


class RateLimitedError(UserError):
    """A principal used up a limit; the message says when the next use is possible, ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, math.ceil(retry_after))


def _wait_text(seconds: float, now: float) -> str:
    """'in 12 min (at 14:05 UTC)' or 'in 40 s'."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"in {seconds} s"
    at = dt.datetime.fromtimestamp(now + seconds, dt.UTC).strftime("%H:%M UTC")
    return f"in {math.ceil(seconds / 60)} min (at {at})"


class _Rejections:
    """Refusals of this process by (limit, principal); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def add(self, limit: str, principal: str) -> None:
        with self._lock:
            self._counts[(limit, principal)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


class SlidingWindowLimiter:
    """At most ``limit`` uses per principal in any ``window_seconds`` (see the module docstring)."""

    metric = "evolutions_per_hour"  # the limit's name in metrics

    def __init__(self, path: Path, *, limit: int, window_seconds: float = 3600.0, clock=time.time,
                 limits_by_role: Mapping[str, int] | None = None) -> None:
        self.limit = limit
        self.limits_by_role = {str(role).lower(): int(value) for role, value in (limits_by_role or {}).items()}
        self.window = window_seconds
        self.clock = clock
        self._rejections = _Rejections()
        # One connection shared by the threads of this process: one transaction on it at a time.
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        """Create the table, or add the principal column to one from before per-principal limits (its events
        stay, unattributed). In one write transaction: two processes opening an old database add it once."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS events (name TEXT NOT NULL, at REAL NOT NULL, "
                             f"principal TEXT NOT NULL DEFAULT '{UNATTRIBUTED}')")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            if "principal" not in columns:
                self._db.execute(
                    f"ALTER TABLE events ADD COLUMN principal TEXT NOT NULL DEFAULT '{UNATTRIBUTED}'")
            self._db.execute("CREATE INDEX IF NOT EXISTS events_by_principal ON events (name, principal, at)")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def limit_for(self, principal: Principal | None) -> int:
        if principal is None:
            return self.limit
        return self.limits_by_role.get(str(principal.role), self.limit)

    def acquire(self, name: str = "evolution", *, principal: Principal | None = None) -> int:
        """Record one use by ``principal`` (default: the one acting now), or raise RateLimitedError if its window
        is full. Returns the slot, for ``release``."""
        who = principal or acting_principal()
        key = who.name if who is not None else UNATTRIBUTED
        limit = self.limit_for(who)
        with self._lock:
            return self._acquire(name, key, limit)

    def _acquire(self, name: str, key: str, limit: int) -> int:
        now = self.clock()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(
                "SELECT at FROM events WHERE name=? AND principal IN (?, ?) AND at>? ORDER BY at",
                (name, key, UNATTRIBUTED, now - self.window),
            ).fetchall()
            if len(rows) >= limit:
                wait = rows[len(rows) - limit][0] + self.window - now  # when enough of them have left the window
                self._rejections.add(self.metric, key or "-")
                raise RateLimitedError(
                    f"rate limit reached: {limit} {name}s per {self.window / 3600:g} h for {key or 'everyone'}; "
                    f"the next one is possible {_wait_text(wait, now)}",
                    retry_after=wait,
                    hint="settings EVORAG_EVOLUTIONS_PER_HOUR (per principal) and EVORAG_EVOLUTIONS_PER_HOUR_BY_ROLE",
                )
            slot = self._db.execute("INSERT INTO events(name, at, principal) VALUES (?, ?, ?)",
                                    (name, now, key)).lastrowid
            self._db.execute("DELETE FROM events WHERE at<?", (now - 10 * self.window,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return slot

    def release(self, slot: int) -> None:
        """Give back a slot ``acquire`` returned: the use it counted did not happen (e.g. a run whose model was
        unreachable did no work). Release each slot once: SQLite may give a released slot's number to a later use."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE rowid=?", (slot,))

    def used(self, name: str = "evolution", *, principal: Principal | None = None) -> int:
        """The uses counting against ``principal`` (default: the one acting now) in the current window."""
        who = principal or acting_principal()
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM events WHERE name=? AND principal IN (?, ?) AND at>?",
                (name, who.name if who is not None else UNATTRIBUTED, UNATTRIBUTED, self.clock() - self.window),
            ).fetchone()[0]

    def rejections(self) -> dict[tuple[str, str], int]:
        """Refusals of this process by (limit, principal)."""
        return self._rejections.snapshot()


# What ends a use without a verdict on the work: something outside evorag failed (ExternalError: the model, the
# sandbox, a store) or the setup lacks a part (ConfigError: no usable sandbox, no model). A gate's or a person's
# rejection is an outcome, never one of these.
INFRASTRUCTURE_FAILURES = (ExternalError, ConfigError)


@contextlib.asynccontextmanager
async def counted_use(limiter, name: str = "evolution") -> AsyncIterator[int]:
    """Take a slot of ``limiter`` for the block, for the principal acting now. Whatever the block ends in keeps it
    (a deploy, a rejection by a gate or by a person: the work was done) except an infrastructure failure
    (``INFRASTRUCTURE_FAILURES``), which gives it back: that use did no work."""
    slot = await asyncio.to_thread(limiter.acquire, name)
    try:
        yield slot
    except INFRASTRUCTURE_FAILURES:
        await asyncio.to_thread(limiter.release, slot)
        raise


class CallRateLimiter:
    """At most ``limit`` calls per principal name in any ``window_seconds``, in memory; ``limit`` 0: no limit."""

    metric = "api_calls_per_minute"

    def __init__(self, *, limit: int, window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, collections.deque[float]] = {}
        self._rejections = _Rejections()

    def acquire(self, principal: str, count: int = 1) -> None:
        """Count ``count`` calls of ``principal``, or none of them and raise RateLimitedError when they do not all
        fit in its window."""
        if self.limit <= 0 or count <= 0:
            return
        now = self.clock()
        with self._lock:
            calls = self._calls.setdefault(principal, collections.deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) + count > self.limit:
                self._rejections.add(self.metric, principal)
                # When enough calls have left the window for these to fit (a batch larger than the limit never does).
                index = min(len(calls), len(calls) + count - self.limit) - 1
                wait = (calls[index] + self.window - now) if index >= 0 else self.window
                raise RateLimitedError(
                    f"rate limit reached: {self.limit} API calls per {self.window:g} s for {principal}; "
                    f"the next one is possible {_wait_text(wait, time.time())}",
                    retry_after=wait, hint="setting EVORAG_API_CALLS_PER_MINUTE")
            calls.extend([now] * count)
            if len(self._calls) > 1000:  # forget principals whose calls all left the window
                for name in [n for n, c in self._calls.items() if not c or c[-1] <= now - self.window]:
                    del self._calls[name]

    def rejections(self) -> dict[tuple[str, str], int]:
        return self._rejections.snapshot()


class FailureThrottle:
    """Locks a key (a user name) after ``limit`` failures within ``window_seconds``, until the oldest of them
    leaves the window; a success clears the key's failures. In memory, per process: a password guesser must
    restart the server to reset it, and the server that checks the passwords is the one that counts."""

    def __init__(self, *, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, collections.deque[float]] = {}

    def locked_for(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(key)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[key]
                return 0.0
            return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            self._failures.setdefault(key, collections.deque()).append(now)
            if len(self._failures) > 10_000:  # forget keys whose failures all left the window
                for name in [k for k, f in self._failures.items() if not f or f[-1] <= now - self.window]:
                    del self._failures[name]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
