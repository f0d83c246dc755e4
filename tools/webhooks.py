"""Webhooks: signed JSON notifications of evorag's events to URLs an admin registered.

* Events are an allowlist (``EVENTS``); a hook receives the events it subscribed to.
* Every delivery is a POST of ``{"id", "event", "created_at", "data"}`` with the headers ``X-Evorag-Webhook``
  (the hook's id), ``X-Evorag-Delivery`` (the delivery's id, the same on every retry), ``X-Evorag-Event``,
  ``X-Evorag-Timestamp`` (Unix seconds) and ``X-Evorag-Signature: sha256=HEX``, the HMAC-SHA256 under the hook's
  secret of ``timestamp + "." + body``. A receiver checks the signature (``verify_signature``), refuses an old
  timestamp and a delivery id it has seen: a captured request cannot be replayed or altered.
* The secret is 32 random bytes, shown once when the hook is added. It is kept in the home's webhook database
  (mode 0600) because signing needs it; it is never logged, listed or put in a delivery's log.
* Delivery: up to ``max_attempts`` tries, waiting ``backoff * 2**n`` seconds plus up to as much again at random
  (jitter: receivers that failed together are not retried together). 2xx is success; redirects are not
  followed (a redirect could lead past the URL guard). Every try goes to the delivery log.
* A hook whose ``disable_after`` deliveries in a row failed (after their retries) is disabled; it stays disabled
  until an admin enables it again.
* The URL guard applies when a hook is added and again at connection time (the address connected to is the one
  checked, so DNS rebinding does not get past it): private, loopback and link-local addresses only for a hook
  added with ``allow_private``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx
from evorag.tools.sqlite_tx import immediate_transaction
from evorag.tools.url_guard import check_address, check_url, parse_ip_host
from evorag.tools.webhook_events import EVENTS

from evorag.errors import InternalError, NotFoundError, UserError

SIGNATURE_HEADER = "X-Evorag-Signature"
TIMESTAMP_HEADER = "X-Evorag-Timestamp"
MAX_HOOKS = 100
_USER_AGENT = "evorag-webhooks/1"


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of ``timestamp.body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0,
                     now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within ``tolerance`` seconds."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def parse_events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        raise UserError(f"unknown webhook event(s): {', '.join(unknown)}" if unknown else "no webhook event given",
                        hint=f"choose from {', '.join(EVENTS)}")
    return chosen


@dataclass(slots=True)
class Webhook:
    """A registered hook, without its secret."""

    id: str
    url: str
    events: list[str]
    enabled: bool
    allow_private: bool
    failures: int  # deliveries in a row that failed
    created_at: float
    disabled_reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class DeliveryAttempt:
    id: int
    hook_id: str
    delivery_id: str
    event: str
    attempt: int
    at: float
    ok: bool
    status: int | None
    error: str | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself and refuses an address the URL guard refuses, then connects to that address."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if parse_ip_host(host) is not None:
            addresses = [host]
        else:
            try:
                answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                raise httpcore.ConnectError(f"host not found: {host}") from None
            addresses = list(dict.fromkeys(str(info[4][0]) for info in answers))
        for address in addresses:
            check_address(host, address, allow_private=False)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"could not connect to {host}")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _client(allow_private: bool, timeout: float) -> httpx.Client:
    transport = httpx.HTTPTransport(retries=0)
    if not allow_private:
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise InternalError("this httpx/httpcore version does not allow a guarded network backend")
        pool._network_backend = _GuardedBackend()
    return httpx.Client(transport=transport, follow_redirects=False, timeout=timeout, trust_env=False,
                        headers={"User-Agent": _USER_AGENT})


class WebhookStore:
    """Hooks and the delivery log of one home (SQLite, WAL; the file is readable by its owner only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.touch(mode=0o600)
        os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS hooks (id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, "
            "secret TEXT NOT NULL, enabled INTEGER NOT NULL, allow_private INTEGER NOT NULL, "
            "failures INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, disabled_reason TEXT);"
            "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, hook_id TEXT NOT NULL, "
            "delivery_id TEXT NOT NULL, event TEXT NOT NULL, attempt INTEGER NOT NULL, at REAL NOT NULL, "
            "ok INTEGER NOT NULL, status INTEGER, error TEXT, seconds REAL NOT NULL);"
            "CREATE INDEX IF NOT EXISTS deliveries_by_hook ON deliveries (hook_id, id);"
            "CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._db) as db:
            yield db

    @staticmethod
    def _hook(row: tuple) -> Webhook:
        return Webhook(id=row[0], url=row[1], events=json.loads(row[2]), enabled=bool(row[3]),
                       allow_private=bool(row[4]), failures=row[5], created_at=row[6], disabled_reason=row[7])

    _COLUMNS = "id, url, events, enabled, allow_private, failures, created_at, disabled_reason"

    def add(self, url: str, events: Iterable[str], *, allow_private: bool = False) -> tuple[Webhook, str]:
        """Register a hook; returns it and its secret (the only time the secret is handed out)."""
        chosen = parse_events(events)
        normalized = check_url(url, allow_private=allow_private)
        hook_id, secret = "wh_" + secrets.token_hex(6), "whsec_" + secrets.token_urlsafe(32)
        with self._tx() as db:
            if db.execute("SELECT COUNT(*) FROM hooks").fetchone()[0] >= MAX_HOOKS:
                raise UserError(f"at most {MAX_HOOKS} webhooks", hint="remove one with `evorag webhooks remove ID`")
            db.execute("INSERT INTO hooks (id, url, events, secret, enabled, allow_private, failures, created_at) "
                       "VALUES (?,?,?,?,1,?,0,?)", (hook_id, normalized, json.dumps(chosen), secret,
                                                   int(allow_private), time.time()))
        return self.get(hook_id), secret

    def get(self, hook_id: str) -> Webhook:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM hooks WHERE id=?", (hook_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no webhook {hook_id!r}", hint="`evorag webhooks list` shows them")
        return self._hook(row)

    def hooks(self, event: str | None = None, *, enabled_only: bool = False) -> list[Webhook]:
        with self._lock:
            rows = self._db.execute(f"SELECT {self._COLUMNS} FROM hooks ORDER BY created_at").fetchall()
        found = [self._hook(row) for row in rows]
        return [h for h in found if (event is None or event in h.events) and (h.enabled or not enabled_only)]

    def secret(self, hook_id: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT secret FROM hooks WHERE id=?", (hook_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no webhook {hook_id!r}")
        return row[0]

    def enable(self, hook_id: str) -> Webhook:
        self.get(hook_id)
        with self._tx() as db:
            db.execute("UPDATE hooks SET enabled=1, failures=0, disabled_reason=NULL WHERE id=?", (hook_id,))
        return self.get(hook_id)

    def remove(self, hook_id: str) -> None:
        self.get(hook_id)
        with self._tx() as db:
            db.execute("DELETE FROM hooks WHERE id=?", (hook_id,))

    def cursor(self, name: str) -> int:
        """Where the cursor ``name`` stands (0 before its first move)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE name=?", (name,)).fetchone()
        return row[0] if row else 0

    def advance_cursor(self, name: str, value: int) -> int:
        """Move the cursor ``name`` (e.g. the newest answer whose anomalies were sent) to ``value`` if that is
        further; returns where it stood before. One transaction: two processes never both claim a stretch."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM cursors WHERE name=?", (name,)).fetchone()
            before = row[0] if row else 0
            if value > before:
                db.execute("INSERT OR REPLACE INTO cursors (name, value) VALUES (?, ?)", (name, value))
        return before

    def log_attempt(self, hook_id: str, delivery_id: str, event: str, attempt: int, *, ok: bool,
                    status: int | None, error: str | None, seconds: float) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO deliveries (hook_id, delivery_id, event, attempt, at, ok, status, error, seconds) "
                       "VALUES (?,?,?,?,?,?,?,?,?)", (hook_id, delivery_id, event, attempt, time.time(), int(ok),
                                                     status, error, round(seconds, 4)))

    def finish_delivery(self, hook_id: str, *, ok: bool, disable_after: int) -> Webhook | None:
        """Count a delivery's outcome; the hook is disabled once ``disable_after`` failed in a row."""
        with self._tx() as db:
            if ok:
                db.execute("UPDATE hooks SET failures=0 WHERE id=?", (hook_id,))
            else:
                db.execute("UPDATE hooks SET failures=failures+1 WHERE id=?", (hook_id,))
                db.execute("UPDATE hooks SET enabled=0, disabled_reason=? WHERE id=? AND enabled=1 AND failures>=?",
                           (f"{disable_after} deliveries in a row failed", hook_id, disable_after))
        with contextlib.suppress(NotFoundError):
            return self.get(hook_id)
        return None  # removed meanwhile

    def log(self, *, hook_id: str | None = None, last: int = 50) -> list[DeliveryAttempt]:
        where, params = ("WHERE hook_id=?", [hook_id]) if hook_id else ("", [])
        with self._lock:
            rows = self._db.execute(f"SELECT id, hook_id, delivery_id, event, attempt, at, ok, status, error, seconds "
                                    f"FROM deliveries {where} ORDER BY id DESC LIMIT ?", [*params, last]).fetchall()
        return [DeliveryAttempt(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9])
                for r in reversed(rows)]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time, plus up to as much at random
    timeout: float = 10.0
    disable_after: int = 5


