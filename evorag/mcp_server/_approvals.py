"""Asking the person behind an MCP client: approvals of risky changes (else the change stays pending), and the
agent team's questions in a conversation (else the team waits for the next message).

An MCP client may be a model acting on its own, so what counts as approval is narrow. The answer is
given for the principal that made the call, and the risk rules of tools/approvals.py apply to it:

* LOW: an accepted elicitation form with ``approve`` ticked.
* MEDIUM: the same, and the caller must have the approver role; an operator is not even asked.
* HIGH: an approver, and the form must also carry the human approval token (``EVORAG_APPROVAL_TOKEN``),
  which the model never sees, like ``approve(id, human_token)``.
* A client without elicitation, a declined-to-answer (cancel), a timeout or an answer the rules refuse
  (a wrong token): the change stays pending, for an approver in the UI, the CLI or the ``approve`` tool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from pydantic import BaseModel, Field

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service import ApprovalRequest, Decision, needed_role

logger = logging.getLogger(__name__)

BY = "mcp-elicitation"
PENDING_HINT = "an approver can approve it in the UI, with `evorag approvals approve ID` or the approve tool"
# A person may take a while to read a diff, but an unanswered form must not hold the call forever.
ELICITATION_TIMEOUT_S = 600.0


class ApprovalForm(BaseModel):
    approve: bool = Field(description="Deploy this change?")


class HighRiskApprovalForm(BaseModel):
    approve: bool = Field(description="Deploy this HIGH-risk change?")
    human_token: str = Field(default="", description="The human approval token (EVORAG_APPROVAL_TOKEN).")


def client_supports_elicitation(session) -> bool:
    params = getattr(session, "client_params", None)
    return bool(params and params.capabilities and params.capabilities.elicitation is not None)


def approval_message(request: ApprovalRequest, *, max_diff: int = 4000) -> str:
    lines = [f"evorag asks to deploy tool '{request.tool}' (risk {request.risk}).", request.summary]
    lines += [f"- {reason}" for reason in request.risk_reasons]
    if request.diff:
        diff = (
            request.diff
            if len(request.diff) <= max_diff
            else request.diff[:max_diff] + "\n... (diff truncated)"
        )
        lines += ["", "Change:", diff]
    if request.risk == "HIGH":
        lines += ["", "HIGH risk: approving needs the human approval token."]
    return "\n".join(lines)


class McpApprover:
    """The Approver for one tool call: elicits when the client can, else leaves the change pending.

    ``record(approval_id, decision)`` records an answer (``Evorag.record_decision``); it raises UserError when the
    answer cannot decide the request (a wrong token), which then stays pending."""

    def __init__(self, ctx, record: Callable[[str, Decision], object], *, principal: Principal,
                 timeout: float = ELICITATION_TIMEOUT_S) -> None:
        self._ctx = ctx
        self._record = record
        self._principal = principal  # who called the tool: the answer is theirs
        self._timeout = timeout

    async def __call__(self, request: ApprovalRequest) -> Decision:
        needed = needed_role(request.risk)
        if self._principal.role < needed:
            return Decision(None, "mcp", f"{request.risk} risk needs the {needed} role to approve; "
                                         f"{self._principal.name} has the {self._principal.role} role; "
                                         f"left pending: {PENDING_HINT}")
        if not client_supports_elicitation(self._ctx.session):
            return Decision(None, "mcp", f"this MCP client cannot ask a person; left pending: {PENDING_HINT}")
        form = HighRiskApprovalForm if request.risk == "HIGH" else ApprovalForm
        try:
            with anyio.move_on_after(self._timeout) as scope:
                result = await self._ctx.elicit(approval_message(request), form)
        except Exception as exc:  # noqa: BLE001 - a failed question leaves the decision to a person later
            logger.warning("elicitation failed for approval %s: %s", request.id, type(exc).__name__)
            return Decision(
                None,
                "mcp",
                f"could not ask through the client ({type(exc).__name__}); left pending: {PENDING_HINT}",
            )
        if scope.cancelled_caught:
            return Decision(None, "mcp", f"no answer within {self._timeout:g}s; left pending: {PENDING_HINT}")
        if result.action == "decline":
            return Decision(False, BY, "declined in the MCP client", principal=self._principal)
        if result.action != "accept":
            return Decision(None, "mcp", f"the question was dismissed; left pending: {PENDING_HINT}")
        if not result.data.approve:
            return Decision(False, BY, "rejected in the MCP client", principal=self._principal)
        token = usable_token(getattr(result.data, "human_token", None))
        how = "with the human token" if token else "in the MCP client"
        decision = Decision(True, BY, f"{request.risk} risk approved {how}", principal=self._principal, token=token)
        try:
            # Recorded here, so that a refused answer (no or a wrong token) leaves the change pending.
            self._record(request.id, decision)
        except UserError as exc:
            return Decision(None, "mcp", f"{exc.message}; left pending: {PENDING_HINT}")
        return decision


class HumanAnswerForm(BaseModel):
    answer: str = Field(description="Your answer to the agent team.")


class ElicitedAnswers:
    """The human's answers in a conversation with the team, asked through the client (elicitation). Returns None
    (the team then waits for the human's next message) when the person declines, dismisses or does not answer."""

    def __init__(self, ctx, *, timeout: float = ELICITATION_TIMEOUT_S) -> None:
        self._ctx = ctx
        self._timeout = timeout

    async def __call__(self, question: str) -> str | None:
        message = "The agent team asks you:\n\n" + (question or "(no question text)")[:4000]
        try:
            with anyio.move_on_after(self._timeout):
                result = await self._ctx.elicit(message, HumanAnswerForm)
                return result.data.answer if result.action == "accept" and result.data.answer.strip() else None
        except Exception as exc:  # noqa: BLE001 - no answer now: the conversation waits for the next message
            logger.warning("elicitation failed for a team question: %s", type(exc).__name__)
        return None


def usable_token(token: str | None) -> str | None:
    """The token as the approval store can compare it (its constant-time check takes ASCII only)."""
    return token if token and token.isascii() else None
