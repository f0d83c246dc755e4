"""HTTP guard in front of the MCP endpoint: Origin check, then bearer token -> principal.

* Origin: browsers send it; a page on another site must not drive the local server (DNS rebinding,
  CSRF). An absent Origin is a non-browser client and is accepted; a present one must match the
  allowed list, else 403.
* Bearer token: every request except the open paths needs ``Authorization: Bearer <token>``, else
  401. The token is mapped to its principal (``BearerAuthenticator``: constant-time comparison against
  stored SHA-256 hashes); the principal rides in the ASGI scope (``principal_of``) to the MCP tools,
  which check its role. The token is never logged or echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from evorag.principals import Principal, PrincipalStore, Role

OPEN_PATHS = frozenset({"/healthz", "/livez"})
PRINCIPAL_KEY = "evorag.principal"  # the ASGI scope key holding the request's Principal
LEGACY_ADMIN = "admin"


def principal_of(scope: Scope) -> Principal | None:
    """The principal the guard authenticated for this request (None outside the guard)."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


class BearerAuthenticator:
    """Bearer token -> principal: a user of the principal store, or, while the store has no users, the
    single ``EVORAG_MCP_TOKEN`` as one admin named "admin" (the setup before users existed keeps working;
    adding the first user retires it, also in a running server)."""

    def __init__(self, store: PrincipalStore, legacy_token: str | None = None, *, via: str = "mcp-http") -> None:
        self._store = store
        self._legacy = legacy_token or None
        self._via = via

    def __call__(self, token: str) -> Principal | None:
        principal = self._store.authenticate_token(token, via=self._via)
        if principal is not None or self._legacy is None:
            return principal
        if tokens_match(token, self._legacy) and not self._store.has_users():
            return Principal(LEGACY_ADMIN, Role.ADMIN, via=self._via)
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for anything else, including 0.0.0.0."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OriginPolicy:
    """Allowed origins: exact ``scheme://host[:port]`` values, or ``scheme://host:*`` for any port."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._any_port: set[tuple[str, str]] = set()
        for entry in allowed:
            entry = entry.strip().rstrip("/").lower()
            if entry.endswith(":*"):
                parts = urlsplit(entry[:-2])
                self._any_port.add((parts.scheme, (parts.hostname or "").strip("[]")))
            elif entry:
                self._exact.add(entry)

    def allows(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self._exact:
            return True
        match = re.fullmatch(r"([a-z][a-z0-9+.-]*)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?", origin)
        if not match:
            return False  # "null", userinfo, paths: never an allowed browser origin
        scheme, host, port = match.groups()
        return port is not None and (scheme, host.strip("[]")) in self._any_port


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison on bytes (``compare_digest`` refuses non-ASCII str)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


class GuardMiddleware:
    """ASGI middleware applying the Origin policy, then bearer authentication (``authenticate`` maps a
    token to a principal). Without ``authenticate`` (--insecure-no-auth, loopback only) every request
    acts as ``anonymous``."""

    def __init__(self, app: ASGIApp, *, authenticate: Callable[[str], Principal | None] | None,
                 allowed_origins: Iterable[str], anonymous: Principal | None = None) -> None:
        self.app = app
        self._authenticate = authenticate
        self._anonymous = anonymous
        self._origins = OriginPolicy(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no WebSocket endpoint here: refuse before anything reads it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])
        }
        origin = headers.get("origin")
        if origin is not None and not self._origins.allows(origin):
            await _reply(
                send, 403, "forbidden", "this Origin is not allowed (see EVORAG_MCP_ALLOWED_ORIGINS)"
            )
            return
        principal = self._anonymous if self._authenticate is None else self._principal(headers.get("authorization", ""))
        if principal is None:
            await _reply(
                send,
                401,
                "unauthorized",
                "send 'Authorization: Bearer <token>' (a token from `evorag users add`, or EVORAG_MCP_TOKEN)",
                extra=[(b"www-authenticate", b'Bearer realm="evorag"')],
            )
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)

    def _principal(self, header: str) -> Principal | None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip() or self._authenticate is None:
            return None
        return self._authenticate(credentials.strip())


async def _reply(send: Send, status: int, error: str, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
