"""Approval of risky changes: a queue any interface can answer (terminal, UI, MCP, CLI).

Who may approve depends on the risk, whatever the interface:

* LOW: may be approved by policy (``--yes``), i.e. by any principal allowed to start the run.
* MEDIUM: needs a principal with the approver role.
* HIGH (and any risk this module does not know): an approver *and* proof of a person, either the human
  approval token (``EVORAG_APPROVAL_TOKEN``, which a model never sees; kept here only as SHA-256 digests)
  or an approver logged in to the UI (``Principal.human``). A terminal is no proof: a coding assistant
  with a shell drives one as easily as a person (``script -qec`` gives it a TTY).

Rejecting needs no role here: the interfaces ask for the reject operation's role (approver), and a run's
own requester may turn down what their run proposes. A pending request nobody answers expires into a
rejection.
"""

from __future__ import annotations

import asyncio
import getpass
import inspect
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from evorag.errors import NotFoundError, PermissionDeniedError, UserError
from evorag.principals import (
    POLICY,
    SYSTEM,
    Principal,
    Role,
    acting_principal,
    local_principal,
    matches_any,
    sha256_hex,
)
from evorag.terminal import strip_control

Status = Literal["pending", "approved", "rejected", "expired"]


@dataclass(slots=True)
class ApprovalRequest:
    id: str
    tool: str
    risk: str
    summary: str
    diff: str = ""
    tests: str = ""
    risk_reasons: list[str] = field(default_factory=list)
    status: str = "pending"
    created_at: float = 0.0
    expires_at: float = 0.0
    decided_by: str | None = None
    reason: str | None = None
    payload: dict = field(default_factory=dict)
    requested_by: str | None = None
    decided_role: str | None = None
    decided_via: str | None = None
    proof: str | None = None  # what showed a person approved a HIGH risk: "approval token" or "ui login"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Decision:
    """An Approver's answer. ``by`` names the channel (policy, terminal, ui, mcp-elicitation); ``principal``
    is who answered (None: the policy); ``token`` is a human approval token the person typed, if any."""

    approved: bool | None  # None: still pending (nobody could decide now)
    by: str
    reason: str = ""
    principal: Principal | None = None
    token: str | None = field(default=None, repr=False)


class Approver(Protocol):
    async def __call__(self, request: ApprovalRequest) -> Decision: ...


def needed_role(risk: str) -> Role:
    """The weakest role that may approve a change of this risk (HIGH also needs proof of a person)."""
    return Role.READER if risk == "LOW" else Role.APPROVER


