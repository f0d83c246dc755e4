"""Pending approvals of risky changes: list them, and decide (an approved candidate deploys at once).

Approving follows the risk rules of tools/approvals.py: LOW by policy, MEDIUM by an approver, HIGH by an
approver with the human approval token or logged in to the UI as a person.
"""

from __future__ import annotations

from collections.abc import Callable

from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.approvals import ApprovalRequest, Decision
from evorag.tools.evolution import EvolutionOutcome

# Risks an approver may approve without proof of a person.
NO_PROOF_NEEDED = frozenset({"LOW", "MEDIUM"})


class ApprovalsService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        # Told of every decision made here, with who decided (the proposals service queues approved proposals).
        self.on_decided: list[Callable[[ApprovalRequest, Principal], None]] = []

    def pending(self, *, principal: Principal | None = None) -> list[ApprovalRequest]:
        """Changes waiting for a decision (reader role)."""
        with self._ctx.acting(principal, "list_approvals"):
            return self._ctx.parts.pipeline.approvals.pending()

    def record(self, approval_id: str, decision: Decision) -> ApprovalRequest:
        """Record the answer an interface's approver got (elicitation, a chat button) for the run that asked. The
        store applies the risk rules to whoever answered (``decision.principal``): an answer that cannot decide it
        (no role, no proof of a person for HIGH risk) raises UserError and leaves the request pending."""
        return self._ctx.parts.pipeline.approvals.apply(approval_id, decision)

    def decide(self, approval_id: str, *, approve: bool, token: str | None = None, reason: str = "",
               ask_token: Callable[[ApprovalRequest], str] | None = None,
               principal: Principal | None = None) -> ApprovalRequest | EvolutionOutcome:
        """Approve or reject a pending change (approver role); an approved candidate is deployed at once and
        its outcome returned, anything else (a proposed crawl or rollback) returns the decided request.

        HIGH risk also needs ``token`` (the human approval token) or a principal who logged in as a person;
        ``ask_token(request)`` is asked for it when approving a pending HIGH-risk change without one (a terminal
        prompt). A refusal raises PermissionDeniedError or UserError and leaves the request pending.
        """
        operation = "approve" if approve else "reject"
        with self._ctx.acting(principal, operation) as who:
            pipeline = self._ctx.parts.pipeline
            if approve and not token and ask_token is not None:
                request = pipeline.approvals.get(approval_id)
                if request.status == "pending" and request.risk not in NO_PROOF_NEEDED:
                    token = ask_token(request) or None
            verb = "approved" if approve else "rejected"
            request = pipeline.approvals.decide(approval_id, approve=approve, principal=who, token=token,
                                                reason=reason or f"{verb} by {who.name} ({who.via})")
            pipeline.audit.write(verb, approval_id=approval_id, risk=request.risk, reason=request.reason,
                                 proof=request.proof)
            if request.status == "approved" and "staged" in request.payload:
                return pipeline.deploy_approved(approval_id)
            for listener in self.on_decided:
                listener(request, who)
            # Nothing staged (a proposed crawl or rollback): the decision is recorded for the run that asked.
            return request
