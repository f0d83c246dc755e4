"""Running the server: stdio (one client, stdout is the protocol) or streamable HTTP at ``/mcp``.

Over HTTP, ``/metrics`` (Prometheus text format) needs the same bearer token as ``/mcp``: it reveals
usage. ``/livez`` (the process answers) and ``/healthz`` (the store, the catalog and the model client work; 503
when one does not) are open.

Who the client acts as: over HTTP the principal of its bearer token (``evorag users``; with no users yet,
``EVORAG_MCP_TOKEN`` is one admin). Over stdio the client is whatever assistant started ``evorag mcp``, and
a model drives it: it acts as the local OS user with ``EVORAG_MCP_LOCAL_ROLE`` (default operator), like an
unauthenticated loopback HTTP client. Neither is ever proof of a person, so HIGH risk still needs the
approval token. Both servers first drop the approval token from their environment (evorag/approval_token.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys

from evorag.approval_token import withhold_from_process
from evorag.errors import ConfigError
from evorag.mcp_server._auth import BearerAuthenticator, GuardMiddleware, is_loopback, principal_of
from evorag.mcp_server._limits import ApiCallGuard, BodyGuard, SessionLimiter, sdk_live_sessions
from evorag.mcp_server._server import EvoragMCP, build_server
from evorag.observability import MetricsMiddleware, configure_logging

logger = logging.getLogger("evorag.mcp")
HEALTH_TIMEOUT = 30.0  # seconds /healthz waits for its checks (the first one may load the embedding model)

TOKEN_HINT = (
    "add users with roles (`evorag users add NAME --role ROLE` prints their token), or set EVORAG_MCP_TOKEN to "
    "a long random secret for one admin, e.g. "
    "`export EVORAG_MCP_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`"
)


def local_principal(settings, via: str, name: str | None = None):
    """The principal of clients that do not authenticate (stdio, --insecure-no-auth): EVORAG_MCP_LOCAL_ROLE."""
    from evorag.principals import Principal, Role, os_user

    return Principal(name or os_user(), Role.parse(settings.mcp_local_role), via=via)


def _claim_stdout() -> io.TextIOWrapper:
    """Keep the real stdout for the protocol and point file descriptor 1 at stderr.

    Libraries that print (progress bars, crawler logs) would corrupt the JSON-RPC stream; after this
    their output lands on stderr, and only the returned stream reaches the client.
    """
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return io.TextIOWrapper(protocol, encoding="utf-8", newline="\n")


def _configure_logging(settings) -> None:
    """Logs as the settings say (EVORAG_LOG_JSON, EVORAG_LOG_LEVEL), with the known secrets masked."""
    secrets = [s.get_secret_value() for s in (settings.mcp_token, settings.approval_token) if s is not None]
    configure_logging(json=settings.log_json, level=settings.log_level, secrets=secrets)


def run_stdio(service) -> None:
    """Serve one MCP client over stdin/stdout until it disconnects."""
    import anyio

    withhold_from_process()
    _configure_logging(service.settings)
    server = build_server(service, principal=local_principal(service.settings, "mcp-stdio"))
    protocol_out = _claim_stdout()
    anyio.run(server.serve_stdio, anyio.wrap_file(protocol_out))


def http_app(server: EvoragMCP, *, authenticate, allowed_origins: list[str], host: str, anonymous=None):
    """The ASGI app: ``/mcp`` (streamable HTTP, stateful sessions) and ``/metrics`` behind the guard, open
    ``/livez`` and ``/healthz``; every response is counted in ``server.metrics``. ``authenticate`` maps a bearer token to
    a principal; None serves without authentication, every request acting as ``anonymous``."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    if is_loopback(host):
        # DNS rebinding: a loopback server only answers to loopback host names.
        server.settings.transport_security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=list(allowed_origins),
        )

    @server.custom_route("/livez", methods=["GET"], include_in_schema=False)
    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})  # the process answers: nothing else is checked

    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        # The store, the catalog and the model client (off the loop: the first check may load the embedder).
        try:
            health = await asyncio.wait_for(asyncio.to_thread(server.service.health), HEALTH_TIMEOUT)
        except TimeoutError:
            return JSONResponse({"status": "failing", "checks": [], "error": f"checks took over {HEALTH_TIMEOUT:g}s"},
                                status_code=503)
        return JSONResponse(health.to_dict(), status_code=200 if health.ok else 503)

    @server.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Tokens and cost per principal only for those who may see costs (operator role and up).
        principal = principal_of(request.scope)
        usage = principal is not None and principal.can("costs")
        body, content_type = await asyncio.to_thread(server.metrics.render, usage=usage)  # reads the cost ledger
        return Response(body, media_type=content_type)

    guarded = GuardMiddleware(_limited(server), authenticate=authenticate, allowed_origins=allowed_origins,
                              anonymous=anonymous)
    return MetricsMiddleware(guarded, server.metrics)