class ApprovalStore:
    def __init__(self, path: Path, *, human_token: str | None = None, token_digests: Iterable[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL)"
        )
        # Only digests of the human token are kept: enough to check it, useless to anyone reading memory.
        self._digests = [*([sha256_hex(human_token)] if human_token else []), *token_digests]

    def create(self, *, tool: str, risk: str, summary: str, diff: str = "", tests: str = "",
               risk_reasons: list[str] | None = None, ttl: float = 3600.0, payload: dict | None = None) -> ApprovalRequest:
        now = time.time()
        requester = acting_principal()
        request = ApprovalRequest(id=uuid.uuid4().hex[:12], tool=tool, risk=risk, summary=summary, diff=diff,
                                  tests=tests, risk_reasons=risk_reasons or [], created_at=now,
                                  expires_at=now + ttl, payload=payload or {},
                                  requested_by=requester.name if requester else None)
        self._db.execute("INSERT INTO approvals(id, body, status) VALUES (?, ?, ?)",
                         (request.id, json.dumps(request.to_dict()), request.status))
        return request

    def get(self, approval_id: str) -> ApprovalRequest:
        row = self._db.execute("SELECT body FROM approvals WHERE id=?", (approval_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no approval request {approval_id!r}", hint="see the pending approvals list")
        request = ApprovalRequest(**json.loads(row["body"]))
        if request.status == "pending" and time.time() > request.expires_at:
            request = self._set(request, "expired", SYSTEM, "nobody answered in time")
        return request

    def pending(self) -> list[ApprovalRequest]:
        ids = [row["id"] for row in self._db.execute("SELECT id FROM approvals WHERE status='pending'")]
        return [r for r in (self.get(i) for i in ids) if r.status == "pending"]

    def decide(self, approval_id: str, *, approve: bool, principal: Principal, token: str | None = None,
               reason: str = "", via: str | None = None) -> ApprovalRequest:
        """Record ``principal``'s decision. Approving follows the risk rules of this module's docstring;
        a refusal raises (PermissionDeniedError for a missing role, UserError for missing proof) and leaves
        the request pending."""
        request = self.get(approval_id)
        if request.status != "pending":
            raise UserError(f"approval {approval_id} is already {request.status}")
        proof = self.check_approval(request, principal, token) if approve else None
        return self._set(request, "approved" if approve else "rejected", principal, reason, via=via, proof=proof)

    def check_approval(self, request: ApprovalRequest, principal: Principal, token: str | None) -> str | None:
        """Raise unless ``principal`` (with ``token``) may approve ``request``; returns the proof of a person."""
        needed = needed_role(request.risk)
        if principal.role < needed:
            raise PermissionDeniedError(
                f"approval {request.id} is {request.risk} risk: approving it needs the {needed} role; "
                f"{principal.name} has the {principal.role} role",
                hint="an approver decides it: `evorag approvals approve ID`, the UI's /approvals, or MCP approve",
            )
        if request.risk in ("LOW", "MEDIUM"):
            return None
        if self.token_ok(token):
            return "approval token"
        if principal.human:
            return "ui login"
        raise UserError(
            f"approval {request.id} is {request.risk} risk: only a human can approve it",
            hint="an approver approves it in the UI, or gives the human approval token (EVORAG_APPROVAL_TOKEN; "
            "`evorag approvals approve ID` asks for it without echoing it)",
        )

    def apply(self, approval_id: str, decision: Decision) -> ApprovalRequest:
        """Record an Approver's decision (nothing when it left the request pending)."""
        if decision.approved is None:
            return self.get(approval_id)
        return self.decide(approval_id, approve=bool(decision.approved), principal=decision.principal or POLICY,
                           token=decision.token, reason=decision.reason, via=decision.by)

    def token_ok(self, token: str | None) -> bool:
        return matches_any(token, self._digests)

    def _set(self, request: ApprovalRequest, status: str, principal: Principal, reason: str, *,
             via: str | None = None, proof: str | None = None) -> ApprovalRequest:
        request.status, request.decided_by, request.reason = status, principal.name, reason
        request.decided_role, request.decided_via, request.proof = str(principal.role), via or principal.via, proof
        self._db.execute("UPDATE approvals SET body=?, status=? WHERE id=?",
                         (json.dumps(request.to_dict()), status, request.id))
        return request

    async def wait(self, approval_id: str, *, timeout: float, poll: float = 0.25) -> ApprovalRequest:
        deadline = time.monotonic() + timeout
        while True:
            request = self.get(approval_id)
            if request.status != "pending" or time.monotonic() >= deadline:
                if request.status == "pending":
                    request = self._set(request, "expired", SYSTEM, f"no answer within {timeout:g}s")
                return request
            await asyncio.sleep(poll)


class PolicyApprover:
    """Non-interactive runs: LOW approved only with ``assume_yes``; MEDIUM and HIGH stay pending for an
    approver (MEDIUM) or an approver who proves to be a person (HIGH)."""

    def __init__(self, *, assume_yes: bool, principal: Principal | None = None) -> None:
        self.assume_yes = assume_yes
        self.principal = principal  # who passed --yes; recorded with the approval

    async def __call__(self, request: ApprovalRequest) -> Decision:
        if request.risk != "LOW":
            who = "an approver" if request.risk == "MEDIUM" else "an approver with the human approval token"
            return Decision(None, "policy", f"{request.risk} risk needs {who}; left pending")
        if self.assume_yes:
            return Decision(True, "policy", "LOW risk approved by --yes", principal=self.principal)
        return Decision(None, "policy", "no human to ask and --yes not given; left pending")


class QueueApprover:
    """Waits for a decision given anywhere else (UI, CLI, MCP approval tools) until ``timeout``."""

    def __init__(self, store: ApprovalStore, *, timeout: float) -> None:
        self.store = store
        self.timeout = timeout

    async def __call__(self, request: ApprovalRequest) -> Decision:
        final = await self.store.wait(request.id, timeout=self.timeout)
        return Decision(final.status == "approved", final.decided_by or "system", final.reason or final.status)


async def _prompt(ask: Callable, prompt: str) -> str | None:
    if inspect.iscoroutinefunction(ask):
        return await ask(prompt)
    return await asyncio.to_thread(ask, prompt)  # input() and getpass block: not on the event loop


class TerminalApprover:
    """Asks at the terminal, as ``principal`` (the local CLI user). The terminal is not proof of a person:
    a HIGH-risk change also needs the human approval token, asked for without echo (``ask_secret``).
    ``ask`` and ``ask_secret`` may be coroutine functions (an interface that reads the terminal its own way,
    e.g. `evorag team chat`); plain ones run in a thread."""

    def __init__(self, principal: Principal | None = None, ask=input, show=print,
                 ask_secret: Callable[[str], str] = getpass.getpass) -> None:
        self.principal = principal or local_principal(via="terminal")
        self.ask = ask
        # Diffs, test output and summaries come from the candidate: shown as text, never as terminal commands.
        self.show = lambda text: show(strip_control(text))
        self.ask_secret = ask_secret

    async def __call__(self, request: ApprovalRequest) -> Decision:
        self.show(f"\nApproval needed for tool '{request.tool}' (risk {request.risk})")
        for reason in request.risk_reasons:
            self.show(f"  - {reason}")
        self.show(request.summary)
        if request.tests:
            self.show(f"Tests:\n{request.tests}")
        if request.diff:
            self.show(f"Change:\n{request.diff}")
        needed = needed_role(request.risk)
        if self.principal.role < needed:
            return Decision(None, "terminal", f"{request.risk} risk needs the {needed} role; {self.principal.name} "
                                              f"has the {self.principal.role} role; left pending")
        answer = await _prompt(self.ask, "Approve and deploy? [y/N] ")
        if (answer or "").strip().lower() not in ("y", "yes"):
            return Decision(False, "terminal", "rejected at the terminal", principal=self.principal)
        token = None
        if request.risk not in ("LOW", "MEDIUM"):
            token = await _prompt(self.ask_secret, "Human approval token (not echoed): ")
        return Decision(True, "terminal", "approved at the terminal", principal=self.principal, token=token or None)
