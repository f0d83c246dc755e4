"""Inline approval in the chat: the Approver (tools.approvals) that asks the logged-in person."""

from __future__ import annotations

from evorag.principals import Principal
from evorag.service import ApprovalRequest, Decision, needed_role
from evorag.ui._render import code_span, render_approval

APPROVE, REJECT = "approve", "reject"


class ChainlitApprover:
    """Shows the change, its risk, the diff (a code element) and the sandbox test output, then waits for
    Approve / Reject for up to ``timeout`` seconds.

    The answer is ``principal``'s, the person logged in to this chat: a logged-in session is proof that a
    person clicks (``Principal.human``), so an approver may approve any risk here. A principal whose role
    cannot approve the risk is not asked: the change stays pending for an approver (/approvals). A timeout,
    a closed browser or a Reject all return a rejection: nothing is deployed without a click.
    """

    def __init__(self, *, principal: Principal, timeout: float) -> None:
        self.principal = principal
        self.timeout = timeout

    async def __call__(self, request: ApprovalRequest) -> Decision:
        import chainlit as cl

        elements = []
        if request.diff:
            elements.append(cl.Text(name=f"{request.tool}.diff", content=request.diff, language="diff",
                                    display="inline"))
        if request.tests:
            elements.append(cl.Text(name="sandbox test results", content=request.tests, language="text",
                                    display="inline"))
        await cl.Message(content=render_approval(request), elements=elements).send()
        needed = needed_role(request.risk)
        if self.principal.role < needed:
            reason = (f"{request.risk} risk needs the {needed} role to approve; {self.principal.name} has the "
                      f"{self.principal.role} role: left pending for an approver (/approvals)")
            await cl.Message(content=f"Not deployed yet: {reason}.").send()
            return Decision(None, "ui", reason)
        actions = [
            cl.Action(name="approval", payload={"decision": APPROVE, "id": request.id}, label="Approve",
                      icon="check", tooltip=f"Deploy {request.tool}"),
            cl.Action(name="approval", payload={"decision": REJECT, "id": request.id}, label="Reject",
                      icon="x", tooltip="Do not deploy"),
        ]
        question = f"Deploy {code_span(request.tool)} ({request.risk} risk)?"
        try:
            answer = await cl.AskActionMessage(content=question, actions=actions, timeout=self.timeout).send()
        except Exception as exc:  # noqa: BLE001 - a lost connection must reject, never deploy
            return Decision(False, "ui", f"no answer: {exc}", principal=self.principal)
        who = f" by {self.principal.name}"
        if not answer:
            return Decision(False, "ui", f"timed out: no answer within {self.timeout:g}s", principal=self.principal)
        if (answer.get("payload") or {}).get("decision") == APPROVE:
            return Decision(True, "ui", f"approved in the UI{who}", principal=self.principal)
        return Decision(False, "ui", f"rejected in the UI{who}", principal=self.principal)
