"""One write transaction on an autocommit SQLite connection, the way every evorag database writes.

``BEGIN IMMEDIATE`` takes the database's write lock at the start, so a read-then-write inside the block can never
interleave with another process's; any exception (cancellation and KeyboardInterrupt included) rolls the whole
block back, so a reader sees all of it or none of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with immediate_transaction(db) as db:``; ``db`` must be in autocommit mode (``isolation_level=None``)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