class WebhookNotifier:
    """Sends events to the hooks subscribed to them, off the caller's thread (a slow or failing receiver never
    holds up the work that raised the event). ``flush`` waits for the deliveries under way."""

    def __init__(self, store: WebhookStore, policy: DeliveryPolicy | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.store = store
        self.policy = policy or DeliveryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="evorag-webhooks")
        self._pending: set[Future] = set()
        self._lock = threading.Lock()

    def emit(self, event: str, data: Mapping[str, Any]) -> int:
        """Queue ``event`` for every enabled hook subscribed to it; returns how many. Never raises for a
        receiver's failure (the delivery log has it)."""
        if event not in EVENTS:
            raise InternalError(f"unknown webhook event {event!r}")
        hooks = self.store.hooks(event, enabled_only=True)
        body = {"event": event, "created_at": time.time(), "data": dict(data)}
        for hook in hooks:
            future = self._pool.submit(self.deliver, hook, body)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)
        return len(hooks)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the deliveries under way are finished; False if some are still running at ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.02)
        return False

    def deliver(self, hook: Webhook, body: Mapping[str, Any]) -> bool:
        """One delivery with its retries (blocking); True when the receiver accepted it."""
        policy = self.policy
        delivery_id = secrets.token_hex(8)
        payload = json.dumps({"id": delivery_id, **body}, default=str, separators=(",", ":")).encode()
        try:
            secret = self.store.secret(hook.id)
        except NotFoundError:
            return False  # removed since the event was raised
        ok = False
        with _client(hook.allow_private, policy.timeout) as client:
            for attempt in range(1, policy.max_attempts + 1):
                timestamp = str(int(time.time()))
                headers = {"Content-Type": "application/json", "X-Evorag-Webhook": hook.id,
                           "X-Evorag-Delivery": delivery_id, "X-Evorag-Event": str(body["event"]),
                           TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, payload)}
                started = time.perf_counter()
                status, error, refused = None, None, False
                try:
                    response = client.post(hook.url, content=payload, headers=headers)
                    status = response.status_code
                    ok = 200 <= status < 300
                    if not ok:
                        error = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {str(exc)[:200]}"
                except UserError as exc:  # the URL guard refused the address connected to
                    error, refused = exc.message[:200], True
                self.store.log_attempt(hook.id, delivery_id, str(body["event"]), attempt, ok=ok, status=status,
                                       error=error, seconds=time.perf_counter() - started)
                if ok or refused:  # a refused address stays refused: no retry
                    break
                if attempt < policy.max_attempts:
                    wait = policy.backoff * 2 ** (attempt - 1)
                    self._sleep(wait + self._rng.uniform(0, wait))
        self.store.finish_delivery(hook.id, ok=ok, disable_after=policy.disable_after)
        return ok

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()