def _limited(server: EvoragMCP):
    """The SDK's streamable HTTP app behind the body checks, the API call limit and the per-client session cap
    (see _limits)."""
    settings = server.service.settings
    if hasattr(server.settings, "session_idle_timeout"):  # the SDK closes idle sessions itself
        server.settings.session_idle_timeout = settings.mcp_session_idle_seconds
    if hasattr(server.settings, "max_request_body_size"):
        server.settings.max_request_body_size = settings.mcp_max_body_bytes
    path = server.settings.streamable_http_path
    sessions = SessionLimiter(server.streamable_http_app(), path=path, max_sessions=settings.mcp_max_sessions,
                              idle_seconds=settings.mcp_session_idle_seconds, live_sessions=sdk_live_sessions(server))
    # Tool calls count against their principal's API calls per minute (429 past it) before a session runs them.
    counted = ApiCallGuard(sessions, path=path, count=lambda principal, calls: server.service.api_call(
        principal, count=calls))
    return BodyGuard(counted, path=path, max_bytes=settings.mcp_max_body_bytes, max_depth=settings.mcp_max_json_depth)


def resolve_http_auth(service, host: str, insecure_no_auth: bool) -> BearerAuthenticator | None:
    """How bearer tokens become principals, or None when running without auth is allowed (loopback only).

    Raises ConfigError when no client could authenticate: no users and no EVORAG_MCP_TOKEN.
    """
    settings = service.settings
    if insecure_no_auth:
        if not is_loopback(host):
            raise ConfigError(
                f"--insecure-no-auth is refused on {host}: only a loopback address may run without a token",
                hint=f"bind to 127.0.0.1, or {TOKEN_HINT}",
            )
        return None
    token = (settings.mcp_token.get_secret_value() if settings.mcp_token else "").strip()
    store = service.principals
    if store.has_users():
        if token:
            logger.warning("EVORAG_MCP_TOKEN is ignored: users exist, each client uses its own token")
    elif not token:
        raise ConfigError(
            "the MCP HTTP server needs a bearer token: there are no users and EVORAG_MCP_TOKEN is not set",
            hint=f"{TOKEN_HINT}; for a local test only, pass --insecure-no-auth",
        )
    return BearerAuthenticator(store, token or None)


def run_http(
    service, *, host: str | None = None, port: int | None = None, insecure_no_auth: bool = False
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until interrupted.

    Raises ConfigError (exit 2) without a token, unless ``insecure_no_auth`` on a loopback address.
    """
    import uvicorn

    settings = service.settings
    host = host or settings.mcp_host
    port = settings.mcp_port if port is None else port
    authenticate = resolve_http_auth(service, host, insecure_no_auth)
    withhold_from_process()
    _configure_logging(settings)  # before build_server: FastMCP installs its own handler on a bare root
    anonymous = local_principal(settings, "mcp-http", name="anonymous")
    server = build_server(service, principal=anonymous)
    app = http_app(server, authenticate=authenticate, allowed_origins=settings.mcp_allowed_origins, host=host,
                   anonymous=anonymous)
    if authenticate is None:
        logger.warning("serving MCP over HTTP WITHOUT authentication (loopback only)")
    elif not is_loopback(host):
        logger.warning("serving MCP on %s over plain HTTP: put TLS in front of it", host)
    logger.info("evorag MCP server: http://%s:%s/mcp (health: /healthz, metrics: /metrics)", host, port)
    # log_config=None: uvicorn's own records go through our handler (JSON lines when configured).
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", log_config=None
    )
