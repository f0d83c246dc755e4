"""Servers: MCP (stdio or HTTP), the chat UI, and AutoGen's agent runtime host and workers."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from evorag.cli._app import app, err, service
from evorag.service import Evorag
from evorag.settings import load_settings
from evorag.ui import run_ui


@app.command("mcp")
def mcp_serve(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default: EVORAG_MCP_HOST, 127.0.0.1).")]
    = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="HTTP port (default: EVORAG_MCP_PORT, 8848).")]
    = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Serve HTTP without a bearer token (loopback only).")
    ] = False,
) -> None:
    """Serve evorag to MCP clients: stdio by default (stdout is the protocol, logs go to stderr).

    Over HTTP each bearer token is a principal (`evorag users add`; with no users, EVORAG_MCP_TOKEN is one
    admin). Over stdio the client, started by an assistant a model drives, acts with EVORAG_MCP_LOCAL_ROLE
    (default operator), never as proof of a person."""
    # The MCP SDK (with starlette) takes ~0.3 s to import: only this command needs it.
    from evorag.mcp_server import run_http, run_stdio

    with service() as rag:
        if http:
            # A long-running server: the scheduler and the request queue's workers run beside it.
            with rag.serve_in_background():
                run_http(rag, host=host, port=port, insecure_no_auth=insecure_no_auth)
        else:
            run_stdio(rag)


@app.command("ui")
def ui_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: EVORAG_UI_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: EVORAG_UI_PORT, 8000).")]
    = None,
) -> None:
    """Serve the chat UI (Chainlit): users log in with the password of `evorag users add NAME --role ROLE
    --password`, or as the admin EVORAG_UI_USER / EVORAG_UI_PASSWORD."""
    run_ui(load_settings(), host=host, port=port)


@app.command("agents-host")
def agents_host(
    host: Annotated[str, typer.Option(help="Bind address; a non-loopback one needs --insecure-remote.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port, printed).")] = 50051,
    insecure_remote: Annotated[
        bool, typer.Option("--insecure-remote", help="Allow a non-loopback address: the gRPC is unauthenticated "
                           "and unencrypted, use only on a private network or behind a tunnel.")
    ] = False,
) -> None:
    """Serve AutoGen's gRPC agent runtime host; point EVORAG_AGENT_RUNTIME_HOST at it to run teams through it."""
    def ready(address: str) -> None:
        err.print(f"agent runtime host listening on {address} (Ctrl-C stops it)", highlight=False, markup=False)

    Evorag.serve_agent_host(host, port, insecure_remote=insecure_remote, on_ready=ready)


@app.command("agents-worker")
def agents_worker(
    names: Annotated[list[str], typer.Argument(
        help="Conversation-team agents to serve: orchestrator, dependency_validator, code_debugger, "
        "integration_tester.")],
) -> None:
    """Serve conversation-team agents to the teams of EVORAG_AGENT_RUNTIME_HOST, with this machine's model and tools."""
    def ready(address: str) -> None:
        err.print(f"serving {', '.join(names)} through {address} (Ctrl-C stops it)", highlight=False, markup=False)

    with service() as rag:
        asyncio.run(rag.aserve_agents(names, on_ready=ready))
