"""The MCP tool for the group chat: talk to the agent team (the conversation team with you as its human)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.fastmcp import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from evorag.mcp_server._approvals import ElicitedAnswers, McpApprover, client_supports_elicitation
from evorag.mcp_server._models import ConversationId, TeamTurnResult
from evorag.mcp_server._progress import TeamProgress
from evorag.mcp_server._registration import ToolGroup, host

tools = ToolGroup()


@tools.tool("converse", annotations=ToolAnnotations(openWorldHint=True))
async def talk_to_team(
    message: Annotated[str, Field(min_length=1, max_length=8000, description="What you say to the team.")],
    ctx: Context,
    conversation_id: Annotated[
        ConversationId | None, Field(description="Continue this conversation; leave out to start a new one.")
    ] = None,
) -> TeamTurnResult:
    """Talk to evorag's agent team: an orchestrator, a dependency validator, a code debugger, an integration
    tester, a deployer and you as the human (a model picks who speaks). One call runs one turn and returns its
    messages and the conversation_id to continue with. When the team asks you something, the question comes
    through the client (elicitation) if it can ask, else the turn ends with waiting_for_human and your next
    talk_to_team(conversation_id=...) is the answer. A tool the team's deployer submits goes through the gates and
    approval like evolve_rag_capability (outcomes lists them)."""
    server = host(ctx)
    principal = server.principal()
    approver = McpApprover(ctx, server.service.record_decision, principal=principal)
    answers = ElicitedAnswers(ctx) if client_supports_elicitation(ctx.session) else None
    async with TeamProgress(ctx) as on_event:
        turn = await server.service.atalk(message, conversation_id=conversation_id, user_input=answers,
                                          approver=approver, on_event=on_event, principal=principal)
    return TeamTurnResult(**turn.to_dict())
