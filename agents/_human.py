"""The human proxy: a UserProxyAgent whose answer comes from whichever interface runs the team."""

from __future__ import annotations

import asyncio

from autogen_agentchat.agents import UserProxyAgent


def approval_proxy(state) -> UserProxyAgent:
    """The approval step. Its 'input' is the interface's Approver (terminal prompt, UI buttons, MCP
    elicitation or a pending queue), asked with the change, its risk, diff and test results."""

    async def ask(prompt: str, cancellation_token=None) -> str:
        pipeline = state.pipeline
        # Staging the candidate and opening the request write files and SQLite: not on the event loop.
        approval = await asyncio.to_thread(pipeline.request_approval, state.workdir, state.signature,
                                           state.verdicts, request=state.request, run_id=state.run_id)
        state.approval_id = approval.id
        outcome = await pipeline.decide(approval, state.approver, state.verdicts, run_id=state.run_id)
        if outcome is None:
            return "APPROVE"
        state.outcome = outcome
        return f"{outcome.status.upper()}: {outcome.reason}"

    return UserProxyAgent("human", description="The human who approves risky changes.", input_func=ask)
