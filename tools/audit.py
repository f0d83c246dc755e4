"""A JSON-lines audit trail of every evolution step. Secrets are redacted before anything is written.

Every entry names the principal that caused it (``principal``: name, role, interface): the one passed to
``write``, else the one the service is acting for in this task (evorag.principals.acting_as), else null,
which only direct use of the pipeline below the service produces.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from evorag.principals import acting_principal

logger = logging.getLogger(__name__)

_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api[_-]?key|authorization|credential)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_-]{8,}|Bearer\s+[A-Za-z0-9._~+/=-]{8,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|evr_[A-Za-z0-9_-]{20,})"
)
REDACTED = "[REDACTED]"
# Keys that look secret by name (they say "token") but hold model token counts: kept when their value is a count
# or a mapping of names to counts, and redacted like any secret-looking key otherwise.
_TOKEN_COUNT_KEYS = frozenset({"tokens", "prompt_tokens", "completion_tokens", "total_tokens"})


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_counts(key: str, value) -> bool:
    if key not in _TOKEN_COUNT_KEYS:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_count(v) for k, v in value.items())
    return _is_count(value)


def _secret_values_from_env() -> list[str]:
    return [value for name, value in os.environ.items() if _SECRET_KEY.search(name) and len(value) >= 6]


class Redactor:
    """Removes secrets: values of secret-looking keys, known secret values, and token-shaped strings."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self.known = sorted({s for s in [*known_secrets, *_secret_values_from_env()] if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.known:
            value = value.replace(secret, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, value)

    def __call__(self, value, key: str = ""):
        if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}) and not _token_counts(key, value):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


class AuditLog:
    def __init__(self, path: Path, *, known_secrets: Iterable[str] = (),
                 on_entry: Callable[[dict], None] | None = None) -> None:
        self.path = path
        self.redact = Redactor(known_secrets)
        self._on_entry = on_entry  # told of every entry once it is written (redacted): webhooks watch deploys
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, *, principal=None, **fields) -> dict:
        who = principal or acting_principal()
        entry = {"ts": round(time.time(), 3), "event": event, "principal": who.to_dict() if who else None,
                 **self.redact(fields)}
        line = json.dumps(entry, default=str, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._on_entry is not None:
            try:
                self._on_entry(entry)
            except Exception:  # a listener failing must not fail the step the entry records
                logger.exception("audit listener failed on %s", event)
        return entry

    def entries(self, last: int | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(raw))
            except (ValueError, RecursionError):  # a line torn by a kill, or nested past the parser's depth
                continue
        return rows[-last:] if last else rows
