"""MCP tool over the proposals: crawls for weak topics and tools for missing features, with their evidence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import Context
from pydantic import Field

from evorag.mcp_server._models import _Result
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host

tools = ToolGroup()


class Proposals(_Result):
    proposals: list[dict[str, Any]]


@tools.tool("metrics", annotations=READ_ONLY)
async def list_proposals(
    ctx: Context,
    status: Annotated[Literal["proposed", "approved", "rejected", "expired", "done", "failed"] | None,
                      Field(description="Only proposals of this status.")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many, newest first.")] = 50,
) -> Proposals:
    """Proposals made from weak answers and missing features: kind (crawl or tool), target (the pages to crawl
    or the evolution request), evidence (the queries behind it), score, status, the approval that decides it,
    and once done its effect (the topic's scores before and after). Approve or reject with the approval id."""
    service = host(ctx).service
    found = await anyio.to_thread.run_sync(lambda: service.list_proposals(status=status, limit=limit))
    return Proposals(proposals=[proposal.to_dict() for proposal in found])
