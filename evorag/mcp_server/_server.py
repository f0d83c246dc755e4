"""The MCP server: evorag's service layer as MCP tools and resources, nothing more.

The tools are declared in the ``_tools_*`` modules (listed in _tools.py); each validates its arguments (JSON schema
from the signature), calls the service and formats the result, and an ``EvoragError`` becomes a tool error with the
same one-line message. Deployed (evolved) tools are served as MCP tools too (_dynamic_tools.py), follow the deployed
tool set live (also when another process deploys or rolls back), and every session that has seen the tool list gets
``notifications/tools/list_changed``.

Every call acts for a principal (the bearer token's over HTTP, the server's local one over stdio) and needs the
role its tool's operation has (evorag.principals.OPERATIONS); a deployed tool needs the operator role to call. A
refused call is a tool error naming the role needed and the role held. Every call counts against its principal's
API calls per minute (evorag.service._quotas); past it, a tool error saying when the next call is possible.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult
from pydantic import ValidationError

from evorag.about import evorag_version
from evorag.mcp_server._auth import principal_of
from evorag.mcp_server._dynamic_tools import DeployedTools
from evorag.mcp_server._limits import API_CALLS_COUNTED
from evorag.mcp_server._resources import register_resources
from evorag.mcp_server._sessions import Sessions
from evorag.mcp_server._tools import TOOL_OPERATIONS, register_tools, tool_role
from evorag.observability import ServerMetrics, ToolTimer, UsageCollector
from evorag.principals import Principal, Role, acting_as, os_user
from evorag.service import FINISHED, CrawlJob, Evorag
from evorag.tools.rate_limit import RateLimitedError
from evorag.tools.result_budget import SeenResults

logger = logging.getLogger("evorag.mcp")

INSTRUCTIONS = """evorag answers questions about indexed documentation with numbered citations and a correctness
report. Start with get_available_sources; index new docs with crawl_and_index_documentation
(a background job: poll get_job_status). talk_to_team holds a conversation with the agent team. Tools deployed by
self-evolution appear as extra tools."""


def _invalid_arguments(tool: str, error: ValidationError) -> str:
    """One line per bad argument, without echoing the values (they may hold a token)."""
    problems = [
        f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors()[:5]
    ]
    return f"invalid arguments for {tool}: " + "; ".join(problems)


def _as_call_result(result: Any) -> Any:
    """FastMCP's (content, structured) pair as a finished ``CallToolResult``.

    FastMCP has already validated the structured part with the tool's pydantic output model. Handed
    back as a pair, the low-level server validates it again with ``jsonschema.validate``, which also
    re-checks the schema against its metaschema on every call: over half of the server's event-loop
    time under load (py-spy, bench/bench_load.py). A ``CallToolResult`` is passed through as it is.
    """
    if isinstance(result, tuple) and len(result) == 2:
        content, structured = result
        return CallToolResult(content=list(content), structuredContent=structured, isError=False)
    return result


class EvoragMCP(FastMCP):
    """FastMCP bound to one ``Evorag`` service. Use ``build_server``."""

    def __init__(self, service: Evorag, principal: Principal | None = None) -> None:
        super().__init__(
            name="evorag",
            instructions=INSTRUCTIONS,
            log_level="WARNING",
            # Host/Origin checks are set by run_http for the address it binds; none apply to stdio.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._mcp_server.version = evorag_version()  # serverInfo.version: evorag's, not the MCP library's
        self.service = service
        # Who acts when a request carries no authenticated principal (stdio, in-memory sessions).
        self.local_principal = principal or Principal(
            os_user(), Role.parse(service.settings.mcp_local_role), via="mcp")
        self.metrics = ServerMetrics(UsageCollector(service.quotas.cost_totals, service.quotas.rejections))
        self._job_watchers: set[asyncio.Task] = set()
        self._sessions = Sessions()
        self._advertise_tool_list_changes()
        register_tools(self)
        register_resources(self, service)
        self.deployed = DeployedTools(service, principal=self.local_principal, reserved=TOOL_OPERATIONS,
                                      on_change=self._sessions.notify_tools_changed)
        self.deployed.start()

    def _lowlevel(self) -> Server:
        """FastMCP's low-level server. FastMCP keeps it private and offers no public way to advertise
        tools.listChanged or to serve a stream pair we opened ourselves (stdio with a claimed stdout): this is the
        one place that reaches it (tests/test_mcp_server.py checks both uses against the installed SDK)."""
        return self._mcp_server

    # Capabilities: FastMCP advertises tools.listChanged=false; this server does send the notification.
    def _advertise_tool_list_changes(self) -> None:
        lowlevel = self._lowlevel()
        original = lowlevel.create_initialization_options

        def create_initialization_options(notification_options=None, experimental_capabilities=None):
            return original(
                notification_options or NotificationOptions(tools_changed=True), experimental_capabilities
            )

        lowlevel.create_initialization_options = create_initialization_options

    # Requests: every tool listing or call records its session; deployed tools are served next to the core ones.
    async def list_tools(self):
        """The tools the current principal may call: a reader's client (or the model driving it) is not shown
        approve, rollback or crawl, so it is not invited to try them. Calls are still checked (authorize)."""
        self._track_session()
        role = self.principal().role
        core = [tool for tool in await super().list_tools()
                if tool.name not in TOOL_OPERATIONS or role >= tool_role(tool.name, generated=False)]
        deployed = self.deployed.listed() if role >= tool_role("", generated=True) else []
        return [*core, *deployed]

    async def call_tool(self, name: str, arguments: dict[str, Any]):
        self._track_session()
        deployed = self.deployed.get(name)
        known = deployed is not None or name in TOOL_OPERATIONS
        # Unknown names share one label: clients must not be able to grow the metric series.
        timer = ToolTimer(self.metrics, logger, name if known else "unknown")
        try:
            principal = self.authorize(name)
            self._count_api_call(principal)
            with acting_as(principal):
                if deployed is not None:
                    result = await deployed.run(arguments, context=self.get_context())
                else:
                    result = await super().call_tool(name, arguments)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                timer.done(exc.__cause__)
                raise ToolError(_invalid_arguments(name, exc.__cause__)) from None
            timer.done(exc)
            raise
        except BaseException as exc:
            timer.done(exc)
            raise
        timer.done()
        return _as_call_result(result)

    def _request_context(self):
        try:
            return self.get_context().request_context
        except ValueError:  # outside a request
            return None

    def principal(self) -> Principal:
        """Who the current request acts for: the HTTP guard's principal, else the server's local one."""
        context = self._request_context()
        scope = getattr(getattr(context, "request", None), "scope", None)
        return (principal_of(scope) if isinstance(scope, dict) else None) or self.local_principal

    def authorize(self, name: str) -> Principal:
        """The current principal, if its role allows calling tool ``name``; else a ToolError naming both roles.
        Unknown tools pass through: FastMCP reports them."""
        principal = self.principal()
        generated = name in self.deployed
        if not generated and name not in TOOL_OPERATIONS:
            return principal
        needed = tool_role(name, generated=generated)
        if principal.role < needed:
            logger.warning("refused %s for %s (%s role, %s needed)", name, principal.name, principal.role, needed)
            raise ToolError(f"{name} needs the {needed} role; {principal.name} has the {principal.role} role "
                            "(an admin grants roles with `evorag users add NAME --role ROLE`)")
        return principal

    def _count_api_call(self, principal: Principal) -> None:
        """Count the call against the principal's API calls per minute, unless the HTTP guard already did (it
        answers 429 there); past the limit, a tool error saying when the next call is possible."""
        context = self._request_context()
        scope = getattr(getattr(context, "request", None), "scope", None)
        if isinstance(scope, dict) and scope.get(API_CALLS_COUNTED):
            return
        try:
            self.service.api_call(principal)
        except RateLimitedError as exc:
            raise ToolError(str(exc)) from None

    def _track_session(self) -> None:
        context = self._request_context()
        if context is None:
            return
        self._sessions.remember(context.session)
        self.deployed.watch_on(asyncio.get_running_loop())

    def seen_results(self) -> SeenResults:
        """The search and answer results the current session was sent (outside a session: a fresh, empty set)."""
        context = self._request_context()
        capacity = self.service.settings.mcp_seen_results
        return SeenResults(capacity) if context is None else self._sessions.seen(context.session, capacity)

    # Crawl jobs in the server's metrics
    def count_crawl_job(self, job: CrawlJob) -> None:
        """Count a started job now and its final status when it finishes (in a small watcher task)."""
        self.metrics.crawl_jobs_started.inc()
        task = asyncio.get_running_loop().create_task(self._count_when_finished(job.id))
        self._job_watchers.add(task)
        task.add_done_callback(self._job_watchers.discard)

    async def _count_when_finished(self, job_id: str) -> None:
        job = await self.service.wait_crawl_job(job_id, 3600.0, principal=self.local_principal)
        while job.status not in FINISHED:
            job = await self.service.wait_crawl_job(job_id, 3600.0, principal=self.local_principal)
        self.metrics.crawl_jobs_finished.labels(status=job.status).inc()

    async def aclose(self) -> None:
        """Stop background work: the service's crawl jobs, the deployed tools' watcher and subscription."""
        self.deployed.close()
        await self.service.acancel_crawl_jobs()
        if self._job_watchers:  # the cancelled jobs are counted before their watchers stop
            _, late = await asyncio.wait(set(self._job_watchers), timeout=1.0)
            for task in late:
                task.cancel()

    async def serve_stdio(self, stdout=None) -> None:
        """Serve one client over stdin and ``stdout`` (an anyio text file; default: sys.stdout)."""
        lowlevel = self._lowlevel()
        try:
            async with stdio_server(stdout=stdout) as (read_stream, write_stream):
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        finally:
            await self.aclose()


def build_server(service: Evorag, *, principal: Principal | None = None) -> EvoragMCP:
    """The MCP server for ``service`` (an ``Evorag``). Deployed tools are registered from the start.

    ``principal`` acts for requests that carry none (stdio, in-memory sessions); default: the local OS user
    with EVORAG_MCP_LOCAL_ROLE (operator). HTTP requests act for their bearer token's principal.
    """
    return EvoragMCP(service, principal)
