"""The MCP server: evorag's service layer as MCP tools and resources, nothing more.

Every tool validates its arguments (JSON schema from the signature), calls the service, and turns an
``EvoragError`` into a tool error carrying the same one-line message. Deployed (evolved) tools are
registered as MCP tools too, follow the tool registry live (also when another process deploys or
rolls back), and every session that has seen the tool list gets ``notifications/tools/list_changed``.

Every call acts for a principal (the bearer token's over HTTP, the server's local one over stdio) and
needs the role ``TOOL_OPERATIONS`` gives its tool (evorag.principals.OPERATIONS); a deployed tool needs the
operator role to call. A refused call is a tool error naming the role needed and the role held.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.tools import Tool
from mcp.server.fastmcp.utilities.func_metadata import func_metadata
from mcp.server.lowlevel import NotificationOptions
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evorag.errors import EvoragError, UserError
from evorag.mcp_server._approvals import McpApprover, usable_token
from evorag.mcp_server._auth import principal_of
from evorag.observability import ServerMetrics, ToolTimer
from evorag.principals import OPERATIONS, Principal, Role, acting_as, os_user
from evorag.service import FINISHED, CrawlRequest
from evorag.team_events import event_summary

logger = logging.getLogger("evorag.mcp")

INSTRUCTIONS = """evorag answers questions about indexed documentation with numbered citations and a
correctness report. Start with get_available_sources; index new docs with crawl_and_index_documentation
(a background job: poll get_job_status). Tools deployed by self-evolution appear as extra tools."""
REGISTRY_POLL_S = 2.0
PROGRESS_INTERVAL_S = 0.25
# MCP tool -> the operation it performs; the operation's role (evorag.principals.OPERATIONS) is required.
# A deployed (evolved) tool is "call_tool". A core tool missing here cannot be registered (see _register_tools).
TOOL_OPERATIONS: dict[str, str] = {
    "perform_rag_query_with_metrics": "ask",
    "search_code_examples": "search",
    "get_available_sources": "list_sources",
    "get_job_status": "job_status",
    "list_versions": "list_versions",
    "get_metrics_report": "metrics",
    "list_pending_approvals": "list_approvals",
    "crawl_and_index_documentation": "crawl",
    "cancel_job": "cancel_job",
    "evolve_rag_capability": "evolve",
    "self_heal_system": "heal",
    "approve": "approve",
    "reject": "reject",
    "rollback": "rollback",
}
GENERATED_TOOL_OPERATION = "call_tool"


def tool_role(name: str, *, generated: bool) -> Role:
    """The role a call of tool ``name`` needs."""
    return OPERATIONS[GENERATED_TOOL_OPERATION if generated else TOOL_OPERATIONS[name]]


# Result shapes: the fields every client can rely on; services may add more (extra="allow").
class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class RagAnswer(_Result):
    answer: str
    citations: list[dict[str, Any]]
    sources_used: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    model: str
    fallback: bool = False
    note: str | None = None


class CodeExamples(_Result):
    results: list[dict[str, Any]]


class SourceInfo(_Result):
    name: str
    start_url: str | None
    pages: int
    chunks: int
    last_crawl_at: float | None

    @classmethod
    def of(cls, record) -> SourceInfo:
        return cls(
            name=record.name,
            start_url=record.start_url,
            pages=record.pages,
            chunks=record.chunks,
            last_crawl_at=record.last_crawl_at,
        )


class Sources(_Result):
    sources: list[SourceInfo]


class JobInfo(_Result):
    job_id: str
    status: str
    url: str
    source: str | None
    progress: dict[str, Any]
    report: dict[str, Any] | None = None
    error: str | None = None


class EvolutionResult(_Result):
    status: str
    gate: str | None = None
    reason: str | None = None
    risk: str | None = None
    tool: str | None = None
    version_id: str | None = None
    approval_id: str | None = None


class HealingResult(_Result):
    healed: bool


class Versions(_Result):
    versions: list[dict[str, Any]]


class RollbackResult(_Result):
    version: dict[str, Any]
    added: list[str]
    removed: list[str]


class MetricsReport(_Result):
    history: list[dict[str, Any]]
    trend: dict[str, Any]


class Approvals(_Result):
    approvals: list[dict[str, Any]]


class DecisionResult(_Result):
    approval_id: str
    status: str


# Argument types: constraints become the JSON schema clients see, and are checked before any call.
SourceName = Annotated[str, Field(min_length=1, max_length=64, description="An indexed source's name.")]
ApprovalId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Id from list_pending_approvals.")
]
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{12}$", description="Id from crawl_and_index_documentation.")]
Url = Annotated[str, Field(min_length=1, max_length=2048, description="An http(s) URL.")]
Globs = Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=50)]


def _boundary(fn: Callable) -> Callable:
    """Tool errors for the client: EvoragError keeps its message; anything else is logged as a bug."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except EvoragError as exc:
            raise ToolError(str(exc)) from exc
        except Exception as exc:
            logger.exception("tool %s failed", fn.__name__)
            raise ToolError(f"internal error ({type(exc).__name__}): {exc}") from exc

    return wrapper


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


