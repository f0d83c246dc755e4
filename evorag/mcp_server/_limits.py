"""What one MCP HTTP client can make the server hold: request bodies, and open sessions.

* ``BodyGuard``: a POST body to the MCP endpoint is read up to ``max_bytes`` (413 past it), then must be
  UTF-8 JSON nested at most ``max_depth`` deep (400 otherwise), before the SDK sees it. The SDK parses
  with ``json.loads``, which turns undecodable bytes or 100,000 nested brackets into an exception, a 500
  and a traceback in the log.
* ``SessionLimiter``: each principal may hold ``max_sessions`` open streamable-HTTP sessions; a
  request that would open one more gets 429 with ``Retry-After``. Sessions end when the client deletes
  them or when the SDK closes them after ``session_idle_timeout`` (set from the same settings, see
  ``_transports.http_app``); both free their place.

* ``ApiCallGuard``: the tool calls in a POST body count against the principal's API calls per minute
  (evorag.service._quotas) before the SDK reads them; past the limit the request gets 429 with
  ``Retry-After`` and none of it runs. The request is marked (``API_CALLS_COUNTED``) so the server does not
  count its calls again.

Refusals are JSON bodies and one log line each, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evorag.bounded_json import JSONLimitError, loads_bounded
from evorag.tools.rate_limit import RateLimitedError

logger = logging.getLogger("evorag.mcp")

SESSION_HEADER = "mcp-session-id"
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
RATE_LIMITED = -32000  # JSON-RPC's range for server-defined errors
API_CALLS_COUNTED = "evorag.api_calls_counted"  # ASGI scope key: this request's tool calls were counted


def session_owner(scope: Scope) -> str:
    """Whom an HTTP request's sessions count against: its principal (set by GuardMiddleware, which runs
    first; clients without a token share the "anonymous" one), else the SHA-256 of its bearer credential.
    This function is the one place that decides it.
    """
    from evorag.mcp_server._auth import principal_of

    principal = principal_of(scope)
    if principal is not None:
        return "principal:" + principal.name
    for key, value in scope.get("headers", []):
        if key.lower() == b"authorization":
            return "token:" + hashlib.sha256(value.strip()).hexdigest()[:16]
    return "anonymous"


class BodyGuard:
    """Refuses oversized, undecodable or too deeply nested JSON bodies on POST ``path``."""

    def __init__(self, app: ASGIApp, *, path: str, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.path = path.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or _path(scope) != self.path:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, INVALID_REQUEST, f"request body larger than {self.max_bytes} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, INVALID_REQUEST, f"request body larger than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            loads_bounded(body, max_bytes=self.max_bytes, max_depth=self.max_depth, what="the request body")
        except JSONLimitError as exc:
            await _refuse(send, 413 if exc.too_large else 400, PARSE_ERROR, str(exc))
            return
        await self.app(scope, _replay(body, receive), send)


class ApiCallGuard:
    """Counts the ``tools/call`` requests of a POST to ``path`` with ``count(principal, n)``, which raises
    RateLimitedError past the principal's limit; the request then gets 429 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, *, path: str, count: Callable) -> None:
        self.app = app
        self.path = path.rstrip("/") or "/"
        self._count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from evorag.mcp_server._auth import principal_of  # as in session_owner

        principal = principal_of(scope)
        if (scope["type"] != "http" or scope.get("method") != "POST" or _path(scope) != self.path
                or principal is None):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # BodyGuard, in front, has bounded it
        if body is None:  # the client went away
            return
        calls = _tool_calls(body)
        if calls:
            try:
                self._count(principal, calls)
            except RateLimitedError as exc:
                await _refuse(send, 429, RATE_LIMITED, exc.message,
                              extra=[(b"retry-after", str(exc.retry_after).encode())])
                return
            scope[API_CALLS_COUNTED] = True
        await self.app(scope, _replay(body, receive), send)


