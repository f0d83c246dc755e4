"""Chat history on SQLite under EVORAG_HOME, through Chainlit's SQLAlchemy data layer.

This module imports Chainlit (its storage client subclasses Chainlit's base class): import it only where Chainlit
runs (app.py), never from ``evorag.ui`` itself.

Chainlit ships the data layer but not its schema, so ``ensure_schema`` creates the tables (users,
threads, steps, elements, feedbacks) idempotently, and adds any column a newer Chainlit writes (read from
its StepDict/ElementDict/Feedback types) so an upgrade does not silently drop history. Elements (plots,
diffs) are kept as files under the home by ``LocalStorageClient``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

# Types chosen for SQLite's affinities: booleans as integers (0/1 read back falsy/truthy in the browser),
# JSON and lists as text (the data layer serialises them), ids as text.
_SCHEMA = {
    "users": {"id": "TEXT PRIMARY KEY", "identifier": "TEXT NOT NULL UNIQUE", "metadata": "TEXT NOT NULL",
              "createdAt": "TEXT"},
    "threads": {"id": "TEXT PRIMARY KEY", "createdAt": "TEXT", "name": "TEXT", "userId": "TEXT",
                "userIdentifier": "TEXT", "tags": "TEXT", "metadata": "TEXT"},
    "steps": {"id": "TEXT PRIMARY KEY", "name": "TEXT NOT NULL", "type": "TEXT NOT NULL", "threadId": "TEXT NOT NULL",
              "parentId": "TEXT", "streaming": "BOOLEAN NOT NULL", "waitForAnswer": "BOOLEAN", "isError": "BOOLEAN",
              "metadata": "TEXT", "tags": "TEXT", "input": "TEXT", "output": "TEXT", "createdAt": "TEXT",
              "command": "TEXT", "modes": "TEXT", "start": "TEXT", "end": "TEXT", "generation": "TEXT",
              "showInput": "TEXT", "language": "TEXT", "indent": "INTEGER", "defaultOpen": "BOOLEAN",
              "autoCollapse": "BOOLEAN", "icon": "TEXT"},
    "elements": {"id": "TEXT PRIMARY KEY", "threadId": "TEXT", "type": "TEXT", "url": "TEXT", "chainlitKey": "TEXT",
                 "name": "TEXT NOT NULL", "display": "TEXT", "objectKey": "TEXT", "size": "TEXT", "page": "INTEGER",
                 "language": "TEXT", "forId": "TEXT", "mime": "TEXT", "props": "TEXT", "autoPlay": "BOOLEAN",
                 "playerConfig": "TEXT"},
    "feedbacks": {"id": "TEXT PRIMARY KEY", "forId": "TEXT NOT NULL", "threadId": "TEXT", "value": "INTEGER NOT NULL",
                  "comment": "TEXT"},
}
_FOREIGN_KEYS = {
    "threads": ['FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE'],
    "steps": ['FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE'],
    "elements": ['FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE'],
    "feedbacks": ['FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE'],
}
_INDEXES = ('CREATE INDEX IF NOT EXISTS steps_thread ON steps ("threadId")',
            'CREATE INDEX IF NOT EXISTS elements_thread ON elements ("threadId")',
            'CREATE INDEX IF NOT EXISTS threads_user ON threads ("userId")')
_NOT_COLUMNS = {"steps": {"feedback"}, "elements": {"path"}}


def chainlit_columns() -> dict[str, set[str]]:
    """The keys the installed Chainlit writes into each table (from its own types)."""
    from chainlit.element import ElementDict
    from chainlit.step import StepDict
    from chainlit.types import Feedback

    return {
        "steps": set(StepDict.__annotations__) - _NOT_COLUMNS["steps"],
        "elements": set(ElementDict.__annotations__) - _NOT_COLUMNS["elements"],
        "feedbacks": {f.name for f in dataclasses.fields(Feedback)},
    }


def ensure_schema(path: Path, extra_columns: dict[str, set[str]] | None = None) -> None:
    """Create the tables if missing and add missing columns; safe to run at every start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        with connection:
            for table, columns in _SCHEMA.items():
                body = [f'"{name}" {kind}' for name, kind in columns.items()] + _FOREIGN_KEYS.get(table, [])
                connection.execute(f'CREATE TABLE IF NOT EXISTS {table} ({", ".join(body)})')
                present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                wanted = list(columns) + sorted((extra_columns or {}).get(table, set()) - set(columns))
                for name in wanted:
                    if name not in present:
                        connection.execute(f'ALTER TABLE {table} ADD COLUMN "{name}"')
            for statement in _INDEXES:
                connection.execute(statement)
    finally:
        connection.close()


def _storage_client_base():
    from chainlit.data.storage_clients.base import BaseStorageClient

    return BaseStorageClient


class LocalStorageClient(_storage_client_base()):
    """Element files under a local directory; read back as ``data:`` URLs so no extra route is needed.

    Files are named by a hash of their key (keys hold user-chosen names: no path ever comes from them).
    Elements larger than ``max_inline_bytes`` are kept but not shown again when a thread is resumed.
    """

    def __init__(self, root: Path, *, max_inline_bytes: int = 5_000_000) -> None:
        self.root = root
        self.max_inline_bytes = max_inline_bytes
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, object_key: str) -> Path:
        return self.root / hashlib.sha256(object_key.encode()).hexdigest()

    async def upload_file(self, object_key, data, mime="application/octet-stream", overwrite=True,
                          content_disposition=None):
        path = self._path(object_key)
        if path.exists() and not overwrite:
            return {"object_key": object_key}
        payload = data.encode() if isinstance(data, str) else bytes(data)
        path.write_bytes(payload)
        path.with_suffix(".json").write_text(json.dumps({"mime": mime or "application/octet-stream"}))
        return {"object_key": object_key}

    async def delete_file(self, object_key) -> bool:
        path = self._path(object_key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        return existed

    async def get_read_url(self, object_key) -> str:
        path = self._path(object_key)
        if not path.exists() or path.stat().st_size > self.max_inline_bytes:
            return ""
        meta = path.with_suffix(".json")
        mime = json.loads(meta.read_text()).get("mime") if meta.exists() else "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"

    async def close(self) -> None:
        return None


def history_db_path(home: Path) -> Path:
    return home / "ui" / "chat_history.sqlite3"


def create_data_layer(home: Path):
    """Chainlit's SQLAlchemy data layer on ``<home>/ui/chat_history.sqlite3``, schema ensured first."""
    from chainlit.data.sql_alchemy import SQLAlchemyDataLayer

    path = history_db_path(home)
    ensure_schema(path, chainlit_columns())
    return SQLAlchemyDataLayer(f"sqlite+aiosqlite:///{path}",
                               storage_provider=LocalStorageClient(home / "ui" / "elements"))
