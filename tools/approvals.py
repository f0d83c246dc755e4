"""Human approval of risky changes: a queue any interface can answer (terminal, UI, MCP, CLI).

Risk policy: LOW and MEDIUM may be approved by policy (``--yes``); HIGH never is: it needs a human,
identified either by the interface (a terminal prompt, the logged-in UI) or by the human's approval
token (``EVORAG_APPROVAL_TOKEN``), which a model never sees. A pending request that nobody answers
expires into a rejection.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from evorag.errors import NotFoundError, UserError

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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Decision:
    approved: bool | None  # None: still pending (nobody could decide now)
    by: str
    reason: str = ""


class Approver(Protocol):
    async def __call__(self, request: ApprovalRequest) -> Decision: ...


class ApprovalStore:
    def __init__(self, path: Path, *, human_token: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, body TEXT NOT NULL, status TEXT NOT NULL)"
        )
        self._human_token = human_token

    def create(self, *, tool: str, risk: str, summary: str, diff: str = "", tests: str = "",
               risk_reasons: list[str] | None = None, ttl: float = 3600.0, payload: dict | None = None) -> ApprovalRequest:
        now = time.time()
        request = ApprovalRequest(id=uuid.uuid4().hex[:12], tool=tool, risk=risk, summary=summary, diff=diff,
                                  tests=tests, risk_reasons=risk_reasons or [], created_at=now,
                                  expires_at=now + ttl, payload=payload or {})
        self._db.execute("INSERT INTO approvals(id, body, status) VALUES (?, ?, ?)",
                         (request.id, json.dumps(request.to_dict()), request.status))
        return request

    def get(self, approval_id: str) -> ApprovalRequest:
        row = self._db.execute("SELECT body FROM approvals WHERE id=?", (approval_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no approval request {approval_id!r}", hint="see the pending approvals list")
        request = ApprovalRequest(**json.loads(row["body"]))
        if request.status == "pending" and time.time() > request.expires_at:
            request = self._set(request, "expired", "system", "nobody answered in time")
        return request

    def pending(self) -> list[ApprovalRequest]:
        ids = [row["id"] for row in self._db.execute("SELECT id FROM approvals WHERE status='pending'")]
        return [r for r in (self.get(i) for i in ids) if r.status == "pending"]

    def decide(self, approval_id: str, *, approve: bool, by: str, reason: str = "",
               human: bool = False, token: str | None = None) -> ApprovalRequest:
        """Record a decision. Approving HIGH risk needs ``human=True`` (set only by interfaces that know a
        person is answering) or the human approval token."""
        request = self.get(approval_id)
        if request.status != "pending":
            raise UserError(f"approval {approval_id} is already {request.status}")
        is_human = human or self._token_ok(token)
        if approve and request.risk == "HIGH" and not is_human:
            raise UserError(
                f"approval {approval_id} is HIGH risk: only a human can approve it",
                hint="approve it in the UI, at the terminal, or pass the human approval token",
            )
        return self._set(request, "approved" if approve else "rejected", by, reason)

    def _token_ok(self, token: str | None) -> bool:
        if not (self._human_token and token):
            return False
        # Bytes, not str: compare_digest refuses non-ASCII strings, and any token may be typed.
        return hmac.compare_digest(self._human_token.encode(), token.encode())

    def _set(self, request: ApprovalRequest, status: str, by: str, reason: str) -> ApprovalRequest:
        request.status, request.decided_by, request.reason = status, by, reason
        self._db.execute("UPDATE approvals SET body=?, status=? WHERE id=?",
                         (json.dumps(request.to_dict()), status, request.id))
        return request

    async def wait(self, approval_id: str, *, timeout: float, poll: float = 0.25) -> ApprovalRequest:
        deadline = time.monotonic() + timeout
        while True:
            request = self.get(approval_id)
            if request.status != "pending" or time.monotonic() >= deadline:
                if request.status == "pending":
                    request = self._set(request, "expired", "system", f"no answer within {timeout:g}s")
                return request
            await asyncio.sleep(poll)


class PolicyApprover:
    """Non-interactive runs: LOW/MEDIUM approved only with ``assume_yes``; HIGH stays pending for a human."""

    def __init__(self, *, assume_yes: bool) -> None:
        self.assume_yes = assume_yes

    async def __call__(self, request: ApprovalRequest) -> Decision:
        if request.risk == "HIGH":
            return Decision(None, "policy", "HIGH risk needs a human; left pending")
        if self.assume_yes:
            return Decision(True, "policy", f"{request.risk} risk approved by --yes")
        return Decision(None, "policy", "no human to ask and --yes not given; left pending")


class QueueApprover:
    """Waits for a decision given anywhere else (UI, CLI, MCP approval tools) until ``timeout``."""

    def __init__(self, store: ApprovalStore, *, timeout: float) -> None:
        self.store = store
        self.timeout = timeout

    async def __call__(self, request: ApprovalRequest) -> Decision:
        final = await self.store.wait(request.id, timeout=self.timeout)
        return Decision(final.status == "approved", final.decided_by or "system", final.reason or final.status)


class TerminalApprover:
    """Asks the person at the terminal. A person typing counts as human approval."""

    def __init__(self, ask=input, show=print) -> None:
        self.ask = ask
        self.show = show

    async def __call__(self, request: ApprovalRequest) -> Decision:
        self.show(f"\nApproval needed for tool '{request.tool}' (risk {request.risk})")
        for reason in request.risk_reasons:
            self.show(f"  - {reason}")
        self.show(request.summary)
        if request.tests:
            self.show(f"Tests:\n{request.tests}")
        if request.diff:
            self.show(f"Change:\n{request.diff}")
        answer = await asyncio.to_thread(self.ask, "Approve and deploy? [y/N] ")
        approved = answer.strip().lower() in ("y", "yes")
        return Decision(approved, "terminal", "approved at the terminal" if approved else "rejected at the terminal")