def _tool_calls(body: bytes) -> int:
    """How many ``tools/call`` requests a JSON-RPC body (one message or a batch) holds."""
    if b"tools/call" not in body:  # most requests: no parsing
        return 0
    try:
        message = json.loads(body)
    except ValueError:
        return 0  # the SDK answers it with a parse error; nothing runs
    messages = message if isinstance(message, list) else [message]
    return sum(1 for item in messages if isinstance(item, dict) and item.get("method") == "tools/call")


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class SessionLimiter:
    """Caps the open sessions of each ``session_owner`` at ``max_sessions``.

    ``live_sessions`` returns the ids of the sessions the SDK still holds (so sessions it closed for
    idleness free their place); when it returns None, a session counts as gone ``idle_seconds`` after
    its last request.
    """

    def __init__(self, app: ASGIApp, *, path: str, max_sessions: int, idle_seconds: float,
                 live_sessions: Callable[[], Collection[str] | None] = lambda: None) -> None:
        self.app = app
        self.path = path.rstrip("/") or "/"
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._live_sessions = live_sessions
        self._owners: dict[str, str] = {}  # session id -> owner
        self._last_seen: dict[str, float] = {}  # session id -> monotonic time of its last request
        self._opening: dict[str, int] = {}  # owner -> opening requests in flight (not answered yet)

    def open_sessions(self, owner: str) -> int:
        self._forget_ended()
        return sum(1 for value in self._owners.values() if value == owner) + self._opening.get(owner, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _path(scope) != self.path:
            await self.app(scope, receive, send)
            return
        session_id = _header(scope, SESSION_HEADER.encode())
        if session_id is not None:
            await self._existing(scope, receive, send, session_id)
            return
        owner = session_owner(scope)
        if self.open_sessions(owner) >= self.max_sessions:
            retry = max(1, min(60, math.ceil(self.idle_seconds)))
            await _refuse(send, 429, INVALID_REQUEST,
                          f"too many open sessions: at most {self.max_sessions} per client; close one (HTTP DELETE "
                          f"with its {SESSION_HEADER}) or wait for idle ones to expire",
                          extra=[(b"retry-after", str(retry).encode())])
            return
        self._opening[owner] = self._opening.get(owner, 0) + 1

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                new_id = _message_header(message, SESSION_HEADER.encode())
                if new_id:
                    self._owners[new_id] = owner
                    self._last_seen[new_id] = time.monotonic()
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self._opening[owner] -= 1
            if not self._opening[owner]:
                del self._opening[owner]

    async def _existing(self, scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
        if session_id in self._last_seen:
            self._last_seen[session_id] = time.monotonic()
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if session_id in self._last_seen:
            self._last_seen[session_id] = time.monotonic()
        if scope.get("method") == "DELETE" and status < 400:
            self._forget(session_id)

    def _forget_ended(self) -> None:
        live = self._live_sessions()
        if live is not None:
            ended = [sid for sid in self._owners if sid not in live]
        else:
            cutoff = time.monotonic() - self.idle_seconds
            ended = [sid for sid, seen in self._last_seen.items() if seen < cutoff]
        for session_id in ended:
            self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        self._owners.pop(session_id, None)
        self._last_seen.pop(session_id, None)


def sdk_live_sessions(server) -> Callable[[], Collection[str] | None]:
    """The session ids the MCP SDK's session manager holds right now (None if this SDK does not say).

    Reads the manager's private table: the SDK has no public accessor, and only it knows which sessions
    its idle timeout has closed.
    """
    def live() -> Collection[str] | None:
        manager = getattr(server, "_session_manager", None)
        table = getattr(manager, "_server_instances", None)
        return table.keys() if isinstance(table, dict) else None

    return live


def _path(scope: Scope) -> str:
    return scope.get("path", "").rstrip("/") or "/"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _message_header(message: Message, name: bytes) -> str | None:
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body over once, then defers to the real one."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, code: int, message: str, extra: list | None = None) -> None:
    """A JSON-RPC error (no request id: the request was not read as one) with the HTTP ``status``."""
    logger.warning("refused an MCP HTTP request (%d): %s", status, message)
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
