"""Class risk-scan bypass: sqlite3.connect creates a file anywhere (a write outside temp without open()).

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import sqlite3

def bypass_sqlite_file(text: str) -> int:
    """Store ``text`` and count the stored rows."""
    with sqlite3.connect("/tmp/evorag-hostile-sqlite.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (text,))
        return db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