def _public(data: dict) -> dict:
    """An approval request without its internal payload (staging paths, digests)."""
    return {key: value for key, value in data.items() if key != "payload"}


class _Sessions:
    """Sessions that have listed or called tools, with their event loop, to notify of tool changes."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sending: set[asyncio.Task] = set()

    def remember(self, session) -> None:
        self._loops[session] = asyncio.get_running_loop()

    def notify_tools_changed(self) -> None:
        """Thread-safe: schedules one notification per session on that session's loop."""
        for session, loop in list(self._loops.items()):
            try:
                loop.call_soon_threadsafe(self._spawn, session, loop)
            except RuntimeError:  # that loop is closed: the session is gone
                self._loops.pop(session, None)

    def _spawn(self, session, loop) -> None:
        task = loop.create_task(self._send(session))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, session) -> None:
        try:
            await session.send_tool_list_changed()
        except Exception:  # noqa: BLE001 - a closed session is simply forgotten
            self._loops.pop(session, None)


class _GeneratedTool(Tool):
    """An evolved tool: its manifest's JSON schema is the input schema; it runs in the sandbox."""

    async def run(self, arguments: dict[str, Any], context=None, convert_result: bool = False) -> Any:
        result = await self.fn(arguments)
        text = json.dumps(result, ensure_ascii=False, default=str)
        return [TextContent(type="text", text=text)], {"result": result}


def _placeholder():
    """Gives generated tools the FuncMetadata FastMCP requires; their arguments never go through it."""


