"""MCP tool over the usage log: topics of what was asked, weak topics and missing capabilities."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.fastmcp import Context
from pydantic import Field

from evorag.mcp_server._models import _Result
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host

tools = ToolGroup()


class UsageReport(_Result):
    since: float
    until: float
    totals: dict[str, Any]
    topics: list[dict[str, Any]]
    weak_topics: list[dict[str, Any]]
    missing_capabilities: list[dict[str, Any]]
    tools: list[dict[str, Any]]


@tools.tool("metrics", annotations=READ_ONLY)
async def usage_report(
    ctx: Context,
    since: Annotated[str, Field(min_length=1, max_length=64, description="Start of the period: a span back from "
                                "now (30m, 24h, 7d, 2w), a date (2024-05-01) or a time (2024-05-01T12:00Z).")] = "7d",
    top: Annotated[int, Field(ge=1, le=200, description="At most this many topics, weak topics and missing "
                              "capabilities each.")] = 20,
) -> UsageReport:
    """What was asked of evorag (every interface) grouped into topics, each with its volume, trend, answer
    quality and share answered from the docs; the weak topics (low scores, not in the docs, rephrased questions)
    and the capabilities people asked for that evorag lacks (failed evolutions, failing tools), ranked by
    frequency x impact, with the queries behind them."""
    service = host(ctx).service
    report = await anyio.to_thread.run_sync(lambda: service.usage_report(since=since))
    data = report.analysis.to_dict()
    for key in ("topics", "weak_topics", "missing_capabilities", "tools"):
        data[key] = data[key][:top]
    return UsageReport(**data)
