"""MCP tools that change the deployed tool set: evolve a tool, heal, list checkpoints, roll back."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from evorag.mcp_server._approvals import McpApprover
from evorag.mcp_server._models import EvolutionResult, HealingResult, RollbackResult, Url, VersionId, Versions
from evorag.mcp_server._progress import TeamProgress
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host

tools = ToolGroup()


@tools.tool("evolve", annotations=ToolAnnotations(openWorldHint=True))
async def evolve_rag_capability(
    feature_request: Annotated[str, Field(min_length=3, max_length=4000, description="The tool you want.")],
    ctx: Context,
    documentation_urls: Annotated[
        list[Url] | None, Field(max_length=5, description="Docs the tool should follow (crawled first).")
    ] = None,
) -> EvolutionResult:
    """Generate, check, test and (after approval) deploy a new tool for ``feature_request``. Risky changes
    ask for approval through the client when it supports elicitation; otherwise they stay pending."""
    server = host(ctx)
    principal = server.principal()
    approver = McpApprover(ctx, server.service.record_decision, principal=principal)
    # The service checks the documentation URLs first; their crawls are jobs like any other.
    async with TeamProgress(ctx) as on_event:
        outcome = await server.service.aevolve(feature_request, docs=documentation_urls or [], approver=approver,
                                               on_event=on_event, principal=principal)
    server.metrics.evolutions.labels(status=outcome.status).inc()
    return EvolutionResult(**outcome.to_dict())


@tools.tool("heal")
async def self_heal_system(
    issue_description: Annotated[str, Field(min_length=1, max_length=4000, description="What looks broken.")],
    ctx: Context,
) -> HealingResult:
    """Run the health checks, diagnose failures and repair them (fixes go through the same gates and
    approval as evolved tools)."""
    server = host(ctx)
    principal = server.principal()
    approver = McpApprover(ctx, server.service.record_decision, principal=principal)
    async with TeamProgress(ctx) as on_event:
        report = await server.service.aheal(issue_description, approver=approver, on_event=on_event,
                                            principal=principal)
    return HealingResult(**report.to_dict())


@tools.tool("list_versions", annotations=READ_ONLY)
async def list_versions(ctx: Context) -> Versions:
    """Checkpoints of the deployed tool set, oldest first (ids for rollback)."""
    versions = await anyio.to_thread.run_sync(host(ctx).service.versions)
    return Versions(versions=[v.to_dict() for v in versions])


@tools.tool("rollback", annotations=ToolAnnotations(destructiveHint=True, idempotentHint=True))
async def rollback(version_id: VersionId, ctx: Context) -> RollbackResult:
    """Restore the exact tool set of a checkpoint (recorded as a new checkpoint)."""
    result = await anyio.to_thread.run_sync(host(ctx).service.rollback, version_id)
    return RollbackResult(**result.to_dict())
