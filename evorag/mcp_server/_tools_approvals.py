"""MCP tools for the changes waiting for a person: list them, approve, reject."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.fastmcp import Context
from pydantic import Field

from evorag.mcp_server._approvals import usable_token
from evorag.mcp_server._models import ApprovalId, Approvals, DecisionResult, public
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host

tools = ToolGroup()


@tools.tool("list_approvals", annotations=READ_ONLY)
async def list_pending_approvals(ctx: Context) -> Approvals:
    """Changes waiting for a human: tool, risk, reasons, summary, diff and test output."""
    pending = await anyio.to_thread.run_sync(host(ctx).service.pending_approvals)
    return Approvals(approvals=[public(p.to_dict()) for p in pending])


@tools.tool("approve")
async def approve(
    approval_id: ApprovalId,
    ctx: Context,
    human_token: Annotated[
        str | None, Field(description="The human approval token; required for HIGH risk.")
    ] = None,
) -> DecisionResult:
    """Approve a pending change and deploy it (approver role). HIGH risk also needs the human approval
    token: a model cannot approve its own high-risk change."""
    server = host(ctx)
    principal = server.principal()
    result = await anyio.to_thread.run_sync(lambda: server.service.decide_approval(
        approval_id, approve=True, principal=principal, token=usable_token(human_token),
        reason="approved over MCP"))
    decision = DecisionResult.of(approval_id, result)
    server.metrics.approval_decisions.labels(decision="approve", status=decision.status).inc()
    return decision


@tools.tool("reject")
async def reject(
    approval_id: ApprovalId,
    ctx: Context,
    reason: Annotated[str, Field(max_length=2000, description="Why (kept in the audit log).")] = "",
) -> DecisionResult:
    """Reject a pending change (approver role)."""
    server = host(ctx)
    principal = server.principal()
    result = await anyio.to_thread.run_sync(lambda: server.service.decide_approval(
        approval_id, approve=False, principal=principal, reason=reason or "rejected over MCP"))
    decision = DecisionResult.of(approval_id, result)
    server.metrics.approval_decisions.labels(decision="reject", status=decision.status).inc()
    return decision