class EvoragMCP(FastMCP):
    """FastMCP bound to one ``Evorag`` service. Use ``build_server``."""

    def __init__(self, service, principal: Principal | None = None) -> None:
        super().__init__(
            name="evorag",
            instructions=INSTRUCTIONS,
            log_level="WARNING",
            # Host/Origin checks are set by run_http for the address it binds; none apply to stdio.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.service = service
        # Who acts when a request carries no authenticated principal (stdio, in-memory sessions).
        self.local_principal = principal or Principal(
            os_user(), Role.parse(service.settings.mcp_local_role), via="mcp")
        self.metrics = ServerMetrics()
        self._job_watchers: set[asyncio.Task] = set()
        self._sessions = _Sessions()
        self._generated: dict[str, str] = {}  # tool name -> manifest version marker
        self._watcher: asyncio.Task | None = None
        self._registry_head: str | None = None
        self._sync_lock = threading.Lock()
        self._advertise_tool_list_changes()
        _register_tools(self)
        _register_resources(self)
        self._unsubscribe: Callable[[], None] | None = None
        self._registry_error: str | None = None
        registry = self._registry()
        if registry is not None:
            self._registry_head = self.service.tool_set_checkpoint()
            self._sync_generated_tools(registry)
            self._unsubscribe = registry.subscribe(self._on_registry_change)

    # Capabilities: FastMCP advertises tools.listChanged=false; this server does send the notification.
    def _advertise_tool_list_changes(self) -> None:
        lowlevel = self._mcp_server
        original = lowlevel.create_initialization_options

        def create_initialization_options(notification_options=None, experimental_capabilities=None):
            return original(
                notification_options or NotificationOptions(tools_changed=True), experimental_capabilities
            )

        lowlevel.create_initialization_options = create_initialization_options

    # Session tracking: every tool listing or call records its session.
    async def list_tools(self):
        self._track_session()
        return await super().list_tools()

    def principal(self) -> Principal:
        """Who the current request acts for: the HTTP guard's principal, else the server's local one."""
        try:
            request = self._mcp_server.request_context.request
        except LookupError:
            request = None
        scope = getattr(request, "scope", None)
        return (principal_of(scope) if isinstance(scope, dict) else None) or self.local_principal

    def authorize(self, name: str) -> Principal:
        """The current principal, if its role allows calling tool ``name``; else a ToolError naming both roles.
        Unknown tools pass through: FastMCP reports them."""
        principal = self.principal()
        if self._tool_manager.get_tool(name) is None:
            return principal
        needed = tool_role(name, generated=name in self._generated)
        if principal.role < needed:
            logger.warning("refused %s for %s (%s role, %s needed)", name, principal.name, principal.role, needed)
            raise ToolError(f"{name} needs the {needed} role; {principal.name} has the {principal.role} role "
                            "(an admin grants roles with `evorag users add NAME --role ROLE`)")
        return principal

    async def call_tool(self, name: str, arguments: dict[str, Any]):
        self._track_session()
        # Unknown names share one label: clients must not be able to grow the metric series.
        timer = ToolTimer(self.metrics, logger, name if self._tool_manager.get_tool(name) else "unknown")
        try:
            with acting_as(self.authorize(name)):
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

    def _track_session(self) -> None:
        try:
            session = self._mcp_server.request_context.session
        except LookupError:
            return
        self._sessions.remember(session)
        loop = asyncio.get_running_loop()
        watching = self._watcher is not None and not self._watcher.done() and self._watcher.get_loop() is loop
        if self._registry_error is None and not watching:
            self._watcher = loop.create_task(self._watch_registry(), name="evorag-registry")

    # Generated tools
    def _registry(self):
        if self._registry_error is not None:
            return None
        try:
            return self.service.registry
        except Exception as exc:  # noqa: BLE001 - the core tools still work without self-evolution
            self._registry_error = f"{type(exc).__name__}: {exc}"
            logger.warning("deployed tools are unavailable: %s", self._registry_error)
            return None

    def _on_registry_change(self, change) -> None:
        # Called inside the registry's refresh, right after a deploy or rollback: never raise into it.
        try:
            registry = self._registry()
            if registry is not None and self._sync_generated_tools(registry):
                self._sessions.notify_tools_changed()
        except Exception:
            logger.exception("could not update the MCP tools after a registry change")

    def _sync_generated_tools(self, registry) -> bool:
        """Make the MCP tool set match the registry; True if anything changed. Any thread."""
        with self._sync_lock:
            return self._sync_generated_tools_locked(registry)

    def _sync_generated_tools_locked(self, registry) -> bool:
        manifests = {m.name: m for m in registry.tools()}
        core = {name for name in self._tool_manager._tools if name not in self._generated}
        changed = False
        for name in [n for n in self._generated if n not in manifests]:
            self.remove_tool(name)
            del self._generated[name]
            changed = True
        for name, manifest in manifests.items():
            marker = f"{manifest.version}:{manifest.deployed_at}"
            if name in core:
                logger.warning("deployed tool %r is shadowed by a built-in tool of the same name", name)
                continue
            if self._generated.get(name) == marker:
                continue
            # The ToolManager has no public way to add a prebuilt Tool; its dict is the registry of record.
            self._tool_manager._tools[name] = self._generated_tool(manifest)
            self._generated[name] = marker
            changed = True
        return changed

    def _generated_tool(self, manifest) -> Tool:
        # The docstring and parameter descriptions are untrusted (a model or a submitter wrote them): clients
        # get them through the manifest's template, one quoted line each, instruction-like text withheld.
        schema = manifest.served_schema()
        service = self.service
        name = manifest.name

        async def call(arguments: dict[str, Any]) -> Any:
            try:  # acts for the caller (call_tool's acting_as), whose operator role was checked
                return await anyio.to_thread.run_sync(functools.partial(service.call_tool, name, arguments))
            except EvoragError as exc:
                raise ToolError(str(exc)) from exc

        return _GeneratedTool(
            fn=call,
            name=name,
            title=manifest.served_name().replace("_", " "),
            description=manifest.served_description(),
            parameters=schema,
            fn_metadata=func_metadata(_placeholder, structured_output=False),
            is_async=True,
            annotations=ToolAnnotations(openWorldHint=manifest.risk == "HIGH"),
        )

    async def _watch_registry(self) -> None:
        """Pick up deploys and rollbacks made by other processes (the CLI, the UI)."""
        registry = self._registry()
        if registry is None:
            return
        while True:
            await asyncio.sleep(REGISTRY_POLL_S)
            try:
                head = await anyio.to_thread.run_sync(self._checkpoint)
                if head != self._registry_head:
                    # Refreshing notifies our listener, which re-syncs the MCP tools and tells the sessions.
                    await anyio.to_thread.run_sync(registry.refresh)
                    self._registry_head = head
            except Exception as exc:  # noqa: BLE001 - keep watching; the next poll may succeed
                logger.warning("could not check the deployed tools: %s", exc)

    def _checkpoint(self) -> str:
        # Acts for the server itself: polling is not a client's call.
        return self.service.tool_set_checkpoint(principal=self.local_principal)

    def count_crawl_job(self, job) -> None:
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
        """Stop background work: the service's crawl jobs, the registry watcher, the registry subscription."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        await self.service.acancel_crawl_jobs()
        if self._job_watchers:  # the cancelled jobs are counted before their watchers stop
            _, late = await asyncio.wait(set(self._job_watchers), timeout=1.0)
            for task in late:
                task.cancel()

    async def serve_stdio(self, stdout=None) -> None:
        """Serve one client over stdin and ``stdout`` (an anyio text file; default: sys.stdout)."""
        from mcp.server.stdio import stdio_server

        try:
            async with stdio_server(stdout=stdout) as (read_stream, write_stream):
                await self._mcp_server.run(
                    read_stream, write_stream, self._mcp_server.create_initialization_options()
                )
        finally:
            await self.aclose()


def build_server(service, *, principal: Principal | None = None) -> EvoragMCP:
    """The MCP server for ``service`` (an ``Evorag``). Deployed tools are registered from the start.

    ``principal`` acts for requests that carry none (stdio, in-memory sessions); default: the local OS user
    with EVORAG_MCP_LOCAL_ROLE (operator). HTTP requests act for their bearer token's principal.
    """
    return EvoragMCP(service, principal)


def _register_tools(server: EvoragMCP) -> None:
    service = server.service
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @server.tool(annotations=read_only)
    @_boundary
    async def perform_rag_query_with_metrics(
        query: Annotated[str, Field(min_length=1, max_length=4000, description="The question to answer.")],
        source_filter: Annotated[SourceName | None, Field(description="Only search this source.")] = None,
        enable_evaluation: Annotated[
            bool,
            Field(
                description="Score the answer (grounding, ROUGE, nDCG, code, overall) and store the report."
            ),
        ] = True,
    ) -> RagAnswer:
        """Answer a question from the indexed documentation with numbered [n] citations and a correctness
        report; falls back to quoting the top sources when the language model is unavailable."""
        answer = await service.aask(query, source=source_filter, evaluate=enable_evaluation)
        return RagAnswer(**answer.to_dict())

    @server.tool(annotations=read_only)
    @_boundary
    async def search_code_examples(
        query: Annotated[str, Field(min_length=1, max_length=4000, description="What the code should do.")],
        source_filter: Annotated[SourceName | None, Field(description="Only search this source.")] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="Number of examples.")] = 5,
    ) -> CodeExamples:
        """Find code examples in the indexed documentation (hybrid dense + BM25 search over code blocks)."""
        hits = await anyio.to_thread.run_sync(
            functools.partial(service.search, query, source=source_filter, limit=limit, code=True)
        )
        return CodeExamples(results=[hit.to_dict() for hit in hits])

    @server.tool(annotations=read_only)
    @_boundary
    async def get_available_sources() -> Sources:
        """List the indexed documentation sources with their page and chunk counts and last crawl time."""
        records = await anyio.to_thread.run_sync(service.sources)
        return Sources(sources=[SourceInfo.of(record) for record in records])

    @server.tool(annotations=ToolAnnotations(openWorldHint=True))
    @_boundary
    async def crawl_and_index_documentation(
        url: Annotated[Url, Field(description="Start URL of the documentation site.")],
        ctx: Context,
        source: Annotated[
            SourceName | None, Field(description="Source name (default: from the host).")
        ] = None,
        max_pages: Annotated[
            int | None, Field(ge=1, le=100_000, description="Stop after this many pages (default: the server's "
                              "EVORAG_MAX_PAGES).")
        ] = None,
        max_depth: Annotated[
            int | None, Field(ge=0, le=50, description="Follow links this deep (default: the server's "
                              "EVORAG_MAX_DEPTH).")
        ] = None,
        include: Annotated[Globs, Field(description="Only URLs matching these globs.")] = [],  # noqa: B006
        exclude: Annotated[Globs, Field(description="Skip URLs matching these globs.")] = [],  # noqa: B006
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=60,
                description="Wait this long for the crawl to finish, streaming progress, before returning.",
            ),
        ] = 5.0,
    ) -> JobInfo:
        """Crawl a documentation site and index it as a background job; returns the job id at once or
        after ``wait_seconds``. Follow it with get_job_status; re-crawls only re-index what changed."""
        job = await service.start_crawl(CrawlRequest(url=url, source=source, max_pages=max_pages,
                                                     max_depth=max_depth, include=list(include),
                                                     exclude=list(exclude)))
        server.count_crawl_job(job)
        last_sent = 0.0

        async def report(job) -> None:
            nonlocal last_sent
            if time.monotonic() - last_sent < PROGRESS_INTERVAL_S and job.status not in FINISHED:
                return
            last_sent = time.monotonic()
            p = job.progress
            done = p.get("done", 0)
            await ctx.report_progress(
                done,
                # Pages found so far (capped at max_pages): the total grows as links are discovered.
                max(p.get("discovered", 0), done) or None,
                f"{job.status}: {p.get('indexed', 0)} indexed, {p.get('unchanged', 0)} "
                f"unchanged, {p.get('failed', 0)} failed",
            )

        return _job_info(await service.wait_crawl_job(job.id, wait_seconds, on_change=report))

    @server.tool(annotations=read_only)
    @_boundary
    async def get_job_status(job_id: JobId) -> JobInfo:
        """Status of a crawl job: queued, running, done (with its report), failed (with the error),
        cancelled, or interrupted (the server stopped during it; the error says how to resume)."""
        return _job_info(await anyio.to_thread.run_sync(service.crawl_job, job_id))

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True))
    @_boundary
    async def cancel_job(job_id: JobId) -> JobInfo:
        """Stop a crawl job. Pages indexed so far stay; crawling the same URL again resumes."""
        job = await anyio.to_thread.run_sync(service.cancel_crawl_job, job_id)
        return _job_info(await service.wait_crawl_job(job.id, 10.0))

    @server.tool(annotations=ToolAnnotations(openWorldHint=True))
    @_boundary
    async def evolve_rag_capability(
        feature_request: Annotated[
            str, Field(min_length=3, max_length=4000, description="The tool you want.")
        ],
        ctx: Context,
        documentation_urls: Annotated[
            list[Url] | None, Field(max_length=5, description="Docs the tool should follow (crawled first).")
        ] = None,
    ) -> EvolutionResult:
        """Generate, check, test and (after approval) deploy a new tool for ``feature_request``. Risky changes
        ask for approval through the client when it supports elicitation; otherwise they stay pending."""
        # The service checks the documentation URLs first; their crawls are jobs like any other.
        principal = server.principal()
        approvals = await anyio.to_thread.run_sync(lambda: service.evolution.approvals)
        approver = McpApprover(ctx, approvals, principal=principal)
        async with _ProgressEvents(ctx) as on_event:
            outcome = await service.aevolve(
                feature_request, docs=documentation_urls or [], approver=approver, on_event=on_event,
                principal=principal
            )
        server.metrics.evolutions.labels(status=outcome.status).inc()
        return EvolutionResult(**outcome.to_dict())

    @server.tool()
    @_boundary
    async def self_heal_system(
        issue_description: Annotated[
            str, Field(min_length=1, max_length=4000, description="What looks broken.")
        ],
        ctx: Context,
    ) -> HealingResult:
        """Run the health checks, diagnose failures and repair them (fixes go through the same gates and
        approval as evolved tools)."""
        principal = server.principal()
        approvals = await anyio.to_thread.run_sync(lambda: service.evolution.approvals)
        approver = McpApprover(ctx, approvals, principal=principal)
        async with _ProgressEvents(ctx) as on_event:
            report = await service.aheal(issue_description, approver=approver, on_event=on_event,
                                         principal=principal)
        return HealingResult(**report.to_dict())

    @server.tool(annotations=read_only)
    @_boundary
    async def list_versions() -> Versions:
        """Checkpoints of the deployed tool set, oldest first (ids for rollback)."""
        versions = await anyio.to_thread.run_sync(service.versions)
        return Versions(versions=[v.to_dict() for v in versions])

    @server.tool(annotations=ToolAnnotations(destructiveHint=True, idempotentHint=True))
    @_boundary
    async def rollback(
        version_id: Annotated[
            str, Field(pattern=r"^[0-9a-fA-F]{4,40}$", description="Id from list_versions.")
        ],
    ) -> RollbackResult:
        """Restore the exact tool set of a checkpoint (recorded as a new checkpoint)."""
        result = await anyio.to_thread.run_sync(service.rollback, version_id)
        return RollbackResult(**result.to_dict())

    @server.tool(annotations=read_only)
    @_boundary
    async def get_metrics_report(
        last: Annotated[int, Field(ge=1, le=1000, description="How many of the newest answer reports.")] = 20,
    ) -> MetricsReport:
        """Answer-quality history (grounding, ROUGE, nDCG, code, overall) and the improvement trend."""
        report = await anyio.to_thread.run_sync(functools.partial(service.metrics_report, last=last))
        return MetricsReport(history=report.history, trend=report.trend.to_dict())

    @server.tool(annotations=read_only)
    @_boundary
    async def list_pending_approvals() -> Approvals:
        """Changes waiting for a human: tool, risk, reasons, summary, diff and test output."""
        pending = await anyio.to_thread.run_sync(service.pending_approvals)
        return Approvals(approvals=[_public(p.to_dict()) for p in pending])

    @server.tool()
    @_boundary
    async def approve(
        approval_id: ApprovalId,
        human_token: Annotated[
            str | None, Field(description="The human approval token; required for HIGH risk.")
        ] = None,
    ) -> DecisionResult:
        """Approve a pending change and deploy it (approver role). HIGH risk also needs the human approval
        token: a model cannot approve its own high-risk change."""
        result = await anyio.to_thread.run_sync(
            functools.partial(
                service.decide_approval,
                approval_id,
                approve=True,
                principal=server.principal(),
                token=usable_token(human_token),
                reason="approved over MCP",
            )
        )
        decision = _decision(approval_id, result)
        server.metrics.approval_decisions.labels(decision="approve", status=decision.status).inc()
        return decision

    @server.tool()
    @_boundary
    async def reject(
        approval_id: ApprovalId,
        reason: Annotated[str, Field(max_length=2000, description="Why (kept in the audit log).")] = "",
    ) -> DecisionResult:
        """Reject a pending change (approver role)."""
        result = await anyio.to_thread.run_sync(
            functools.partial(
                service.decide_approval,
                approval_id,
                approve=False,
                principal=server.principal(),
                reason=reason or "rejected over MCP",
            )
        )
        decision = _decision(approval_id, result)
        server.metrics.approval_decisions.labels(decision="reject", status=decision.status).inc()
        return decision

    unlisted = sorted(set(server._tool_manager._tools) - set(TOOL_OPERATIONS))
    if unlisted:  # a tool without a role would be refused to everyone: say so at start-up, not at the first call
        raise RuntimeError(f"MCP tools without an entry in TOOL_OPERATIONS: {', '.join(unlisted)}")


def _job_info(job) -> JobInfo:
    data = job.to_dict()
    return JobInfo(job_id=data.pop("id"), **data)


def _decision(approval_id: str, result) -> DecisionResult:
    data = _public(result.to_dict())
    data.pop("approval_id", None)
    data.pop("id", None)
    return DecisionResult(approval_id=approval_id, **data)


class _ProgressEvents:
    """Turns team events into progress notifications (sent only if the client asked for progress)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._count = 0
        self._pending: set[asyncio.Task] = set()

    async def __aenter__(self) -> Callable[[object], None]:
        return self._on_event

    async def __aexit__(self, *exc: object) -> None:
        # Progress must arrive before the result: after it, the progress token is no longer valid.
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _on_event(self, event: object) -> None:
        self._count += 1
        try:
            task = asyncio.get_running_loop().create_task(
                self._ctx.report_progress(self._count, None, event_summary(event))
            )
        except RuntimeError:  # called outside the loop's thread: progress is best effort
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _register_resources(server: EvoragMCP) -> None:
    service = server.service

    @server.resource(
        "docs://sources",
        name="sources",
        mime_type="application/json",
        description="Indexed documentation sources.",
    )
    async def sources_resource() -> str:
        records = await anyio.to_thread.run_sync(service.sources)
        return json.dumps([SourceInfo.of(record).model_dump() for record in records])

    @server.resource(
        "docs://{source}/pages",
        name="source_pages",
        mime_type="application/json",
        description="The indexed page URLs of one source.",
    )
    async def pages_resource(source: str) -> str:
        try:
            pages = await anyio.to_thread.run_sync(service.source_pages, source)
        except UserError as exc:
            raise ValueError(str(exc)) from None
        return json.dumps({"source": source, "pages": pages})
