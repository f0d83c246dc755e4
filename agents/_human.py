"""The human proxy: a UserProxyAgent whose answer comes from whichever interface runs the team."""

from __future__ import annotations

import asyncio

from autogen_agentchat.agents import UserProxyAgent
from evorag.tools.code_checks import max_risk
from evorag.tools.evolution import GateVerdict

# Gates every candidate passes before anyone is asked to approve it, whatever the team graph looks like.
REQUIRED_GATES = ("code", "dependencies", "tests")


def required_gates(pipeline) -> tuple[str, ...]:
    """The built-in gates, plus the retrieval regression gate when a baseline is configured."""
    return REQUIRED_GATES + (("retrieval",) if getattr(pipeline, "retrieval_gate", None) is not None else ())


def approval_proxy(state) -> UserProxyAgent:
    """The approval step. Its 'input' is the interface's Approver (terminal prompt, UI buttons, MCP
    elicitation or a pending queue), asked with the change, its risk, diff and test results.

    It asks only for a candidate whose files passed every built-in gate and failed no other (a plugin's)
    gate: a team graph that routes around a gate, or a step that changes the files after they were
    judged, ends the run here instead (see ``EvolutionState.unmet_gates``)."""

    async def ask(prompt: str, cancellation_token=None) -> str:
        pipeline = state.pipeline
        problems = await asyncio.to_thread(state.unmet_gates, required_gates(pipeline))
        if problems:
            reason = "not put to approval: " + "; ".join(problems)
            state.record(GateVerdict("approval", False, reason, max_risk(*(v.risk for v in state.verdicts))))
            pipeline.audit.write("rejected", run_id=state.run_id, gate="approval", reason=reason)
            return f"STOP: {reason}"
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
