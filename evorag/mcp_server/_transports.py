"""Running the server: stdio (one client, stdout is the protocol) or streamable HTTP at ``/mcp``.

Over HTTP, ``/metrics`` (Prometheus text format) needs the same bearer token as ``/mcp``: it reveals
usage. ``/healthz`` is open.
"""

from __future__ import annotations

import io
import logging
import os
import sys

from evorag.errors import ConfigError
from evorag.mcp_server._auth import GuardMiddleware, is_loopback
from evorag.mcp_server._server import EvoragMCP, build_server
from evorag.observability import MetricsMiddleware, configure_logging

logger = logging.getLogger("evorag.mcp")

TOKEN_HINT = (
    "set EVORAG_MCP_TOKEN to a long random secret, e.g. "
    "`export EVORAG_MCP_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`"
)


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

    _configure_logging(service.settings)
    server = build_server(service)
    protocol_out = _claim_stdout()
    anyio.run(server.serve_stdio, anyio.wrap_file(protocol_out))


def http_app(server: EvoragMCP, *, token: str | None, allowed_origins: list[str], host: str):
    """The ASGI app: ``/mcp`` (streamable HTTP, stateful sessions) and ``/metrics`` behind the guard, open
    ``/healthz``; every response is counted in ``server.metrics``."""
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

    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @server.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    guarded = GuardMiddleware(server.streamable_http_app(), token=token, allowed_origins=allowed_origins)
    return MetricsMiddleware(guarded, server.metrics)


def resolve_http_auth(service, host: str, insecure_no_auth: bool) -> str | None:
    """The bearer token to require, or None when running without auth is allowed (loopback only)."""
    settings = service.settings
    if insecure_no_auth:
        if not is_loopback(host):
            raise ConfigError(
                f"--insecure-no-auth is refused on {host}: only a loopback address may run without a token",
                hint=f"bind to 127.0.0.1, or {TOKEN_HINT}",
            )
        return None
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if not token.strip():
        raise ConfigError(
            "the MCP HTTP server needs a bearer token and EVORAG_MCP_TOKEN is not set",
            hint=f"{TOKEN_HINT}; for a local test only, pass --insecure-no-auth",
        )
    return token


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
    token = resolve_http_auth(service, host, insecure_no_auth)
    _configure_logging(settings)  # before build_server: FastMCP installs its own handler on a bare root
    server = build_server(service)
    app = http_app(server, token=token, allowed_origins=settings.mcp_allowed_origins, host=host)
    if token is None:
        logger.warning("serving MCP over HTTP WITHOUT authentication (loopback only)")
    elif not is_loopback(host):
        logger.warning("serving MCP on %s over plain HTTP: put TLS in front of it", host)
    logger.info("evorag MCP server: http://%s:%s/mcp (health: /healthz, metrics: /metrics)", host, port)
    # log_config=None: uvicorn's own records go through our handler (JSON lines when configured).
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", log_config=None
    )
