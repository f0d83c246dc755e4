"""MCP tools over the request queue: list what runs and waits (in the order workers take it), cancel a request.

A client sees each request's kind, one-line summary, status, priority, place in line, progress and outcome,
and who asked: not its payload or full result (a crawl report, an evolution's request text), which stay with
`evorag queue show --json` for the operators of the home.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from evorag.mcp_server._models import _Result
from evorag.mcp_server._registration import READ_ONLY, ToolGroup, host
from evorag.service import QueueRequest

tools = ToolGroup()

RequestId = Annotated[str, Field(pattern=r"^[0-9a-f]{12}$", description="Id from list_queue_requests.")]
_SHOWN = ("id", "kind", "summary", "status", "priority", "origin", "position", "requested_by", "created_at",
          "started_at", "finished_at", "attempts", "progress", "cancel_requested", "error", "error_hint", "note")


class QueueRequestInfo(_Result):
    id: str
    kind: str
    summary: str
    status: str
    priority: int
    position: int | None = None  # 1 = next, while queued
    requested_by: str
    progress: dict[str, Any]
    error: str | None = None

    @classmethod
    def of(cls, request: QueueRequest) -> QueueRequestInfo:
        data = request.to_dict()
        return cls(**{name: data[name] for name in _SHOWN})


class QueueRequests(_Result):
    requests: list[QueueRequestInfo]


@tools.tool("job_status", annotations=READ_ONLY)
async def list_queue_requests(
    ctx: Context,
    include_finished: Annotated[bool, Field(description="Also list finished requests (newest first).")] = False,
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many requests.")] = 50,
) -> QueueRequests:
    """The request queue (crawls, source refreshes, evolutions, heals, periodic tasks): running requests,
    then queued ones in the order they will run with their place in line, then (include_finished) the newest
    finished ones with their outcome."""
    service = host(ctx).service
    found = await anyio.to_thread.run_sync(lambda: service.queue_requests(finished=include_finished, limit=limit))
    return QueueRequests(requests=[QueueRequestInfo.of(request) for request in found])


@tools.tool("cancel_job", annotations=ToolAnnotations(destructiveHint=False, idempotentHint=False))
async def cancel_queue_request(request_id: RequestId, ctx: Context) -> QueueRequestInfo:
    """Cancel a queued request, or ask a running one to stop (it stops within about a second, in whichever
    server runs it; a crawl keeps the pages it indexed). A finished or unknown request is an error."""
    request = await anyio.to_thread.run_sync(host(ctx).service.cancel_request, request_id)
    return QueueRequestInfo.of(request)
