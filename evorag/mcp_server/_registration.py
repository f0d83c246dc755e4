"""How a module declares MCP tools: a ``ToolGroup`` whose decorator names the operation each tool performs.

    tools = ToolGroup()

    @tools.tool("ask", annotations=READ_ONLY)
    async def perform_rag_query_with_metrics(query: ..., ctx: Context) -> RagAnswer:
        service = host(ctx).service
        ...

The operation (evorag.principals.OPERATIONS) decides the role a caller needs, so a tool cannot be declared without
one; an unknown operation fails at import. Every tool is wrapped so that an ``EvoragError`` reaches the client as
a tool error with the same one-line message, and anything else as an "internal error" (logged as a bug). The tool
reaches the server (its service, metrics and the caller's principal) through the request's ``Context``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from mcp.server.fastmcp import Context
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations

from evorag.errors import EvoragError
from evorag.observability import ServerMetrics
from evorag.principals import OPERATIONS, Principal
from evorag.service import CrawlJob, Evorag
from evorag.tools.result_budget import SeenResults

logger = logging.getLogger("evorag.mcp")

READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


class ToolHost(Protocol):
    """What a tool may use of the server it runs in (``EvoragMCP``)."""

    service: Evorag
    metrics: ServerMetrics

    def principal(self) -> Principal: ...

    def count_crawl_job(self, job: CrawlJob) -> None: ...

    def seen_results(self) -> SeenResults: ...


def host(ctx: Context) -> ToolHost:
    """The server running the current tool call."""
    return ctx.fastmcp  # type: ignore[return-value] - always an EvoragMCP: only it registers these tools


@dataclass(frozen=True, slots=True)
class CoreTool:
    name: str
    operation: str
    fn: Callable
    annotations: ToolAnnotations | None


class ToolGroup:
    """The MCP tools of one module, each with the operation (and so the role) it needs."""

    def __init__(self) -> None:
        self._tools: list[CoreTool] = []

    def tool(self, operation: str, *, annotations: ToolAnnotations | None = None) -> Callable[[Callable], Callable]:
        if operation not in OPERATIONS:
            raise KeyError(f"MCP tool operation {operation!r} is not in evorag.principals.OPERATIONS")

        def declare(fn: Callable) -> Callable:
            self._tools.append(CoreTool(fn.__name__, operation, boundary(fn), annotations))
            return fn

        return declare

    def __iter__(self) -> Iterator[CoreTool]:
        return iter(self._tools)


def boundary(fn: Callable) -> Callable:
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
