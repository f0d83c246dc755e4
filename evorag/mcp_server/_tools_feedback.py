"""MCP tool for feedback on answers: thumbs up or down on an ``ask`` result, by its ``answer_id``."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from mcp.server.fastmcp import Context
from pydantic import Field

from evorag.mcp_server._models import _Result
from evorag.mcp_server._registration import ToolGroup, host

tools = ToolGroup()


class FeedbackReceipt(_Result):
    id: int
    answer_id: int | None
    value: int
    query: str
    pages: list[str]


@tools.tool("feedback")
async def rate_answer(
    answer_id: Annotated[int, Field(ge=1, description="answer_id of an earlier ask result.")],
    value: Annotated[Literal["up", "down"], Field(description="up: the answer helped; down: it did not.")],
    ctx: Context,
    comment: Annotated[str, Field(max_length=500, description="What was wrong or right (optional).")] = "",
) -> FeedbackReceipt:
    """Rate an answer you were given (thumbs up or down). A thumbs-down is remembered for you: when you ask the
    same question again, the pages that answer cited rank lower in your results; the usage analysis counts it
    when it looks for topics the documentation serves badly."""
    server = host(ctx)
    who = server.principal()
    record = await anyio.to_thread.run_sync(
        lambda: server.service.feedback(answer_id, value, comment=comment, principal=who))
    return FeedbackReceipt(id=record.id, answer_id=record.query_id, value=record.value, query=record.query,
                           pages=list(record.pages))
